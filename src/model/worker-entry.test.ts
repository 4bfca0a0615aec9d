import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startWorker } from './worker-entry.js';

describe('workerEntry', () => {
  it('starts a TypeScript worker module from source, its own imports resolved', async () => {
    const w = startWorker(import.meta.url, 'worker-entry-probe', { workerData: { b: '2', a: '1' } });
    const [msg] = await once(w, 'message');
    expect(msg).toBe('a="1",b="2",');
    await w.terminate();
  });
});
