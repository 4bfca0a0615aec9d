/**
 * Prometheus remote-write decoders (1.0: `prometheus.WriteRequest`; 2.0: `io.prometheus.write.v2.Request`;
 * schemas in ../shared/protos/prometheus/), hand-written for the hot path: they walk the uncompressed
 * protobuf once per TimeSeries for its labels and once for its samples, feed label byte ranges to the
 * {@link SeriesKeyBuilder}, resolve the series ref in the tenant's registry, and append samples to a reused
 * {@link RefBatch}. No object or string is created per sample, nor per known series.
 *
 * What is not stored: native histograms (trainwatch stores float samples; Prometheus 2.x sends native
 * histograms only behind a feature flag) and exemplars. They are counted in {@link DecodeStats}, and
 * remote-write 2.0 answers say how many samples, histograms and exemplars were written. Metadata (1.0
 * `MetricMetadata`, 2.0 per-series `Metadata`) goes to {@link DecodeContext.metadata}: strings are made only
 * for a 1.0 metadata entry, or for the first series of a metric name in a 2.0 request that carries any.
 */
import { Errors, twError } from '../model/errors.js';
import { ProtoError, type ProtoReader, WireType } from '../protocol/protobuf.js';
import { type DeclaredMetadataMemory, metricTypeOfRemoteWrite } from './declared-metadata.js';
import type { RefBatch } from './ref-batch.js';
import type { SeriesKeyBuilder } from './series-key.js';
import type { SeriesRegistry } from './series-registry.js';

/** Samples further in the future than this are refused (as the native protocol does). */
export const MAX_FUTURE_MS = 10 * 60_000;

export interface DecodeStats {
  histograms: number;
  exemplars: number;
  metadata: number;
}

export interface DecodeContext {
  readonly reader: ProtoReader;
  readonly keys: SeriesKeyBuilder;
  readonly batch: RefBatch;
  readonly registry: SeriesRegistry;
  readonly nowMs: number;
  /** ingest.max_samples_per_request */
  readonly maxSamples: number;
  readonly stats: DecodeStats;
  /** Where declared metric metadata goes; absent: it is counted and skipped. */
  readonly metadata?: DeclaredMetadataMemory;
}

const utf8 = new TextDecoder();

export function newDecodeStats(): DecodeStats {
  return { histograms: 0, exemplars: 0, metadata: 0 };
}

/** Refuses a sample whose timestamp is negative or too far in the future, naming the series. */
export function checkTimestamp(ctx: DecodeContext, ref: number, t: number): void {
  if (t >= 0 && t <= ctx.nowMs + MAX_FUTURE_MS) {
    ctx.registry.noteSampleTime(ref, t);
    return;
  }
  throw twError(
    Errors.invalidSeries,
    `series ${ctx.registry.shown(ctx.registry.labelsOf(ref))}: timestamp ${t} ` +
      `(${Number.isFinite(t) && Math.abs(t) < 8.64e15 ? new Date(t).toISOString() : 'out of range'}) is ` +
      `${t < 0 ? 'negative' : 'more than 10 minutes in the future'}; timestamps are milliseconds since the Unix epoch`,
  );
}

export function checkSampleCount(ctx: DecodeContext): void {
  const batch = ctx.batch;
  if (batch.sampleCount > ctx.maxSamples) {
    const at = ctx.registry.shown(ctx.registry.labelsOf(batch.refs[batch.seriesCount - 1]!));
    throw twError(
      Errors.limitExceeded,
      `limit ingest.max_samples_per_request exceeded: the request has more than ${ctx.maxSamples} samples ` +
        `(the limit was crossed at series ${at}); send smaller batches`,
    );
  }
}

// --------------------------------------------------------------------------------------------------------
// Remote-write 1.0

/** Decodes a `prometheus.WriteRequest` into `ctx.batch`. */
export function decodeRemoteWriteV1(buf: Uint8Array, ctx: DecodeContext): void {
  const r = ctx.reader.reset(buf);
  const end = buf.length;
  while (r.pos < end) {
    const tag = r.tag(end);
    const field = tag >>> 3;
    if (field === 1) {
      r.expect(tag, WireType.len, 'WriteRequest.timeseries');
      const stop = r.lengthDelimited(end, 'TimeSeries');
      decodeSeriesV1(buf, r.pos, stop, ctx);
      r.pos = stop;
    } else if (field === 3 && (tag & 7) === WireType.len) {
      ctx.stats.metadata++;
      const stop = r.lengthDelimited(end, 'MetricMetadata');
      if (ctx.metadata) decodeMetricMetadataV1(buf, r, stop, ctx.metadata);
      r.pos = stop;
    } else r.skip(tag, end);
  }
}

