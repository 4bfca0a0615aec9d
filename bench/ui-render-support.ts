/**
 * What both measurements of bench/ui-render.ts (the job page, and the fleet page in ui-render-fleet.ts) use:
 * the repository's CLI, a free port, a child process with its output kept for a log file, polling with a
 * deadline, and order statistics.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CLI = path.join(ROOT, 'bin', 'trainwatch.js');

export function log(msg: string): void {
  process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export function run(cmd: string, argv: string[], logFile?: string): ChildProcess {
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.on('exit', () => {
    if (logFile) writeFileSync(logFile, out);
  });
  return child;
}

export function stats(xs: number[]): { median: number; p90: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))]!;
  return { median: at(0.5), p90: at(0.9), min: s[0]!, max: s[s.length - 1]! };
}

/** Waits until the trainwatch at `url` answers /readyz with 200. */
export function waitReady(url: string, timeoutMs: number): Promise<true> {
  return until(
    'trainwatch ready',
    async () => ((await fetch(`${url}/readyz`)).ok ? true : undefined),
    timeoutMs,
    200,
  );
}
