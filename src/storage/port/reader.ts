/**
 * The calling side of the storage port protocol (protocol.ts): a {@link Querier} (and appender) over ports,
 * one port per storage shard. A query worker reads every shard through one of these; the main thread reads
 * the processor workers' shards through one too.
 *
 * Selections fan out to every shard and merge in Prometheus's series order. A series present in more than one
 * shard (its partition moved between shards, e.g. after the worker count changed) is merged sample by sample,
 * identical timestamps once. Cancelling a call (its AbortSignal) cancels it on every shard.
 */
import type { MessagePort } from 'node:worker_threads';
import { hashPartitionKey, jobPartitionKey } from '../../bus/index.js';
import type { SeriesBatch } from '../../model/batch.js';
import { Errors, twError } from '../../model/errors.js';
import type { LabelMatcher, LabelSet } from '../../model/labels.js';
import { ArraySeries } from '../iterators.js';
import { AGG_COLUMNS, AGG_LAST, RollupIterator } from '../rollup.js';
import type {
  AggregateArrays,
  AggregateIterator,
  AppendStats,
  Querier,
  SelectedSeries,
  SelectHints,
  SeriesSet,
} from '../storage.js';
import { labelSetSortKey } from '../symbols.js';
import {
  fromWireError,
  type SelectPart,
  type StorageRequest,
  type StorageResponse,
  type WireMatcher,
  type WireScope,
} from './protocol.js';

/** Ports to a storage's shards, to hand (transfer) to a worker that reads them. */
export interface StorageQueryEndpoints {
  /** Fresh ports, one per shard; the caller transfers them and closes them when done. */
  connect(): MessagePort[];
  /** How series are spread over the shards (plain data, to pass along with the ports); absent: one shard. */
  readonly routing?: ShardRouting;
}

/**
 * How the embedded storage spreads series over shards: a series lives in the shard of its bus partition,
 * `partition mod shards`, and the partition of a job's series is its `(tenant, job_id)` key's (bus.ts).
 */
export interface ShardRouting {
  readonly busPartitions: number;
  readonly shards: number;
}

/**
 * The one shard a selection can find data in, when its matchers pin a job (`job_id="…"`, one tenant), else
 * undefined (every shard is asked).
 */
export function shardOfSelection(
  routing: ShardRouting | undefined,
  tenant: string | null,
  matchers: readonly LabelMatcher[],
): number | undefined {
  if (!routing || routing.shards <= 1 || tenant === null) return undefined;
  const job = matchers.find((m) => m.name === 'job_id' && m.type === '=' && m.value !== '');
  if (!job) return undefined;
  return (hashPartitionKey(jobPartitionKey(tenant, job.value)) % routing.busPartitions) % routing.shards;
}

interface Pending {
  readonly parts: SelectPart[];
  readonly resolve: (r: {
    parts: SelectPart[];
    warnings: readonly string[];
    err?: Error;
    value?: unknown;
  }) => void;
  readonly reject: (e: Error) => void;
}

/** One shard behind one port. Calls are concurrent; each may be cancelled. */
export class StoragePortClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (msg: StorageResponse) => this.onMessage(msg));
    port.once('close', () => this.failAll(twError(Errors.unavailable, 'the storage shard went away')));
    // An idle port does not keep its thread alive; calls in flight do (their promises are awaited).
    port.unref();
  }

  /** Sends `req` (its id assigned here) and collects the answer. */
  call(
    req: DistributiveOmit<Exclude<StorageRequest, { op: 'cancel' }>, 'id'>,
    signal?: AbortSignal,
  ): Promise<{ parts: SelectPart[]; warnings: readonly string[]; err?: Error; value?: unknown }> {
    if (this.closed) return Promise.reject(twError(Errors.unavailable, 'the storage shard went away'));
    signal?.throwIfAborted();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        this.port.postMessage({ op: 'cancel', id } satisfies StorageRequest);
        reject(signal!.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        parts: [],
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      this.port.ref();
      this.port.postMessage({ ...req, id } as StorageRequest);
    }).finally(() => {
      if (this.pending.size === 0 && !this.closed) this.port.unref();
    }) as Promise<{ parts: SelectPart[]; warnings: readonly string[]; err?: Error; value?: unknown }>;
  }

  close(): void {
    if (this.closed) return;
    this.failAll(twError(Errors.unavailable, 'the storage reader was closed'));
    this.port.close();
  }

  private onMessage(msg: StorageResponse): void {
    const p = this.pending.get(msg.id);
    if (!p) return; // cancelled: late parts are dropped
    switch (msg.type) {
      case 'part':
        p.parts.push(msg.part);
        return;
      case 'end':
        this.pending.delete(msg.id);
        p.resolve({
          parts: p.parts,
          warnings: msg.warnings,
          ...(msg.err ? { err: fromWireError(msg.err) } : {}),
        });
        return;
      case 'result':
        this.pending.delete(msg.id);
        p.resolve({ parts: [], warnings: [], value: msg.value });
        return;
      case 'error':
        this.pending.delete(msg.id);
        p.reject(fromWireError(msg.error));
        return;
    }
  }

  private failAll(err: Error): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A Storage-shaped reader over one port per shard: selects fan out and merge. */
