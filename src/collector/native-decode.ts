/**
 * The native protocol's hot path (docs/protocol.md, "Payload"), as remote-write has it: walks a payload once,
 * feeding each series' label byte ranges (string-table entries, in place) to the {@link SeriesKeyBuilder},
 * resolving its ref in the tenant's {@link SeriesRegistry} and copying its samples into a reused
 * {@link RefBatch}. No label object, string or key is made per known series; a string-table entry costs an
 * ASCII scan (a full UTF-8 check only when it has other bytes).
 *
 * It accepts and refuses what `decodePayload` does (same DecodeError messages for malformed payloads), so that
 * a payload forwarded to the bus as is always decodes in the processor. Payloads that carry job events are left
 * to the general path (they are rare: a job's start, update and finish), which orders them with the samples,
 * and so are series with an empty label value (the general path validates and refuses them as it always did).
 */
import { Errors, twError } from '../model/errors.js';
import { ByteReader, DecodeError } from '../protocol/bytes.js';
import { checkLabelRefs, type DecodeLimits, readJobEvents, readSampleCount } from '../protocol/native.js';
import { ProtoError } from '../protocol/protobuf.js';
import type { RefBatch } from './ref-batch.js';
import { MAX_FUTURE_MS } from './remote-write-decode.js';
import type { SeriesKeyBuilder } from './series-key.js';
import type { SeriesRegistry } from './series-registry.js';

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * What {@link NativeRefDecoder.decode} found. `general`: the payload has job events or a label with an empty
 * value; nothing decoded is for use, and the caller rolls the registry's request back and takes the general
 * path.
 */
export interface NativeDecodeResult {
  readonly general: boolean;
  readonly series: number;
}

const GENERAL: NativeDecodeResult = Object.freeze({ general: true, series: 0 });

export class NativeRefDecoder {
  /** The payload's string table: entry i is `payload[strStart[i] .. + strLen[i])`. */
  private strStart = new Int32Array(1024);
  private strLen = new Int32Array(1024);
  /** Per string-table entry, the number of the last series that used it as a label name (duplicates). */
  private nameStamp = new Int32Array(1024);
  private stamp = 0;

