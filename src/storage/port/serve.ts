/**
 * The serving side of the storage port protocol (protocol.ts): runs where the data is — a processor worker's
 * shard, or the main thread's TSDB — and answers selects, label lookups and appends arriving on a port.
 *
 * Invariants:
 * - A selection is read series by series into columns and sent in parts of at most {@link PART_SAMPLES}
 *   samples; between parts the server yields to its event loop (setImmediate), so a large read never holds
 *   that loop for longer than one part takes.
 * - A selection counts what it read against `hints.maxSamples` and stops with `budgetExceeded` (422) before
 *   reading past it.
 * - A `cancel` (the caller's AbortSignal) stops the read at the next series; the port's close stops all.
 */
import type { MessagePort } from 'node:worker_threads';
import { Errors, twError } from '../../model/errors.js';
import { LabelMatcher, type LabelSet } from '../../model/labels.js';
import { SampleBuffer } from '../codec/chunk.js';
import { AGG_COLUMNS, RollupColumns } from '../rollup.js';
import type { SelectedSeries, Storage } from '../storage.js';
import {
  type SelectPart,
  type StorageRequest,
  type StorageResponse,
  toWireError,
  type WireMatcher,
} from './protocol.js';

/** Samples per part: about 1.5 MiB of columns, a few milliseconds of decoding. */
export const PART_SAMPLES = 96 * 1024;

/** What a port serves: reads, and (optionally) appends, e.g. a recording rule's results into a shard. */
export type ServedStorage = Pick<Storage, 'querier'> & Partial<Pick<Storage, 'appender'>>;

/** Serves `storage` on `port` until the returned function is called or the port closes. */
export function serveStorageQueries(
  port: MessagePort,
  storage: ServedStorage,
  /** Told of every request served (self-metrics: which shard a query touched). */
  onRequest?: (op: StorageRequest['op']) => void,
): () => void {
  const running = new Map<number, AbortController>();
  const send = (msg: StorageResponse, transfer?: ArrayBuffer[]) => {
    try {
      port.postMessage(msg, transfer);
    } catch {
      // The port closed under us: the client is gone and nobody waits for the answer.
    }
  };
  const onMessage = (req: StorageRequest) => {
    if (req.op === 'cancel') {
      running.get(req.id)?.abort(new Error('cancelled by the caller'));
      return;
    }
    onRequest?.(req.op);
    const abort = new AbortController();
    running.set(req.id, abort);
    void handle(req, storage, abort.signal, send)
      .catch((err) => send({ id: req.id, type: 'error', error: toWireError(err) }))
      .finally(() => running.delete(req.id));
  };
  const stop = () => {
    port.off('message', onMessage);
    for (const a of running.values()) a.abort(new Error('storage port closed'));
    running.clear();
  };
  port.on('message', onMessage);
  port.once('close', stop);
  return stop;
}

