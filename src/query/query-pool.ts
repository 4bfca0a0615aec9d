/**
 * PromQL off the ingest event loop: /api/v1/query and /query_range, and the recording and alerting rules'
 * expressions (rules/manager.ts in alerting), run on a pool of worker threads
 * (query-worker.ts) that read storage through MessagePorts. A heavy query then costs ingest nothing but the
 * storage reads it asks for, and it can always be stopped:
 * - the engine checks the query's deadline between series and steps and answers Prometheus's timeout;
 * - a worker still busy `graceMs` past the deadline (stuck inside one step, or in storage) is terminated and
 *   replaced, and its client gets the timeout answer all the same;
 * - `stop()` terminates busy workers at once, so shutting the server down never waits for a query.
 * Queries wait for a free worker in a bounded queue; one more is refused with 503 (the client retries).
 * Rule evaluations are never refused for a full queue (at most one per rule group is in flight, and a refused
 * one would fail the rule for a whole interval): they wait ahead of the API's queries, so that dashboards
 * hammering the pool delay alerts by at most the queries already running, as Prometheus's shared query
 * gate does. Their deadline applies all the same.
 * Workers start on the first query that needs them (a server that is never queried starts none).
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import { collectedCounter, collectedGauge } from '../model/collected-metrics.js';
import { startWorker } from '../model/worker-entry.js';
import { localQueryEndpoints, type Storage, type StorageQueryEndpoints } from '../storage/index.js';
import {
  answerError,
  errorAnswer,
  type PromAnswer,
  type PromQueryRequest,
  type RuleAnswer,
  type RuleQueryRequest,
} from './prom-eval.js';
import type { EngineOptions, InstantSample } from './promql/index.js';
import type { QueryWorkerAnswer, QueryWorkerData, QueryWorkerRequest } from './query-worker.js';

export interface QueryPoolOptions {
  /** Worker threads at most. */
  readonly size: number;
  /** Queries waiting for a worker at most; more are refused with 503. */
  readonly maxQueued: number;
  /** How long past its deadline a busy worker is terminated. */
  readonly graceMs: number;
  /** Where workers get their storage ports (one fresh set per worker). */
  readonly endpoints: StorageQueryEndpoints;
  /** The engine's settings in every worker. */
  readonly engine: EngineOptions;
  /** Where the pool's self-metrics go. */
  readonly registry?: Registry;
}

/** What a job asks a worker: an API query (answered as JSON) or a rule's expression (answered as samples). */
type Task =
  | { readonly type: 'query'; readonly req: PromQueryRequest }
  | { readonly type: 'rule'; readonly req: RuleQueryRequest };

interface Job {
  readonly id: number;
  readonly task: Task;
  /** Date.now() by which the answer is due. */
  readonly deadline: number;
  readonly resolve: (a: RuleAnswer) => void;
  readonly signal: AbortSignal | undefined;
  /** Removes the job's abort listener. */
  detach(): void;
  /** Fires when the job waited in the queue past its deadline. */
  queueTimer?: NodeJS.Timeout;
}

interface Slot {
  readonly worker: Worker;
  job: Job | undefined;
  /** Answers the client with the timeout at the deadline, if the worker has not answered by then. */
  answerTimer: NodeJS.Timeout | undefined;
  /** Terminates the worker when its job overruns the deadline by the grace period. */
  killTimer: NodeJS.Timeout | undefined;
  /** Set once the worker was terminated or exited: the slot takes no more jobs. */
  dead: boolean;
}

/** Time kept back from a query's deadline for its answer to travel to the client (at most a tenth of it). */
const ANSWER_RESERVE_MS = 100;

function timeoutAnswer(where: string): PromAnswer {
  return errorAnswer(503, 'timeout', `query timed out in ${where}`);
}

