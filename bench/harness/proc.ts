/**
 * Processes for the benchmark: start a server as a child process with its output in a log file, stop it by
 * its PID (SIGTERM, then SIGKILL after a grace period), and read its CPU time and memory from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { waitFor } from '../../test/support/helpers.js';

/** Clock ticks per second of /proc/PID/stat's utime and stime (sysconf(_SC_CLK_TCK)). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  /** user + system CPU seconds of the process so far. */
  readonly cpuSeconds: number;
  /** Resident set size now, and its peak (VmHWM), in bytes. */
  readonly rssBytes: number;
  readonly peakRssBytes: number;
}

/** Reads a process's CPU time and memory; undefined when the process is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    };
    return { cpuSeconds: (utime + stime) / CLK_TCK, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** CPU seconds used by each of some processes between `start()` and `stop()`. */
export class CpuMeter {
  private readonly before = new Map<number, number>();
  private startedAt = 0;

  constructor(private readonly pids: Readonly<Record<string, number>>) {}

  start(): this {
    this.startedAt = performance.now();
    for (const pid of Object.values(this.pids)) this.before.set(pid, procSample(pid)?.cpuSeconds ?? 0);
    return this;
  }

  /** Per name: CPU seconds used, and the share of one core over the wall time. */
  stop(): { wallSeconds: number; cpu: Record<string, { cpuSeconds: number; cores: number }> } {
    const wallSeconds = (performance.now() - this.startedAt) / 1000;
    const cpu: Record<string, { cpuSeconds: number; cores: number }> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const used = (procSample(pid)?.cpuSeconds ?? 0) - (this.before.get(pid) ?? 0);
      cpu[name] = { cpuSeconds: used, cores: wallSeconds > 0 ? used / wallSeconds : 0 };
    }
    return { wallSeconds, cpu };
  }
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

export interface ManagedProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** The last lines of its output, for error messages. */
  tail(lines?: number): string;
  alive(): boolean;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Every process started by {@link startProcess} that has not exited yet. */
const running = new Set<ManagedProcess>();

/** Stops every process this harness started and that still runs (on Ctrl-C). */
export async function stopAllStarted(): Promise<void> {
  await Promise.allSettled([...running].map((p) => p.stop(10_000)));
}

/** Starts a process with stdout and stderr appended to `logFile`. */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; logFile: string },
): ManagedProcess {
  const fd = openSync(opts.logFile, 'a');
  const proc = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = proc.pid;
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  proc.on('error', () => {});
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const managed: ManagedProcess = {
    name,
    proc,
    pid,
    logFile: opts.logFile,
    exited,
    alive,
    tail(lines = 20) {
      try {
        return readFileSync(opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
    async stop(graceMs = 30_000) {
      if (!alive()) return;
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (alive()) process.kill(pid, 'SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(managed);
  void exited.then(() => running.delete(managed));
  return managed;
}

// The tests' poller (test/support/helpers.ts: waitFor), one copy for both: bench callers pass timeoutMs always.
export { waitFor };

/** Waits until GET url answers 2xx, while the process is alive. */
export async function waitHttpOk(p: ManagedProcess, url: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `${p.name} at ${url}`,
    async () => {
      if (!p.alive()) throw new Error(`${p.name} exited:\n${p.tail()}`);
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.ok;
    },
    timeoutMs,
  );
  if (!p.alive()) throw new Error(`${p.name} exited:\n${p.tail()}`);
}

/** Apparent size in bytes of the files under a directory (recursively); 0 if it does not exist. */
export function dirBytes(dir: string, skip: (relPath: string) => boolean = () => false): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full, r);
      else if (e.isFile()) total += statSync(full).size;
    }
  };
  walk(dir, '');
  return total;
}

/** Bytes per top-level entry of a directory. */
export function dirBreakdown(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    out[e.name] = e.isDirectory() ? dirBytes(full) : e.isFile() ? statSync(full).size : 0;
  }
  return out;
}