async function handle(
  req: Exclude<StorageRequest, { op: 'cancel' }>,
  storage: ServedStorage,
  signal: AbortSignal,
  send: (msg: StorageResponse, transfer?: ArrayBuffer[]) => void,
): Promise<void> {
  if (req.op === 'append') {
    if (!storage.appender) throw twError(Errors.badRequest, 'this storage port does not take appends');
    const stats = await storage.appender.append(req.tenant, req.batch, signal);
    send({ id: req.id, type: 'result', value: stats });
    return;
  }
  const { tenant, minT, maxT } = req.scope;
  const querier = storage.querier(tenant, minT, maxT);
  const matchers = toMatchers(req.matchers);
  if (req.op === 'labelNames') {
    send({ id: req.id, type: 'result', value: await querier.labelNames(matchers, signal) });
    return;
  }
  if (req.op === 'labelValues') {
    send({ id: req.id, type: 'result', value: await querier.labelValues(req.name, matchers, signal) });
    return;
  }
  const set = await querier.select(matchers, req.hints, signal);
  const budget = req.hints?.maxSamples ?? Number.POSITIVE_INFINITY;
  const writer = new PartWriter();
  let total = 0;
  for (const s of set.series) {
    signal.throwIfAborted();
    const n = writer.add(s);
    total += n;
    if (total > budget)
      throw twError(
        Errors.budgetExceeded,
        `the selection holds more than ${budget} samples (the query's memory budget); narrow the selectors or the time range`,
      );
    if (writer.samples >= PART_SAMPLES) {
      const [part, transfer] = writer.flush();
      send({ id: req.id, type: 'part', part }, transfer);
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  if (writer.series > 0) {
    const [part, transfer] = writer.flush();
    send({ id: req.id, type: 'part', part }, transfer);
  }
  send({
    id: req.id,
    type: 'end',
    warnings: set.warnings,
    ...(set.err ? { err: toWireError(set.err) } : {}),
  });
}

function toMatchers(wire: readonly WireMatcher[]): LabelMatcher[] {
  return wire.map((m) => new LabelMatcher(m.type, m.name, m.value));
}

/**
 * Gathers whole series into growable columns (reused between parts until flushed, then handed over with the
 * message: a flushed part's buffers are transferred and new ones start).
 */
class PartWriter {
  private labels: LabelSet[] = [];
  private resolution: number[] = [];
  private offsets: number[] = [0];
  private t = new Float64Array(4096);
  private v = new Float64Array(4096);
  private agg: Float64Array[] | undefined;
  samples = 0;
  private readonly raw = new SampleBuffer(4096);
  private readonly windows = new RollupColumns(256);

  get series(): number {
    return this.labels.length;
  }

  /** Reads one series into the columns; returns its sample count. */
  add(s: SelectedSeries): number {
    const res = s.resolutionMs ?? 0;
    let n: number;
    if (res > 0) n = this.addRollup(s);
    else {
      n = readRaw(s, this.raw);
      this.reserve(this.samples + n);
      this.t.set(this.raw.t.subarray(0, n), this.samples);
      this.v.set(this.raw.v.subarray(0, n), this.samples);
      if (this.agg) for (const col of this.agg) col.fill(Number.NaN, this.samples, this.samples + n);
    }
    this.samples += n;
    this.labels.push(s.labels);
    this.resolution.push(res);
    this.offsets.push(this.samples);
    return n;
  }

  private addRollup(s: SelectedSeries): number {
    // The value column is what `iterator()` yields (the function's aggregate); the aggregates go alongside.
    const n = readRaw(s, this.raw);
    const w = this.windows;
    w.reset();
    if (s.readAggregates) s.readAggregates(w);
    else if (s.aggregates) {
      const it = s.aggregates();
      while (it.next()) w.push(it.t, it.min, it.max, it.sum, it.count, it.last);
    }
    this.reserve(this.samples + n);
    if (!this.agg) {
      this.agg = Array.from({ length: AGG_COLUMNS }, () => new Float64Array(this.t.length));
      for (const col of this.agg) col.fill(Number.NaN, 0, this.samples);
    }
    this.t.set(this.raw.t.subarray(0, n), this.samples);
    this.v.set(this.raw.v.subarray(0, n), this.samples);
    const windows = Math.min(n, w.n);
    for (let c = 0; c < AGG_COLUMNS; c++) {
      const col = this.agg[c]!;
      col.set(w.cols[c]!.subarray(0, windows), this.samples);
      col.fill(Number.NaN, this.samples + windows, this.samples + n);
    }
    return n;
  }

  private reserve(n: number): void {
    if (n <= this.t.length) return;
    let cap = this.t.length * 2;
    while (cap < n) cap *= 2;
    const grow = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a.subarray(0, this.samples));
      return b;
    };
    this.t = grow(this.t);
    this.v = grow(this.v);
    if (this.agg) this.agg = this.agg.map(grow);
  }

  flush(): [SelectPart, ArrayBuffer[]] {
    const n = this.samples;
    // Exact-size copies: what is transferred is what the receiver keeps (a part's columns live as long as
    // the query holds the series).
    const t = this.t.slice(0, n);
    const v = this.v.slice(0, n);
    let agg: Float64Array | undefined;
    if (this.agg) {
      agg = new Float64Array(n * AGG_COLUMNS);
      for (let c = 0; c < AGG_COLUMNS; c++) agg.set(this.agg[c]!.subarray(0, n), c * n);
    }
    const part: SelectPart = {
      labels: this.labels,
      resolutionMs: Float64Array.from(this.resolution),
      offsets: Uint32Array.from(this.offsets),
      t,
      v,
      ...(agg ? { agg } : {}),
    };
    this.labels = [];
    this.resolution = [];
    this.offsets = [0];
    this.samples = 0;
    this.agg = undefined;
    const transfer = [t.buffer, v.buffer, part.offsets.buffer, part.resolutionMs.buffer] as ArrayBuffer[];
    if (agg) transfer.push(agg.buffer as ArrayBuffer);
    return [part, transfer];
  }
}

/** Every sample of `s` into `out` (bit-exact values: staleness markers survive). */
function readRaw(s: SelectedSeries, out: SampleBuffer): number {
  if (s.readSamples) return s.readSamples(out);
  out.n = 0;
  const it = s.iterator();
  while (it.next()) {
    out.ensure(out.n + 1);
    out.t[out.n] = it.t;
    out.v[out.n] = it.v;
    out.n++;
  }
  return out.n;
}