/** One `MetricMetadata` (type = 1, metric_family_name = 2, help = 4, unit = 5) into `memory`. */
function decodeMetricMetadataV1(
  buf: Uint8Array,
  r: ProtoReader,
  stop: number,
  memory: DeclaredMetadataMemory,
) {
  let type = 0;
  let name = '';
  let help = '';
  let unit = '';
  while (r.pos < stop) {
    const tag = r.tag(stop);
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === WireType.varint) type = r.uint32(stop, 'MetricMetadata.type');
    else if ((field === 2 || field === 4 || field === 5) && (tag & 7) === WireType.len) {
      const s = r.lengthDelimited(stop, 'MetricMetadata string');
      const text = utf8.decode(buf.subarray(r.pos, s));
      r.pos = s;
      if (field === 2) name = text;
      else if (field === 4) help = text;
      else unit = text;
    } else r.skip(tag, stop);
  }
  memory.note(name, metricTypeOfRemoteWrite(type), help, unit);
}

function decodeSeriesV1(buf: Uint8Array, start: number, end: number, ctx: DecodeContext): void {
  const r = ctx.reader;
  const kb = ctx.keys;
  kb.begin(buf);
  let samples = 0;
  let firstSampleAt = -1;
  r.pos = start;
  while (r.pos < end) {
    const fieldAt = r.pos;
    // Fast path for the encoding every Prometheus sends: `0a L 0a N name 12 V value` with one-byte lengths.
    // Anything else (longer lengths, other field order, unknown fields) takes the general path below.
    const p = fieldAt;
    if (buf[p] === 0x0a && p + 1 < end) {
      const len = buf[p + 1]!;
      const stop = p + 2 + len;
      if (len < 0x80 && stop <= end && buf[p + 2] === 0x0a) {
        const nl = buf[p + 3]!;
        const ns = p + 4;
        const q = ns + nl;
        if (nl < 0x80 && q + 2 <= stop && buf[q] === 0x12) {
          const vl = buf[q + 1]!;
          if (vl < 0x80 && q + 2 + vl === stop) {
            kb.add(ns, nl, q + 2, vl);
            r.pos = stop;
            continue;
          }
        }
      }
    }
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 1: {
        r.expect(tag, WireType.len, 'TimeSeries.labels');
        const stop = r.lengthDelimited(end, 'Label');
        let ns = 0;
        let nl = 0;
        let vs = 0;
        let vl = 0;
        while (r.pos < stop) {
          const t = r.tag(stop);
          const f = t >>> 3;
          if (f === 1 || f === 2) {
            r.expect(t, WireType.len, f === 1 ? 'Label.name' : 'Label.value');
            const s = r.lengthDelimited(stop, f === 1 ? 'Label.name' : 'Label.value');
            if (f === 1) {
              ns = r.pos;
              nl = s - r.pos;
            } else {
              vs = r.pos;
              vl = s - r.pos;
            }
            r.pos = s;
          } else r.skip(t, stop);
        }
        kb.add(ns, nl, vs, vl);
        break;
      }
      case 2:
        r.expect(tag, WireType.len, 'TimeSeries.samples');
        if (samples++ === 0) firstSampleAt = fieldAt;
        r.pos = r.lengthDelimited(end, 'Sample');
        break;
      case 3:
        ctx.stats.exemplars++;
        r.skip(tag, end);
        break;
      case 4:
        ctx.stats.histograms++;
        r.skip(tag, end);
        break;
      default:
        r.skip(tag, end);
    }
  }
  if (samples === 0) return;
  kb.finish();
  const ref = ctx.registry.resolve(kb, ctx.nowMs);
  ctx.batch.beginSeries(ref);
  // Second pass over the samples only: everything before the first one was read already.
  appendSamples(buf, firstSampleAt, end, ctx, ref);
}

/**
 * Appends the `samples` (field 2) of one TimeSeries, read from `from` to `end`, to `ctx.batch` for series
 * `ref`; other fields are skipped. Remote-write 1.0 and 2.0 encode `Sample` alike (value = 1, timestamp = 2).
 */