export class PortStorageReader {
  readonly shards: readonly StoragePortClient[];

  constructor(
    ports: readonly (MessagePort | StoragePortClient)[],
    private readonly routing?: ShardRouting,
  ) {
    this.shards = ports.map((p) => (p instanceof StoragePortClient ? p : new StoragePortClient(p)));
  }

  querier(tenant: string | null, minT: number, maxT: number): Querier {
    return new PortQuerier(this.shards, { tenant, minT, maxT }, this.routing);
  }

  /** Appends `batch` to the shard at `index` (the caller routes series to their shard). */
  async append(
    index: number,
    tenant: string,
    batch: SeriesBatch,
    signal?: AbortSignal,
  ): Promise<AppendStats> {
    const shard = this.shards[index];
    if (!shard)
      throw new RangeError(`storage shard ${index} does not exist (there are ${this.shards.length})`);
    return (await shard.call({ op: 'append', tenant, batch }, signal)).value as AppendStats;
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

class PortQuerier implements Querier {
  constructor(
    private readonly allShards: readonly StoragePortClient[],
    private readonly scope: WireScope,
    private readonly routing: ShardRouting | undefined,
  ) {}

  /** The shards that may hold what `matchers` select: one when they pin a job. */
  private shardsFor(matchers: readonly LabelMatcher[]): readonly StoragePortClient[] {
    const one = shardOfSelection(this.routing, this.scope.tenant, matchers);
    return one === undefined ? this.allShards : [this.allShards[one]!];
  }

  async select(
    matchers: readonly LabelMatcher[],
    hints?: SelectHints,
    signal?: AbortSignal,
  ): Promise<SeriesSet> {
    const wire = toWire(matchers);
    const shards = this.shardsFor(matchers);
    const local = new AbortController();
    const onAbort = () => local.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const answers = await Promise.all(
        shards.map((s) =>
          s.call(
            { op: 'select', scope: this.scope, matchers: wire, ...(hints ? { hints } : {}) },
            local.signal,
          ),
        ),
      ).catch((err) => {
        local.abort(err); // one shard failed: stop reading the others
        throw err;
      });
      const warnings = answers.flatMap((a) => a.warnings);
      const err = answers.find((a) => a.err)?.err;
      const lists = answers.map((a) => seriesOfParts(a.parts));
      let total = 0;
      for (const l of lists) for (const s of l) total += s.t.length;
      if (hints?.maxSamples !== undefined && total > hints.maxSamples)
        throw twError(
          Errors.budgetExceeded,
          `the selection holds more than ${hints.maxSamples} samples (the query's memory budget); narrow the selectors or the time range`,
        );
      return { series: mergeSorted(lists), warnings, ...(err ? { err } : {}) };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async labelNames(matchers: readonly LabelMatcher[] = [], signal?: AbortSignal): Promise<string[]> {
    const wire = toWire(matchers);
    const answers = await Promise.all(
      this.shardsFor(matchers).map((s) =>
        s.call({ op: 'labelNames', scope: this.scope, matchers: wire }, signal),
      ),
    );
    return union(answers.map((a) => a.value as string[]));
  }

  async labelValues(
    name: string,
    matchers: readonly LabelMatcher[] = [],
    signal?: AbortSignal,
  ): Promise<string[]> {
    const wire = toWire(matchers);
    const answers = await Promise.all(
      this.shardsFor(matchers).map((s) =>
        s.call({ op: 'labelValues', scope: this.scope, name, matchers: wire }, signal),
      ),
    );
    return union(answers.map((a) => a.value as string[]));
  }
}

function toWire(matchers: readonly LabelMatcher[]): WireMatcher[] {
  return matchers.map((m) => ({ type: m.type, name: m.name, value: m.value }));
}

function union(lists: readonly string[][]): string[] {
  if (lists.length === 1) return lists[0]!;
  return [...new Set(lists.flat())].sort();
}

/** The series of one shard's parts, in the order the shard sent them (its series order). */
function seriesOfParts(parts: readonly SelectPart[]): ArraySeries[] {
  const out: ArraySeries[] = [];
  for (const p of parts) {
    const total = p.t.length;
    for (let i = 0; i < p.labels.length; i++) {
      const from = p.offsets[i]!;
      const to = p.offsets[i + 1]!;
      const res = p.resolutionMs[i]!;
      const labels = p.labels[i]!;
      const t = p.t.subarray(from, to);
      const v = p.v.subarray(from, to);
      const agg = p.agg;
      out.push(
        res > 0 && agg
          ? new RollupArraySeries(
              labels,
              t,
              v,
              res,
              Array.from({ length: AGG_COLUMNS }, (_, c) => agg.subarray(c * total + from, c * total + to)),
            )
          : new ArraySeries(labels, t, v),
      );
    }
  }
  return out;
}

/**
 * Merges per-shard lists, each in Prometheus's series order, into one. With one non-empty list (a query
 * scoped to one job reads one shard) it is that list.
 */
function mergeSorted(lists: readonly ArraySeries[][]): SelectedSeries[] {
  const nonEmpty = lists.filter((l) => l.length > 0);
  if (nonEmpty.length === 0) return [];
  if (nonEmpty.length === 1) return nonEmpty[0]!;
  const keyed = nonEmpty.map((l) => ({ list: l, keys: l.map((s) => labelSetSortKey(s.labels)), i: 0 }));
  const out: SelectedSeries[] = [];
  for (;;) {
    let best: string | undefined;
    for (const k of keyed)
      if (k.i < k.list.length && (best === undefined || k.keys[k.i]! < best)) best = k.keys[k.i]!;
    if (best === undefined) return out;
    const same: ArraySeries[] = [];
    for (const k of keyed)
      if (k.i < k.list.length && k.keys[k.i] === best) {
        same.push(k.list[k.i]!);
        k.i++;
      }
    out.push(same.length === 1 ? same[0]! : mergeSeries(same));
  }
}

/** One series from its copies in several shards (each in time order): a timestamp is kept once. */
function mergeSeries(copies: readonly ArraySeries[]): ArraySeries {
  let merged = copies[0]!;
  for (let k = 1; k < copies.length; k++) merged = mergeTwo(merged, copies[k]!);
  return merged;
}

function mergeTwo(a: ArraySeries, b: ArraySeries): ArraySeries {
  const cap = a.t.length + b.t.length;
  const t = new Float64Array(cap);
  const v = new Float64Array(cap);
  const rollup = a instanceof RollupArraySeries && b instanceof RollupArraySeries;
  const agg = rollup ? Array.from({ length: AGG_COLUMNS }, () => new Float64Array(cap)) : undefined;
  let i = 0;
  let j = 0;
  let n = 0;
  const take = (s: ArraySeries, k: number) => {
    t[n] = s.t[k]!;
    v[n] = s.v[k]!;
    if (agg) for (let c = 0; c < AGG_COLUMNS; c++) agg[c]![n] = (s as RollupArraySeries).agg[c]![k]!;
    n++;
  };
  while (i < a.t.length || j < b.t.length) {
    if (j >= b.t.length || (i < a.t.length && a.t[i]! < b.t[j]!)) take(a, i++);
    else if (i >= a.t.length || b.t[j]! < a.t[i]!) take(b, j++);
    else {
      take(b, j++); // the same timestamp in both: kept once
      i++;
    }
  }
  return agg
    ? new RollupArraySeries(
        a.labels,
        t.subarray(0, n),
        v.subarray(0, n),
        (a as RollupArraySeries).resolutionMs,
        agg.map((c) => c.subarray(0, n)),
      )
    : new ArraySeries(a.labels, t.subarray(0, n), v.subarray(0, n));
}

/** A series answered from a rollup tier: `v` is the function's aggregate, `agg` every aggregate. */
class RollupArraySeries extends ArraySeries {
  constructor(
    labels: LabelSet,
    t: Float64Array,
    v: Float64Array,
    readonly resolutionMs: number,
    /** min, max, sum, count, last (rollup.ts AGG_*), aligned with `t`. */
    readonly agg: Float64Array[],
  ) {
    super(labels, t, v);
  }

  aggregates(): AggregateIterator {
    return new RollupIterator({ t: this.t, cols: this.agg, n: this.t.length }, AGG_LAST);
  }

  readAggregates(out: AggregateArrays): number {
    const n = this.t.length;
    out.reset();
    out.reserve(n);
    out.t.set(this.t);
    for (let c = 0; c < AGG_COLUMNS; c++) out.cols[c]!.set(this.agg[c]!);
    out.n = n;
    return n;
  }
}
