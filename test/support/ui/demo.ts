/**
 * `trainwatch demo` for the browser tests: one place that starts it on a free port and waits for its
 * dashboard URL (browser.e2e.test.ts and truth.e2e.test.ts share it).
 */
import { type Child, freePort, startCli, waitFor } from '../helpers.js';

export interface DemoOptions {
  readonly jobs: number;
  readonly nodes: number;
  readonly gpus: number;
  /** History generated before going live, e.g. `8m`. */
  readonly backfill: string;
  /** Sampling interval, e.g. `5s` (the demo's default is 1 s). */
  readonly interval?: string;
}

export async function startDemo(o: DemoOptions): Promise<{ demo: Child; base: string }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const demo = startCli([
    'demo',
    '--listen',
    `127.0.0.1:${port}`,
    '--jobs',
    String(o.jobs),
    '--nodes',
    String(o.nodes),
    '--gpus',
    String(o.gpus),
    '--backfill',
    o.backfill,
    ...(o.interval ? ['--interval', o.interval] : []),
  ]);
  await waitFor(
    'the dashboard URL',
    () => (demo.output().includes(`dashboard at ${base}/`) ? true : undefined),
    30_000,
  );
  return { demo, base };
}