export class QueryPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private stopped = false;
  private terminated = 0;

  constructor(private readonly opts: QueryPoolOptions) {
    if (!(opts.size >= 1)) throw new RangeError(`a query pool needs at least one worker (got ${opts.size})`);
    if (opts.registry) {
      collectedGauge(
        opts.registry,
        'trainwatch_query_workers_busy',
        'Query worker threads evaluating a query now.',
        () => this.busyWorkers,
      );
      collectedGauge(
        opts.registry,
        'trainwatch_query_queue_length',
        'Queries waiting for a free query worker.',
        () => this.queueLength,
      );
      collectedCounter(
        opts.registry,
        'trainwatch_query_terminated_total',
        'Query workers terminated because their query overran its deadline (or the server stopped).',
        () => this.terminatedWorkers,
      );
    }
  }

  get busyWorkers(): number {
    let n = 0;
    for (const s of this.slots) if (s.job) n++;
    return n;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  /** Workers terminated so far (deadline overruns and stops). */
  get terminatedWorkers(): number {
    return this.terminated;
  }

  /** Worker threads alive now. */
  get workerCount(): number {
    return this.slots.length;
  }

  /**
   * Evaluates `req` on a worker. Resolves with the answer to send (Prometheus's error answers included, such
   * as 503 timeout when the query overran `req.timeoutMs`, counted from now); never rejects.
   */
  run(req: PromQueryRequest, signal?: AbortSignal): Promise<PromAnswer> {
    return this.submit({ type: 'query', req }, signal);
  }

  /**
   * Evaluates a recording or alerting rule's expression on a worker: resolves with its result as an instant
   * vector; rejects with an Error whose message is the PromQL error (parse error, limit, timeout after
   * `req.timeoutMs`, the server stopping), which the rule's `lastError` shows.
   */
  async evaluateRule(req: RuleQueryRequest, signal?: AbortSignal): Promise<readonly InstantSample[]> {
    const answer = await this.submit({ type: 'rule', req }, signal);
    if (answer.status === 200 && answer.samples) return answer.samples;
    throw new Error(answerError(answer));
  }

  private submit(task: Task, signal: AbortSignal | undefined): Promise<RuleAnswer> {
    if (this.stopped) return Promise.resolve(errorAnswer(503, 'unavailable', 'the server is stopping'));
    if (signal?.aborted) return Promise.resolve(errorAnswer(503, 'canceled', 'query was canceled'));
    if (task.type === 'query' && this.queue.length >= this.opts.maxQueued && !this.hasFreeSlot()) {
      return Promise.resolve(
        errorAnswer(
          503,
          'unavailable',
          `too many queries: ${this.busyWorkers} running and ${this.queue.length} waiting (query.workers, query.max_queued); retry later`,
        ),
      );
    }
    const timeoutMs = task.req.timeoutMs;
    return new Promise<RuleAnswer>((resolve) => {
      const id = this.nextId++;
      const onAbort = () => this.cancel(job);
      const job: Job = {
        id,
        task,
        deadline: Date.now() + timeoutMs,
        resolve,
        signal,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (task.type === 'rule') {
        // Behind the rules already waiting, ahead of every API query.
        const firstQuery = this.queue.findIndex((j) => j.task.type === 'query');
        this.queue.splice(firstQuery < 0 ? this.queue.length : firstQuery, 0, job);
      } else this.queue.push(job);
      this.dispatch();
      if (this.queue.includes(job)) {
        job.queueTimer = setTimeout(() => {
          const i = this.queue.indexOf(job);
          if (i >= 0) this.queue.splice(i, 1);
          this.finish(job, timeoutAnswer('the query queue'));
        }, timeoutMs);
      }
    });
  }

  /** Terminates every worker now and answers every query in flight or waiting with 503. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const job of this.queue.splice(0))
      this.finish(job, errorAnswer(503, 'unavailable', 'the server is stopping'));
    const exits: Promise<unknown>[] = [];
    for (const slot of this.slots.splice(0)) {
      if (slot.job) this.finish(slot.job, errorAnswer(503, 'unavailable', 'the server is stopping'));
      exits.push(this.kill(slot));
    }
    await Promise.all(exits);
  }

  private hasFreeSlot(): boolean {
    return this.slots.length < this.opts.size || this.slots.some((s) => !s.job && !s.dead);
  }

  /** Hands waiting queries to free workers, starting workers up to the pool's size. */
  private dispatch(): void {
    while (this.queue.length > 0 && !this.stopped) {
      let slot = this.slots.find((s) => !s.job && !s.dead);
      if (!slot) {
        if (this.slots.length >= this.opts.size) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      if (job.queueTimer) clearTimeout(job.queueTimer);
      const remaining = job.deadline - Date.now();
      if (remaining <= 0) {
        this.finish(job, timeoutAnswer('the query queue'));
        continue;
      }
      slot.job = job;
      // The engine stops a little before the deadline, so that its timeout answer still crosses back and
      // reaches the client within the request's timeout.
      const engineMs = Math.max(1, remaining - Math.min(ANSWER_RESERVE_MS, remaining / 10));
      slot.worker.postMessage(
        (job.task.type === 'rule'
          ? { type: 'rule', id: job.id, req: { ...job.task.req, timeoutMs: engineMs } }
          : {
              type: 'query',
              id: job.id,
              req: { ...job.task.req, timeoutMs: engineMs },
            }) satisfies QueryWorkerRequest,
      );
      const s = slot;
      // The client has its answer by the deadline whatever the worker does (a busy machine may schedule a
      // low-priority worker late); the worker then has the grace period to stop by itself.
      const answerMs = Math.max(1, remaining - Math.min(ANSWER_RESERVE_MS, remaining / 10) / 2);
      slot.answerTimer = setTimeout(() => this.finish(job, timeoutAnswer('evaluation')), answerMs);
      slot.killTimer = setTimeout(() => this.overrun(s), remaining + this.opts.graceMs);
    }
  }

  private spawn(): Slot {
    const ports = this.opts.endpoints.connect();
    const data: QueryWorkerData = {
      ports,
      ...(this.opts.endpoints.routing ? { routing: this.opts.endpoints.routing } : {}),
      engine: this.opts.engine,
    };
    const worker: Worker = startWorker(import.meta.url, 'query-worker', {
      workerData: data,
      transferList: [...ports],
    });
    const slot: Slot = { worker, job: undefined, answerTimer: undefined, killTimer: undefined, dead: false };
    worker.on('message', (a: QueryWorkerAnswer) => {
      const job = slot.job;
      if (!job || job.id !== a.id) return; // an answer to a query already answered (cancelled)
      this.release(slot);
      this.finish(job, { status: a.status, body: a.body, ...(a.samples ? { samples: a.samples } : {}) });
      this.dispatch();
    });
    const lost = (answer: PromAnswer) => {
      if (slot.dead) return;
      slot.dead = true;
      this.remove(slot);
      const job = slot.job;
      this.release(slot);
      if (job) this.finish(job, answer);
      this.dispatch();
    };
    worker.on('error', (err: Error & { code?: string }) =>
      lost(
        // A query that exhausts its worker's heap takes down that worker only; the server goes on.
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? errorAnswer(422, 'execution', 'the query ran out of memory in its query worker; narrow it')
          : errorAnswer(500, 'internal', `the query worker failed: ${err.message}`),
      ),
    );
    worker.on('exit', (code) =>
      lost(errorAnswer(500, 'internal', `the query worker failed: it exited with code ${code}`)),
    );
    // An idle pool does not keep the process alive.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  /** The query on `slot` ran past its deadline and grace: the worker is terminated and replaced. */
  private overrun(slot: Slot): void {
    const job = slot.job;
    if (!job) return;
    this.release(slot);
    this.remove(slot);
    void this.kill(slot);
    this.finish(job, timeoutAnswer('evaluation (the query worker was terminated)'));
    this.dispatch();
  }

  /** The client went away: a waiting query leaves the queue, a running one is told to stop. */
  private cancel(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    else {
      const slot = this.slots.find((s) => s.job === job);
      if (slot) slot.worker.postMessage({ type: 'cancel', id: job.id } satisfies QueryWorkerRequest);
      // The worker stays busy until it answers (then the answer is dropped) or overruns (then terminated).
    }
    this.finish(job, errorAnswer(503, 'canceled', 'query was canceled'));
  }

  private release(slot: Slot): void {
    if (slot.answerTimer) clearTimeout(slot.answerTimer);
    if (slot.killTimer) clearTimeout(slot.killTimer);
    slot.answerTimer = undefined;
    slot.killTimer = undefined;
    slot.job = undefined;
  }

  private remove(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  private kill(slot: Slot): Promise<number> {
    slot.dead = true;
    if (slot.killTimer) clearTimeout(slot.killTimer);
    this.terminated++;
    return slot.worker.terminate();
  }

  private finish(job: Job, answer: RuleAnswer): void {
    if (job.queueTimer) clearTimeout(job.queueTimer);
    job.detach();
    job.resolve(answer);
  }
}

/** The `query:` section of the configuration, as far as the pool needs it (src/config/schema.ts). */
export interface QueryPoolConfig {
  readonly workers?: number | undefined;
  readonly max_queued: number;
  readonly terminate_grace: number;
  readonly timeout: number;
  readonly max_samples: number;
  readonly max_series: number;
  readonly lookback_delta: number;
  readonly max_subquery_points: number;
}

/** Workers when `query.workers` is unset: one less than the cores, so ingest keeps a core, and at least one. */
export function defaultQueryWorkers(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

/**
 * The query pool the configuration asks for; undefined with `query.workers: 0` (queries then evaluate in the
 * server's thread). Workers read storage through `shards` when given (the processor workers' shards, read
 * directly, without a hop through this thread), else through ports to `storage` served in this thread.
 */
export function startQueryPool(
  storage: Pick<Storage, 'querier'>,
  config: QueryPoolConfig,
  registry?: Registry,
  shards?: StorageQueryEndpoints,
): { pool: QueryPool; stop(): Promise<void> } | undefined {
  const size = config.workers ?? defaultQueryWorkers();
  if (size === 0) return undefined;
  const local = shards ? undefined : localQueryEndpoints(storage);
  const endpoints = shards ?? local!;
  const pool = new QueryPool({
    size,
    maxQueued: config.max_queued,
    graceMs: config.terminate_grace,
    endpoints,
    engine: {
      timeoutMs: config.timeout,
      maxSamples: config.max_samples,
      maxSeries: config.max_series,
      lookbackDeltaMs: config.lookback_delta,
      maxSubqueryPoints: config.max_subquery_points,
    },
    ...(registry ? { registry } : {}),
  });
  return {
    pool,
    async stop() {
      await pool.stop();
      local?.close();
    },
  };
}