  /**
   * Decodes `payload` into `batch` (reset first) through `registry` (whose request the caller began). Throws a
   * DecodeError for a malformed payload, a ProtoError for a label name given twice, and the registry's errors
   * (invalid series, the active-series limit) or a 400 for a timestamp out of range, naming the series.
   */
  decode(
    payload: Uint8Array,
    keys: SeriesKeyBuilder,
    batch: RefBatch,
    registry: SeriesRegistry,
    limits: DecodeLimits,
    nowMs: number,
  ): NativeDecodeResult {
    batch.reset();
    const r = new ByteReader(payload);
    const stringCount = r.uvarint('string count');
    // Every string costs at least its length byte: a count beyond the payload size is a lie.
    if (stringCount > r.remaining)
      throw new DecodeError(`string count ${stringCount} exceeds payload size`, r.pos);
    if (this.strStart.length < stringCount) {
      const n = Math.max(stringCount, this.strStart.length * 2);
      this.strStart = new Int32Array(n);
      this.strLen = new Int32Array(n);
      this.nameStamp = new Int32Array(n);
      this.stamp = 0;
    }
    const strStart = this.strStart;
    const strLen = this.strLen;
    const maxBytes = limits.maxLabelValueBytes;
    for (let i = 0; i < stringCount; i++) {
      const len = r.stringLength('string table entry', maxBytes);
      const at = r.pos;
      let high = 0;
      for (let k = at; k < at + len; k++) high |= payload[k]!;
      if (high >= 0x80) {
        try {
          textDecoder.decode(payload.subarray(at, at + len));
        } catch {
          throw new DecodeError('string table entry is not valid UTF-8', at);
        }
      }
      strStart[i] = at;
      strLen[i] = len;
      r.pos = at + len;
    }

    const seriesCount = r.uvarint('series count');
    if (seriesCount > r.remaining)
      throw new DecodeError(`series count ${seriesCount} exceeds payload size`, r.pos);
    const stamps = this.nameStamp;
    for (let s = 0; s < seriesCount; s++) {
      const labelCount = r.uvarint('label count');
      if (labelCount > limits.maxLabelsPerSeries) {
        throw new DecodeError(
          `series ${s} has ${labelCount} labels, more than the limit of ${limits.maxLabelsPerSeries}`,
          r.pos,
        );
      }
      keys.begin(payload);
      if (this.stamp === 0x7fffffff) {
        stamps.fill(0);
        this.stamp = 0;
      }
      const stamp = ++this.stamp;
      let emptyValues = false;
      for (let l = 0; l < labelCount; l++) {
        const ni = r.uvarint('label name index');
        const vi = r.uvarint('label value index');
        checkLabelRefs(s, ni, vi, stringCount, r.pos);
        // The same entry twice; equal names in two entries are found by the key builder's sort below.
        if (stamps[ni] === stamp) throw this.twice(payload, s, ni, r.pos);
        stamps[ni] = stamp;
        if (strLen[vi] === 0) emptyValues = true;
        keys.add(strStart[ni]!, strLen[ni]!, strStart[vi]!, strLen[vi]!);
      }
      // The key builder leaves out labels with an empty value, so it could neither validate their names nor
      // see them repeat a name: such series (rare: senders do not send empty values) take the general path.
      if (emptyValues) return GENERAL;
      const sampleCount = readSampleCount(r, s);
      try {
        keys.finish();
      } catch (err) {
        if (err instanceof ProtoError) throw new DecodeError(`series ${s}: ${err.message}`, r.pos);
        throw err;
      }
      const ref = registry.resolve(keys, nowMs);
      batch.beginSeries(ref);
      // The timestamp loop of protocol/native.ts:decodePayload (twin), written into the RefBatch's arrays here
      // so that the per-sample loop makes no call through a shared sink.
      let t = 0;
      const from = batch.sampleCount;
      for (let j = 0; j < sampleCount; j++) {
        t += r.svarint('timestamp');
        if (!Number.isSafeInteger(t))
          throw new DecodeError(`series ${s} has timestamp ${t} out of range`, r.pos);
        batch.timestamps[batch.nextSample()] = t;
      }
      r.need(sampleCount * 8, 'values');
      const vb = batch.valueBytes;
      const o = from * 8;
      const at = r.pos;
      for (let k = 0; k < sampleCount * 8; k++) vb[o + k] = payload[at + k]!;
      r.pos = at + sampleCount * 8;
      const ts = batch.timestamps;
      for (let j = from; j < from + sampleCount; j++) {
        const tj = ts[j]!;
        if (tj < 0 || tj > nowMs + MAX_FUTURE_MS) throw timestampError(registry, ref, tj);
        // Too late for storage's out-of-order window: refused here, not acknowledged and then dropped.
        registry.noteSampleTime(ref, tj);
      }
      batch.dropEmptySeries();
    }
    const events = readJobEvents(r);
    return events.length > 0 ? GENERAL : { general: false, series: seriesCount };
  }

  private twice(payload: Uint8Array, s: number, nameIndex: number, pos: number): DecodeError {
    const at = this.strStart[nameIndex]!;
    const name = textDecoder.decode(payload.subarray(at, at + this.strLen[nameIndex]!));
    return new DecodeError(`series ${s} has label ${JSON.stringify(name)} twice`, pos);
  }
}

function timestampError(registry: SeriesRegistry, ref: number, t: number): Error {
  return twError(
    Errors.invalidSeries,
    `series ${registry.shown(registry.labelsOf(ref))}: timestamp ${t} ` +
      `(${Number.isFinite(t) && Math.abs(t) < 8.64e15 ? new Date(t).toISOString() : 'out of range'}) is ` +
      `${t < 0 ? 'negative' : 'more than 10 minutes in the future'}; timestamps are milliseconds since the Unix epoch`,
  );
}