function appendSamples(buf: Uint8Array, from: number, end: number, ctx: DecodeContext, ref: number): void {
  const r = ctx.reader;
  const batch = ctx.batch;
  r.pos = from;
  while (r.pos < end) {
    // Fast path for `12 L 09 <8-byte value> 10 <timestamp varint>`, as Prometheus encodes a sample.
    const p = r.pos;
    if (buf[p] === 0x12 && p + 12 < end && buf[p + 2] === 0x09 && buf[p + 11] === 0x10) {
      const stop = p + 2 + buf[p + 1]!;
      if (buf[p + 1]! < 0x80 && stop >= p + 13 && stop <= end) {
        r.pos = p + 12;
        const t = r.int64(stop, 'Sample.timestamp');
        if (r.pos === stop) {
          checkTimestamp(ctx, ref, t);
          batch.addRaw(t, buf, p + 3);
          continue;
        }
      }
      r.pos = p;
    }
    const tag = r.tag(end);
    if (tag >>> 3 !== 2) {
      r.skip(tag, end);
      continue;
    }
    const stop = r.lengthDelimited(end, 'Sample');
    readSample(r, buf, stop, ctx, ref);
    r.pos = stop;
  }
  checkSampleCount(ctx);
}

/** Sample { double value = 1; int64 timestamp = 2; ... }: absent fields are 0 (proto3). */
function readSample(r: ProtoReader, buf: Uint8Array, stop: number, ctx: DecodeContext, ref: number): void {
  let valueAt = -1;
  let t = 0;
  while (r.pos < stop) {
    const tag = r.tag(stop);
    const f = tag >>> 3;
    if (f === 1) {
      r.expect(tag, WireType.fixed64, 'Sample.value');
      if (r.pos + 8 > stop) throw new ProtoError('truncated Sample.value', r.pos);
      valueAt = r.pos;
      r.pos += 8;
    } else if (f === 2) {
      r.expect(tag, WireType.varint, 'Sample.timestamp');
      t = r.int64(stop, 'Sample.timestamp');
    } else r.skip(tag, stop);
  }
  checkTimestamp(ctx, ref, t);
  if (valueAt >= 0) ctx.batch.addRaw(t, buf, valueAt);
  else ctx.batch.add(t, 0);
}

// --------------------------------------------------------------------------------------------------------
// Remote-write 2.0

/** Symbol table of the request being decoded: byte ranges into its buffer. Reused. */
export class SymbolTable {
  starts = new Int32Array(1024);
  lengths = new Int32Array(1024);
  count = 0;
  refs = new Int32Array(64);
  /** Metric-name symbols whose metadata this request already passed on (noteMetadataV2). */
  readonly metadataNoted = new Set<number>();
  /** The symbol of `__name__` in this request once found (-1: not yet), and the last metric-name symbol noted. */
  nameSymbol = -1;
  lastNotedName = -1;

  push(start: number, length: number): void {
    if (this.count === this.starts.length) {
      const s = new Int32Array(this.count * 2);
      s.set(this.starts);
      this.starts = s;
      const l = new Int32Array(this.count * 2);
      l.set(this.lengths);
      this.lengths = l;
    }
    this.starts[this.count] = start;
    this.lengths[this.count] = length;
    this.count++;
  }

  /** Stores label reference `v` at index `n` of the current series' refs; returns n + 1. */
  pushRef(n: number, v: number, pos: number): number {
    if (v >= this.count) {
      throw new ProtoError(`label reference ${v} is beyond the ${this.count} symbols of the request`, pos);
    }
    if (n === this.refs.length) {
      const a = new Int32Array(n * 2);
      a.set(this.refs);
      this.refs = a;
    }
    this.refs[n] = v;
    return n + 1;
  }
}

const NAME_LABEL = new TextEncoder().encode('__name__');

/**
 * Passes one series' declared metadata on, once per metric name and request: its series share the name's
 * symbol, so later series of the name cost a set lookup and no string.
 */
function noteMetadataV2(
  buf: Uint8Array,
  memory: DeclaredMetadataMemory,
  symbols: SymbolTable,
  nRefs: number,
  type: number,
  helpRef: number,
  unitRef: number,
  at: number,
): void {
  if (helpRef >= symbols.count || unitRef >= symbols.count)
    throw new ProtoError(`Metadata refers to a symbol beyond the ${symbols.count} of the request`, at);
  for (let i = 0; i < nRefs; i += 2) {
    const n = symbols.refs[i]!;
    if (n !== symbols.nameSymbol) {
      // Symbols are unique in a request: once `__name__`'s is known, other symbols are not it.
      if (symbols.nameSymbol >= 0 || symbols.lengths[n] !== NAME_LABEL.length) continue;
      const s = symbols.starts[n]!;
      let same = true;
      for (let k = 0; k < NAME_LABEL.length && same; k++) same = buf[s + k] === NAME_LABEL[k];
      if (!same) continue;
      symbols.nameSymbol = n;
    }
    const v = symbols.refs[i + 1]!;
    // Series of one metric usually come together: the last name noted is checked before the set.
    if (v === symbols.lastNotedName || symbols.metadataNoted.has(v)) return;
    symbols.lastNotedName = v;
    symbols.metadataNoted.add(v);
    const text = (ref: number) =>
      utf8.decode(buf.subarray(symbols.starts[ref]!, symbols.starts[ref]! + symbols.lengths[ref]!));
    memory.note(text(v), metricTypeOfRemoteWrite(type), text(helpRef), text(unitRef));
    return;
  }
}

