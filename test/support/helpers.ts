/**
 * Shared helpers for tests that run trainwatch for real: a free port, a child process started from the
 * built CLI and stopped by its PID, and polling with a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(REPO_ROOT, 'bin', 'trainwatch.js');

export function tempDir(prefix = 'tw-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    // The poll interval of this wait-for-event helper.
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
  );
}

export interface Child {
  readonly proc: ChildProcess;
  readonly output: () => string;
  /** Resolves with the exit code (or signal) once the process ended. */
  readonly exited: Promise<number | string>;
}

/** Starts `trainwatch <args>` as a child process; its output is kept for failure messages. */
export function startCli(args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return { proc, output: () => out, exited };
}

/** Stops a child we started, by its PID: SIGTERM, then SIGKILL if it lingers. */
export async function stopChild(
  child: Child,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  process.kill(child.proc.pid!, signal);
  const timer = setTimeout(() => {
    if (child.proc.exitCode === null && child.proc.signalCode === null)
      process.kill(child.proc.pid!, 'SIGKILL');
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

export async function getJson<T = unknown>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}

export interface ServerProcessOptions {
  readonly port: number;
  readonly dataDir: string;
  /** `--config` file, if any. */
  readonly config?: string;
  /** `TRAINWATCH_*` settings for this server (on top of the test process's environment). */
  readonly env?: Record<string, string>;
  /** Where the child is recorded, so the test's afterEach can stop it by PID. */
  readonly children?: Child[];
  readonly readyTimeoutMs?: number;
}

/**
 * Starts `trainwatch start` on 127.0.0.1 as a child process and resolves once `/readyz` answers 200. If the
 * process exits first, the wait fails at once with its output.
 */
export async function startServer(opts: ServerProcessOptions): Promise<Child> {
  const args = [
    'start',
    '--listen',
    `127.0.0.1:${opts.port}`,
    '--data-dir',
    opts.dataDir,
    '--log-level',
    'warn',
  ];
  if (opts.config) args.push('--config', opts.config);
  const child = startCli(args, opts.env ?? {});
  opts.children?.push(child);
  await waitFor(
    'trainwatch to be ready',
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`trainwatch exited early:\n${child.output()}`);
      return (await fetch(`http://127.0.0.1:${opts.port}/readyz`)).ok || undefined;
    },
    opts.readyTimeoutMs ?? 30_000,
    50,
  );
  return child;
}

/**
 * The sum over all label sets of metric `name` in a server's `/metrics` (0 when absent): for waiting on a
 * counter that marks an event (a checkpoint written, an alert group flushed) instead of sleeping.
 */
export async function metricSum(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/** Waits until counter `name` of the server at `baseUrl` has grown by at least `by` from now. */
export async function waitForCounter(
  baseUrl: string,
  name: string,
  by: number,
  timeoutMs = 30_000,
): Promise<void> {
  const from = await metricSum(baseUrl, name);
  await waitFor(
    `${name} to grow by ${by}`,
    async () => ((await metricSum(baseUrl, name)) >= from + by ? true : undefined),
    timeoutMs,
    50,
  );
}
