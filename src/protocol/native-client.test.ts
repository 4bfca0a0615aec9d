import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleepUnlessAborted } from './native-client.js';

describe('sleepUnlessAborted', () => {
  it('leaves no listener on the signal once the time is up (a demo waits on one signal for hours)', async () => {
    const abort = new AbortController();
    for (let i = 0; i < 20; i++) await sleepUnlessAborted(1, abort.signal);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
  });

  it('resolves as soon as the signal aborts, and at once when it already has', async () => {
    const abort = new AbortController();
    const waiting = sleepUnlessAborted(60_000, abort.signal);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(1);
    abort.abort();
    await waiting;
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
    await sleepUnlessAborted(60_000, abort.signal);
  });
});