/** Decodes an `io.prometheus.write.v2.Request` into `ctx.batch`. */
export function decodeRemoteWriteV2(buf: Uint8Array, ctx: DecodeContext, symbols: SymbolTable): void {
  const r = ctx.reader.reset(buf);
  const end = buf.length;
  // Symbols first: the message may carry them after the series that refer to them.
  symbols.count = 0;
  if (symbols.metadataNoted.size > 0) symbols.metadataNoted.clear();
  symbols.nameSymbol = -1;
  symbols.lastNotedName = -1;
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag >>> 3 === 4) {
      r.expect(tag, WireType.len, 'Request.symbols');
      const stop = r.lengthDelimited(end, 'symbol');
      symbols.push(r.pos, stop - r.pos);
      r.pos = stop;
    } else r.skip(tag, end);
  }
  r.pos = 0;
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag >>> 3 === 5) {
      r.expect(tag, WireType.len, 'Request.timeseries');
      const stop = r.lengthDelimited(end, 'TimeSeries');
      decodeSeriesV2(buf, r.pos, stop, ctx, symbols);
      r.pos = stop;
    } else r.skip(tag, end);
  }
}

function decodeSeriesV2(
  buf: Uint8Array,
  start: number,
  end: number,
  ctx: DecodeContext,
  symbols: SymbolTable,
): void {
  const r = ctx.reader;
  let nRefs = 0;
  let samples = 0;
  // Metadata (type = 1, help_ref = 3, unit_ref = 4); zero: not declared.
  let metaType = 0;
  let helpRef = 0;
  let unitRef = 0;
  r.pos = start;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 1:
        if ((tag & 7) === WireType.len) {
          const stop = r.lengthDelimited(end, 'TimeSeries.labels_refs');
          while (r.pos < stop)
            nRefs = symbols.pushRef(nRefs, r.uint32(stop, 'TimeSeries.labels_refs'), r.pos);
        } else {
          r.expect(tag, WireType.varint, 'TimeSeries.labels_refs');
          nRefs = symbols.pushRef(nRefs, r.uint32(end, 'TimeSeries.labels_refs'), r.pos);
        }
        break;
      case 2:
        r.expect(tag, WireType.len, 'TimeSeries.samples');
        samples++;
        r.pos = r.lengthDelimited(end, 'Sample');
        break;
      case 3:
        ctx.stats.histograms++;
        r.skip(tag, end);
        break;
      case 4:
        ctx.stats.exemplars++;
        r.skip(tag, end);
        break;
      case 5: {
        r.expect(tag, WireType.len, 'TimeSeries.metadata');
        const stop = r.lengthDelimited(end, 'Metadata');
        while (r.pos < stop) {
          const t = r.tag(stop);
          const f = t >>> 3;
          if (f === 1 && (t & 7) === WireType.varint) metaType = r.uint32(stop, 'Metadata.type');
          else if (f === 3 && (t & 7) === WireType.varint) helpRef = r.uint32(stop, 'Metadata.help_ref');
          else if (f === 4 && (t & 7) === WireType.varint) unitRef = r.uint32(stop, 'Metadata.unit_ref');
          else r.skip(t, stop);
        }
        break;
      }
      default:
        r.skip(tag, end);
    }
  }
  if (nRefs % 2 !== 0) {
    throw new ProtoError(`TimeSeries.labels_refs has an odd number (${nRefs}) of references`, start);
  }
  if ((metaType | helpRef | unitRef) !== 0 && ctx.metadata)
    noteMetadataV2(buf, ctx.metadata, symbols, nRefs, metaType, helpRef, unitRef, start);
  if (samples === 0) return;
  const kb = ctx.keys;
  kb.begin(buf);
  for (let i = 0; i < nRefs; i += 2) {
    const n = symbols.refs[i]!;
    const v = symbols.refs[i + 1]!;
    kb.add(symbols.starts[n]!, symbols.lengths[n]!, symbols.starts[v]!, symbols.lengths[v]!);
  }
  kb.finish();
  const ref = ctx.registry.resolve(kb, ctx.nowMs);
  ctx.batch.beginSeries(ref);
  appendSamples(buf, start, end, ctx, ref);
}
