/**
 * The harness's handle on the load-generator process (generator-main.ts): build a data set there once, then
 * replay it against each system. The generator runs in its own process so that the CPU it uses is measured
 * apart from the harness and the servers.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { DatasetOptions, DatasetSummary } from './dataset.js';
import type { ReplayOptions, ReplayProgress, ReplayResult } from './replay.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: ((p: ReplayProgress) => void) | undefined;
}

export class GeneratorProcess {
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  readonly pid: number;

  constructor() {
    this.proc = fork(path.join(REPO_ROOT, 'bench', 'harness', 'generator-main.ts'), [], {
      cwd: REPO_ROOT,
      // Large data sets keep a million label sets on the heap.
      execArgv: ['--import', 'tsx', '--max-old-space-size=8192'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    if (this.proc.pid === undefined) throw new Error('could not start the load generator process');
    this.pid = this.proc.pid;
    this.proc.on(
      'message',
      (m: { id: number; ok?: boolean; result?: unknown; error?: string; progress?: ReplayProgress }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.progress) {
          p.onProgress?.(m.progress);
          return;
        }
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(`load generator: ${m.error}`));
      },
    );
    this.proc.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  private call<T>(msg: Record<string, unknown>, onProgress?: (p: ReplayProgress) => void): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
      this.proc.send({ ...msg, id });
    });
  }

  build(name: string, options: DatasetOptions): Promise<DatasetSummary> {
    return this.call({ cmd: 'build', name, options });
  }

  replay(
    name: string,
    options: Omit<ReplayOptions, 'onProgress'>,
    onProgress?: (p: ReplayProgress) => void,
  ): Promise<ReplayResult> {
    return this.call({ cmd: 'replay', name, options }, onProgress);
  }

  drop(name: string): Promise<void> {
    return this.call({ cmd: 'drop', name });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.disconnect();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
