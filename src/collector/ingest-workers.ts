/**
 * Ingest worker threads (`ingest.workers` ≥ 1): the collector's per-sample work (decompression, decoding,
 * the series registry, rate limits, bus payload encoding: ingest-decoder.ts) runs off the main thread, which
 * keeps HTTP, the bus append and the acknowledgement.
 *
 * Invariant: every tenant is owned by exactly one worker (`workerOfTenant`: a hash of the tenant id), and its
 * whole ingest state lives there: series registry and refs, active-series count, newest sample times, OTLP
 * delta totals and the rate-limit bucket. So each limit is exactly as exact as on one thread, whichever
 * protocol or connection a request comes through, and no state is shared between threads. Refs never cross a
 * thread: a worker answers with encoded payloads per partition key. The cost: one tenant is decoded by one
 * worker at a time (a tenant's ingest scales to one core besides the main thread; many tenants to all).
 *
 * The request body goes to the worker transferred when it owns its whole memory (a Fastify body read in one
 * chunk), else copied (a few KB: smaller bodies may share Node's buffer pool); payloads come back transferred.
 *
 * A worker that dies (an uncaught error, out of memory) is not restarted: its tenants' registries are gone,
 * and a fresh one would forget their active series. `/readyz` fails naming it, requests it was decoding are
 * answered 503 (nothing of them reached the bus) and so are later requests of its tenants.
 */
import type { Worker } from 'node:worker_threads';
import { Errors, fromWireError, twError, type WireError } from '../model/errors.js';
import { startWorker } from '../model/worker-entry.js';
import type { IngestLimits } from './ingest-context.js';
import type { AccumulationUndo, IngestEngine, IngestJob, IngestResult } from './ingest-decoder.js';
import type { TenantLimitsConfig } from './tenant-limits.js';

export interface IngestWorkerData {
  readonly limits: IngestLimits;
  readonly tenants: TenantLimitsConfig;
}

export type ToIngestWorker =
  | { readonly type: 'decode'; readonly id: number; readonly job: IngestJob }
  | { readonly type: 'undo'; readonly tenant: string; readonly undo: AccumulationUndo }
  | { readonly type: 'hold'; readonly flag: Int32Array };

type FromIngestWorker =
  | { readonly id: number; readonly result: IngestResult }
  | { readonly id: number; readonly error: WireError };

interface Pending {
  readonly worker: number;
  readonly resolve: (r: IngestResult) => void;
  readonly reject: (e: Error) => void;
}

/** Which of `count` workers owns `tenant` (FNV-1a over its UTF-16 units). */
export function workerOfTenant(tenant: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tenant.length; i++) h = Math.imul(h ^ tenant.charCodeAt(i), 0x01000193);
  return (h >>> 0) % count;
}

export class IngestWorkers implements IngestEngine {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Per worker: why it stopped, or undefined while it runs. */
  private readonly stopped: (string | undefined)[];
  private readonly inFlight: number[];
  private readonly requests: number[];
  private closing = false;

  private constructor(private readonly workers: Worker[]) {
    this.stopped = workers.map(() => undefined);
    this.inFlight = workers.map(() => 0);
    this.requests = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.on('message', (m: FromIngestWorker) => this.answer(m));
      w.on('error', (err) => this.lost(i, `failed: ${err.message}`));
      w.on('exit', (code) => this.lost(i, `exited with code ${code}`));
    });
  }

  /** Starts `count` workers and resolves once every one runs. */
  static async open(count: number, data: IngestWorkerData): Promise<IngestWorkers> {
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const w = startWorker(import.meta.url, 'ingest-worker', { workerData: data, name: `ingest-${i}` });
        workers.push(w);
        await new Promise<void>((resolve, reject) => {
          w.once('online', resolve);
          w.once('error', reject);
          w.once('exit', (code) => reject(new Error(`ingest worker ${i} exited with code ${code} at start`)));
        });
        w.removeAllListeners();
      }
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new IngestWorkers(workers);
  }

  get count(): number {
    return this.workers.length;
  }

  /** Why the pool cannot serve every tenant (a worker stopped), for `/readyz`; undefined when it can. */
  get failure(): string | undefined {
    if (this.closing) return undefined;
    const i = this.stopped.findIndex((s) => s !== undefined);
    return i < 0 ? undefined : `ingest worker ${i} ${this.stopped[i]}; its tenants' writes are refused (503)`;
  }

  decode(job: IngestJob): Promise<IngestResult> {
    const w = workerOfTenant(job.tenant, this.workers.length);
    const why = this.stopped[w];
    if (why !== undefined) return Promise.reject(this.unavailable(w, why));
    const id = ++this.nextId;
    let body = job.body;
    const buffer = body.buffer as ArrayBuffer;
    // Transfer only a body that owns all its memory and is too big for Node's shared buffer pool.
    const owned =
      body.byteOffset === 0 && body.byteLength === buffer.byteLength && body.byteLength > Buffer.poolSize;
    if (!owned) body = body.slice();
    this.inFlight[w]!++;
    this.requests[w]!++;
    return new Promise<IngestResult>((resolve, reject) => {
      this.pending.set(id, { worker: w, resolve, reject });
      const message: ToIngestWorker = { type: 'decode', id, job: { ...job, body } };
      try {
        this.workers[w]!.postMessage(message, [body.buffer as ArrayBuffer]);
      } catch (err) {
        this.pending.delete(id);
        this.inFlight[w]!--;
        reject(err);
      }
    });
  }

  undo(tenant: string, undo: AccumulationUndo): void {
    const w = workerOfTenant(tenant, this.workers.length);
    if (this.stopped[w] !== undefined) return;
    const message: ToIngestWorker = { type: 'undo', tenant, undo };
    this.workers[w]!.postMessage(message);
  }

  /** Per worker: requests being decoded, requests so far, event-loop utilization since start, running. */
  stats(): { inFlight: number; requests: number; utilization: number; up: boolean }[] {
    return this.workers.map((w, i) => ({
      inFlight: this.inFlight[i]!,
      requests: this.requests[i]!,
      utilization: this.stopped[i] === undefined ? w.performance.eventLoopUtilization().utilization : 0,
      up: this.stopped[i] === undefined,
    }));
  }

  /**
   * Tests only: keeps worker `i` busy until `flag[0]` is set non-zero (a SharedArrayBuffer), so that requests
   * queue there; `terminateForTest` then kills it as a crash would.
   */
  holdForTest(i: number, flag: Int32Array): void {
    const message: ToIngestWorker = { type: 'hold', flag };
    this.workers[i]!.postMessage(message);
  }

  async terminateForTest(i: number): Promise<void> {
    await this.workers[i]!.terminate();
  }

  async stop(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private answer(m: FromIngestWorker): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.inFlight[p.worker]!--;
    if ('error' in m) p.reject(fromWireError(m.error));
    else p.resolve(m.result);
  }

  private lost(i: number, why: string): void {
    if (this.stopped[i] !== undefined) return;
    this.stopped[i] = this.closing ? 'was stopped' : why;
    for (const [id, p] of this.pending) {
      if (p.worker !== i) continue;
      this.pending.delete(id);
      this.inFlight[i]!--;
      p.reject(this.unavailable(i, this.stopped[i]!));
    }
  }

  private unavailable(i: number, why: string): Error {
    return twError(
      Errors.unavailable,
      `trainwatch cannot decode this tenant's writes: its ingest worker ${i} ${why}; nothing of this ` +
        'request was stored, retry later',
      5,
    );
  }
}
