/**
 * A query worker thread (see query-pool.ts): evaluates PromQL queries off the server's event loop, reading
 * storage through the ports it was given (one per storage shard): the Prometheus API's queries and the
 * recording and alerting rules' expressions. One query at a time; a `cancel` for it aborts it between steps. The pool terminates the thread when a query overruns its deadline anyway.
 */
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { TrainwatchError } from '../model/errors.js';
import { PortStorageReader, type ShardRouting } from '../storage/index.js';
import {
  errorAnswer,
  evaluatePromQuery,
  evaluateRuleQuery,
  type PromAnswer,
  type PromQueryRequest,
  type RuleAnswer,
  type RuleQueryRequest,
} from './prom-eval.js';
import { type EngineOptions, PromqlEngine } from './promql/index.js';

/** What the pool gives a worker when it starts it. */
export interface QueryWorkerData {
  /** Ports to the storage, one per shard (transferred). */
  readonly ports: readonly MessagePort[];
  /** How series are spread over the shards (a query scoped to one job reads one shard). */
  readonly routing?: ShardRouting;
  readonly engine: EngineOptions;
}

/** Pool → worker: an API query (answered as JSON), a rule's query (answered as samples), or a cancel. */
export type QueryWorkerRequest =
  | { readonly type: 'query'; readonly id: number; readonly req: PromQueryRequest }
  | { readonly type: 'rule'; readonly id: number; readonly req: RuleQueryRequest }
  | { readonly type: 'cancel'; readonly id: number };

/** Worker → pool: the answer to query `id` (a rule's answer carries its samples). */
export interface QueryWorkerAnswer extends RuleAnswer {
  readonly id: number;
}

/** A non-PromQL failure (storage unavailable, over a storage budget) as Prometheus's error answer. */
function failureAnswer(err: unknown): PromAnswer {
  if (err instanceof TrainwatchError) {
    const status = err.kind.status;
    const errorType = status === 503 ? 'unavailable' : status === 422 ? 'execution' : 'bad_data';
    return errorAnswer(status, errorType, err.message);
  }
  return errorAnswer(500, 'internal', (err as Error)?.message ?? String(err));
}

/**
 * Lowers this thread's CPU priority (nice +10 on Linux, where a thread's id is its own scheduling entity), so
 * that when cores are scarce, ingest and the processors run first and a heavy query takes what is left.
 * Elsewhere, or where it is not allowed, the thread keeps the process's priority.
 */
function lowerThreadPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + 10));
  } catch {
    // Not Linux, or not permitted: run at the process's priority.
  }
}

const port = parentPort;
if (port) {
  lowerThreadPriority();
  const data = workerData as QueryWorkerData;
  const reader = new PortStorageReader(data.ports, data.routing);
  const engine = new PromqlEngine(data.engine);
  const running = new Map<number, AbortController>();
  port.on('message', (msg: QueryWorkerRequest) => {
    if (msg.type === 'cancel') {
      running.get(msg.id)?.abort(new Error('the client closed the request'));
      return;
    }
    const abort = new AbortController();
    running.set(msg.id, abort);
    const evaluation: Promise<PromAnswer> =
      msg.type === 'rule'
        ? evaluateRuleQuery(engine, reader, msg.req, abort.signal)
        : evaluatePromQuery(engine, reader, msg.req, abort.signal);
    evaluation.catch(failureAnswer).then((answer) => {
      running.delete(msg.id);
      port.postMessage({ id: msg.id, ...answer } satisfies QueryWorkerAnswer);
    });
  });
}
