/**
 * OTLP/HTTP metrics request decoders: protobuf (`ExportMetricsServiceRequest`, schemas in
 * ../shared/protos/opentelemetry/) walked by hand, and the OTLP/JSON encoding of the same message. Both
 * produce the small {@link OtlpMetrics} model that `otlp-translate.ts` maps onto Prometheus series.
 *
 * OTLP is not the hottest path (SDKs export every few seconds, batches are pre-aggregated), so this builds a
 * light object per metric and data point; sample values still end up in typed arrays.
 *
 * Robustness: every structural problem is an {@link OtlpDecodeError} (400). JSON nesting is measured before
 * `JSON.parse` runs, so a body of ten million `[` costs a linear scan, not seconds of parsing; attribute
 * values (which may nest arrays and maps) are rendered iteratively up to a depth limit.
 */
import { ProtoError, ProtoReader, WireType } from './protobuf.js';

export class OtlpDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OtlpDecodeError';
  }
}

export type Temporality = 'unspecified' | 'delta' | 'cumulative';

export interface OtlpAttribute {
  readonly key: string;
  /** The value as a label value: strings as they are, numbers and booleans printed, arrays and maps as JSON. */
  readonly value: string;
}

export interface NumberPoint {
  readonly attributes: OtlpAttribute[];
  readonly timeNs: number;
  readonly value: number;
  readonly noRecordedValue: boolean;
}

export interface HistogramPoint {
  readonly attributes: OtlpAttribute[];
  readonly timeNs: number;
  readonly count: number;
  readonly sum: number | undefined;
  readonly bucketCounts: number[];
  readonly explicitBounds: number[];
  readonly noRecordedValue: boolean;
}

export interface SummaryPoint {
  readonly attributes: OtlpAttribute[];
  readonly timeNs: number;
  readonly count: number;
  readonly sum: number;
  readonly quantiles: { quantile: number; value: number }[];
  readonly noRecordedValue: boolean;
}

/** One metric; `description` is its help text (OTLP `Metric.description`), '' when the sender gave none. */
export type OtlpMetric = OtlpMetricData & { readonly description?: string };

type OtlpMetricData =
  | { readonly kind: 'gauge'; readonly name: string; readonly unit: string; readonly points: NumberPoint[] }
  | {
      readonly kind: 'sum';
      readonly name: string;
      readonly unit: string;
      readonly monotonic: boolean;
      readonly temporality: Temporality;
      readonly points: NumberPoint[];
    }
  | {
      readonly kind: 'histogram';
      readonly name: string;
      readonly unit: string;
      readonly temporality: Temporality;
      readonly points: HistogramPoint[];
    }
  | {
      readonly kind: 'summary';
      readonly name: string;
      readonly unit: string;
      readonly points: SummaryPoint[];
    }
  | {
      /** Exponential histograms and metrics without data: counted as rejected data points. */
      readonly kind: 'unsupported';
      readonly name: string;
      readonly unit: string;
      readonly what: string;
      readonly pointCount: number;
    };

export interface OtlpScopeMetrics {
  readonly scopeName: string;
  readonly scopeVersion: string;
  readonly scopeAttributes: OtlpAttribute[];
  readonly metrics: OtlpMetric[];
}

export interface OtlpResourceMetrics {
  readonly resourceAttributes: OtlpAttribute[];
  readonly scopes: OtlpScopeMetrics[];
}

export type OtlpMetrics = OtlpResourceMetrics[];

/** Nesting of AnyValue arrays and maps rendered into a label value; deeper parts are cut. */
const MAX_VALUE_DEPTH = 16;
/** JSON nesting accepted (OTLP/JSON needs about 10 levels plus attribute values). */
export const MAX_JSON_DEPTH = 64;

const FLAG_NO_RECORDED_VALUE = 1;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

// --------------------------------------------------------------------------------------------------------
// Protobuf

function str(r: ProtoReader, end: number, what: string): string {
  const stop = r.lengthDelimited(end, what);
  try {
    return textDecoder.decode(r.buf.subarray(r.pos, stop));
  } catch {
    throw new ProtoError(`${what} is not valid UTF-8`, r.pos);
  } finally {
    r.pos = stop;
  }
}

/** Walks `message { ...; repeated X field = n; }` calling `each(start, end)` for every occurrence of `n`. */
function eachMessage(
  r: ProtoReader,
  end: number,
  field: number,
  what: string,
  each: (stop: number) => void,
): void {
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag >>> 3 === field) {
      r.expect(tag, WireType.len, what);
      const stop = r.lengthDelimited(end, what);
      each(stop);
      r.pos = stop;
    } else r.skip(tag, end);
  }
}

/** AnyValue → label value text; arrays and maps as JSON, iteratively bounded by MAX_VALUE_DEPTH. */
function anyValue(r: ProtoReader, end: number, depth: number): unknown {
  let value: unknown = '';
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 1:
        value = str(r, end, 'AnyValue.string_value');
        break;
      case 2:
        r.expect(tag, WireType.varint, 'AnyValue.bool_value');
        value = r.int64(end, 'AnyValue.bool_value') !== 0;
        break;
      case 3:
        r.expect(tag, WireType.varint, 'AnyValue.int_value');
        value = r.int64(end, 'AnyValue.int_value');
        break;
      case 4:
        r.expect(tag, WireType.fixed64, 'AnyValue.double_value');
        value = r.double(end, 'AnyValue.double_value');
        break;
      case 5:
      case 6: {
        r.expect(tag, WireType.len, 'AnyValue.array_value');
        const stop = r.lengthDelimited(end, 'AnyValue');
        if (depth >= MAX_VALUE_DEPTH) {
          value = '…';
        } else if (tag >>> 3 === 5) {
          const items: unknown[] = [];
          eachMessage(r, stop, 1, 'ArrayValue.values', (s) => items.push(anyValue(r, s, depth + 1)));
          value = items;
        } else {
          const map: Record<string, unknown> = {};
          eachMessage(r, stop, 1, 'KeyValueList.values', (s) => {
            const kv = keyValue(r, s, depth + 1);
            map[kv.key] = kv.raw;
          });
          value = map;
        }
        r.pos = stop;
        break;
      }
      case 7: {
        r.expect(tag, WireType.len, 'AnyValue.bytes_value');
        const stop = r.lengthDelimited(end, 'AnyValue.bytes_value');
        value = Buffer.from(r.buf.subarray(r.pos, stop)).toString('base64');
        r.pos = stop;
        break;
      }
      default:
        r.skip(tag, end);
    }
  }
  return value;
}

function keyValue(r: ProtoReader, end: number, depth: number): { key: string; raw: unknown } {
  let key = '';
  let raw: unknown = '';
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag >>> 3 === 1) key = str(r, end, 'KeyValue.key');
    else if (tag >>> 3 === 2) {
      r.expect(tag, WireType.len, 'KeyValue.value');
      const stop = r.lengthDelimited(end, 'AnyValue');
      raw = anyValue(r, stop, depth);
      r.pos = stop;
    } else r.skip(tag, end);
  }
  return { key, raw };
}

export function attributeText(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number') return formatFloatF(raw);
  if (typeof raw === 'boolean') return raw ? 'true' : 'false';
  return JSON.stringify(raw);
}

function attributes(r: ProtoReader, end: number, field: number, into: OtlpAttribute[]): void {
  eachMessage(r, end, field, 'attributes', (stop) => {
    const kv = keyValue(r, stop, 0);
    into.push({ key: kv.key, value: attributeText(kv.raw) });
  });
}

function numberPoint(r: ProtoReader, end: number): NumberPoint {
  const attrs: OtlpAttribute[] = [];
  let timeNs = 0;
  let value = 0;
  let flags = 0;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 7: {
        r.expect(tag, WireType.len, 'NumberDataPoint.attributes');
        const stop = r.lengthDelimited(end, 'KeyValue');
        const kv = keyValue(r, stop, 0);
        attrs.push({ key: kv.key, value: attributeText(kv.raw) });
        r.pos = stop;
        break;
      }
      case 3:
        r.expect(tag, WireType.fixed64, 'NumberDataPoint.time_unix_nano');
        timeNs = r.fixed64(end, 'time_unix_nano');
        break;
      case 4:
        r.expect(tag, WireType.fixed64, 'NumberDataPoint.as_double');
        value = r.double(end, 'as_double');
        break;
      case 6:
        r.expect(tag, WireType.fixed64, 'NumberDataPoint.as_int');
        value = r.sfixed64(end, 'as_int');
        break;
      case 8:
        r.expect(tag, WireType.varint, 'NumberDataPoint.flags');
        flags = r.uint32(end, 'flags');
        break;
      default:
        r.skip(tag, end);
    }
  }
  return { attributes: attrs, timeNs, value, noRecordedValue: (flags & FLAG_NO_RECORDED_VALUE) !== 0 };
}

/** A repeated fixed64 or double field, packed or not. */
function repeatedFixed(
  r: ProtoReader,
  tag: number,
  end: number,
  what: string,
  into: number[],
  asDouble: boolean,
): void {
  if ((tag & 7) === WireType.len) {
    const stop = r.lengthDelimited(end, what);
    if ((stop - r.pos) % 8 !== 0) throw new ProtoError(`packed ${what} is not a multiple of 8 bytes`, r.pos);
    while (r.pos < stop) into.push(asDouble ? r.double(stop, what) : r.fixed64(stop, what));
  } else {
    r.expect(tag, WireType.fixed64, what);
    into.push(asDouble ? r.double(end, what) : r.fixed64(end, what));
  }
}

function histogramPoint(r: ProtoReader, end: number): HistogramPoint {
  const attrs: OtlpAttribute[] = [];
  let timeNs = 0;
  let count = 0;
  let sum: number | undefined;
  const bucketCounts: number[] = [];
  const explicitBounds: number[] = [];
  let flags = 0;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 9: {
        r.expect(tag, WireType.len, 'HistogramDataPoint.attributes');
        const stop = r.lengthDelimited(end, 'KeyValue');
        const kv = keyValue(r, stop, 0);
        attrs.push({ key: kv.key, value: attributeText(kv.raw) });
        r.pos = stop;
        break;
      }
      case 3:
        r.expect(tag, WireType.fixed64, 'HistogramDataPoint.time_unix_nano');
        timeNs = r.fixed64(end, 'time_unix_nano');
        break;
      case 4:
        r.expect(tag, WireType.fixed64, 'HistogramDataPoint.count');
        count = r.fixed64(end, 'count');
        break;
      case 5:
        r.expect(tag, WireType.fixed64, 'HistogramDataPoint.sum');
        sum = r.double(end, 'sum');
        break;
      case 6:
        repeatedFixed(r, tag, end, 'HistogramDataPoint.bucket_counts', bucketCounts, false);
        break;
      case 7:
        repeatedFixed(r, tag, end, 'HistogramDataPoint.explicit_bounds', explicitBounds, true);
        break;
      case 10:
        r.expect(tag, WireType.varint, 'HistogramDataPoint.flags');
        flags = r.uint32(end, 'flags');
        break;
      default:
        r.skip(tag, end);
    }
  }
  return {
    attributes: attrs,
    timeNs,
    count,
    sum,
    bucketCounts,
    explicitBounds,
    noRecordedValue: (flags & FLAG_NO_RECORDED_VALUE) !== 0,
  };
}

function summaryPoint(r: ProtoReader, end: number): SummaryPoint {
  const attrs: OtlpAttribute[] = [];
  let timeNs = 0;
  let count = 0;
  let sum = 0;
  const quantiles: { quantile: number; value: number }[] = [];
  let flags = 0;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag >>> 3) {
      case 7: {
        r.expect(tag, WireType.len, 'SummaryDataPoint.attributes');
        const stop = r.lengthDelimited(end, 'KeyValue');
        const kv = keyValue(r, stop, 0);
        attrs.push({ key: kv.key, value: attributeText(kv.raw) });
        r.pos = stop;
        break;
      }
      case 3:
        r.expect(tag, WireType.fixed64, 'SummaryDataPoint.time_unix_nano');
        timeNs = r.fixed64(end, 'time_unix_nano');
        break;
      case 4:
        r.expect(tag, WireType.fixed64, 'SummaryDataPoint.count');
        count = r.fixed64(end, 'count');
        break;
      case 5:
        r.expect(tag, WireType.fixed64, 'SummaryDataPoint.sum');
        sum = r.double(end, 'sum');
        break;
      case 6: {
        r.expect(tag, WireType.len, 'SummaryDataPoint.quantile_values');
        const stop = r.lengthDelimited(end, 'ValueAtQuantile');
        let quantile = 0;
        let value = 0;
        while (r.pos < stop) {
          const t = r.tag(stop);
          if (t >>> 3 === 1) {
            r.expect(t, WireType.fixed64, 'ValueAtQuantile.quantile');
            quantile = r.double(stop, 'quantile');
          } else if (t >>> 3 === 2) {
            r.expect(t, WireType.fixed64, 'ValueAtQuantile.value');
            value = r.double(stop, 'value');
          } else r.skip(t, stop);
        }
        quantiles.push({ quantile, value });
        break;
      }
      case 8:
        r.expect(tag, WireType.varint, 'SummaryDataPoint.flags');
        flags = r.uint32(end, 'flags');
        break;
      default:
        r.skip(tag, end);
    }
  }
  return {
    attributes: attrs,
    timeNs,
    count,
    sum,
    quantiles,
    noRecordedValue: (flags & FLAG_NO_RECORDED_VALUE) !== 0,
  };
}

function temporalityOf(v: number): Temporality {
  return v === 1 ? 'delta' : v === 2 ? 'cumulative' : 'unspecified';
}

function metric(r: ProtoReader, end: number): OtlpMetric {
  let name = '';
  let description = '';
  let unit = '';
  let result: OtlpMetric | undefined;
  while (r.pos < end) {
    const tag = r.tag(end);
    const field = tag >>> 3;
    if (field === 1) name = str(r, end, 'Metric.name');
    else if (field === 2) description = str(r, end, 'Metric.description');
    else if (field === 3) unit = str(r, end, 'Metric.unit');
    else if (field === 5 || field === 7 || field === 9 || field === 11 || field === 10) {
      r.expect(tag, WireType.len, 'Metric.data');
      const stop = r.lengthDelimited(end, 'Metric.data');
      let temporality = 0;
      let monotonic = false;
      const numberPoints: NumberPoint[] = [];
      const histogramPoints: HistogramPoint[] = [];
      const summaryPoints: SummaryPoint[] = [];
      let otherPoints = 0;
      while (r.pos < stop) {
        const t = r.tag(stop);
        const f = t >>> 3;
        if (f === 1) {
          r.expect(t, WireType.len, 'data_points');
          const s = r.lengthDelimited(stop, 'data point');
          if (field === 5 || field === 7) numberPoints.push(numberPoint(r, s));
          else if (field === 9) histogramPoints.push(histogramPoint(r, s));
          else if (field === 11) summaryPoints.push(summaryPoint(r, s));
          else otherPoints++;
          r.pos = s;
        } else if (f === 2 && field !== 5 && field !== 11) {
          r.expect(t, WireType.varint, 'aggregation_temporality');
          temporality = r.uint32(stop, 'aggregation_temporality');
        } else if (f === 3 && field === 7) {
          r.expect(t, WireType.varint, 'Sum.is_monotonic');
          monotonic = r.int64(stop, 'is_monotonic') !== 0;
        } else r.skip(t, stop);
      }
      r.pos = stop;
      if (field === 5) result = { kind: 'gauge', name: '', unit: '', points: numberPoints };
      else if (field === 7)
        result = {
          kind: 'sum',
          name: '',
          unit: '',
          monotonic,
          temporality: temporalityOf(temporality),
          points: numberPoints,
        };
      else if (field === 9)
        result = {
          kind: 'histogram',
          name: '',
          unit: '',
          temporality: temporalityOf(temporality),
          points: histogramPoints,
        };
      else if (field === 11) result = { kind: 'summary', name: '', unit: '', points: summaryPoints };
      else
        result = {
          kind: 'unsupported',
          name: '',
          unit: '',
          what: 'exponential histogram',
          pointCount: otherPoints,
        };
    } else r.skip(tag, end);
  }
  if (!result) return { kind: 'unsupported', name, unit, what: 'metric without data', pointCount: 0 };
  return { ...result, name, unit, description } as OtlpMetric;
}

/** Decodes an `ExportMetricsServiceRequest` in the protobuf encoding. */
export function decodeOtlpProtobuf(buf: Uint8Array): OtlpMetrics {
  const r = new ProtoReader(buf);
  const out: OtlpMetrics = [];
  try {
    eachMessage(r, buf.length, 1, 'resource_metrics', (rmEnd) => {
      const resourceAttributes: OtlpAttribute[] = [];
      const scopes: OtlpScopeMetrics[] = [];
      while (r.pos < rmEnd) {
        const tag = r.tag(rmEnd);
        if (tag >>> 3 === 1) {
          r.expect(tag, WireType.len, 'ResourceMetrics.resource');
          const stop = r.lengthDelimited(rmEnd, 'Resource');
          attributes(r, stop, 1, resourceAttributes);
          r.pos = stop;
        } else if (tag >>> 3 === 2) {
          r.expect(tag, WireType.len, 'ResourceMetrics.scope_metrics');
          const smEnd = r.lengthDelimited(rmEnd, 'ScopeMetrics');
          let scopeName = '';
          let scopeVersion = '';
          const scopeAttributes: OtlpAttribute[] = [];
          const metrics: OtlpMetric[] = [];
          while (r.pos < smEnd) {
            const t = r.tag(smEnd);
            if (t >>> 3 === 1) {
              r.expect(t, WireType.len, 'ScopeMetrics.scope');
              const stop = r.lengthDelimited(smEnd, 'InstrumentationScope');
              while (r.pos < stop) {
                const st = r.tag(stop);
                if (st >>> 3 === 1) scopeName = str(r, stop, 'InstrumentationScope.name');
                else if (st >>> 3 === 2) scopeVersion = str(r, stop, 'InstrumentationScope.version');
                else if (st >>> 3 === 3) {
                  r.expect(st, WireType.len, 'InstrumentationScope.attributes');
                  const s = r.lengthDelimited(stop, 'KeyValue');
                  const kv = keyValue(r, s, 0);
                  scopeAttributes.push({ key: kv.key, value: attributeText(kv.raw) });
                  r.pos = s;
                } else r.skip(st, stop);
              }
              r.pos = stop;
            } else if (t >>> 3 === 2) {
              r.expect(t, WireType.len, 'ScopeMetrics.metrics');
              const stop = r.lengthDelimited(smEnd, 'Metric');
              metrics.push(metric(r, stop));
              r.pos = stop;
            } else r.skip(t, smEnd);
          }
          r.pos = smEnd;
          scopes.push({ scopeName, scopeVersion, scopeAttributes, metrics });
        } else r.skip(tag, rmEnd);
      }
      out.push({ resourceAttributes, scopes });
    });
  } catch (err) {
    if (err instanceof ProtoError) throw new OtlpDecodeError(`malformed OTLP protobuf: ${err.message}`);
    throw err;
  }
  return out;
}

// --------------------------------------------------------------------------------------------------------
// JSON

/**
 * The deepest nesting of arrays and objects in a JSON text, by a linear scan that skips strings. Stops
 * counting at `limit + 1`.
 */
export function jsonDepth(buf: Uint8Array, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new OtlpDecodeError(`${what} must be an object`);
  return v as Json;
}

function arr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpDecodeError(`${what} must be an array`);
  return v;
}

function jstr(v: unknown, what: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new OtlpDecodeError(`${what} must be a string`);
  return v;
}

/** int64/uint64/fixed64 in OTLP/JSON: a decimal string or a number. */
function jint(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return Number(v);
  throw new OtlpDecodeError(
    `${what} must be an integer (a number or a decimal string), got ${JSON.stringify(v)?.slice(0, 40)}`,
  );
}

/** double in OTLP/JSON: a number, or "NaN", "Infinity", "-Infinity" (protobuf's JSON mapping). */
function jdouble(v: unknown, what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  throw new OtlpDecodeError(`${what} must be a number, got ${JSON.stringify(v)?.slice(0, 40)}`);
}

function jenum(v: unknown, names: readonly string[], what: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && names.includes(v)) return names.indexOf(v);
  throw new OtlpDecodeError(`${what} has an unknown value ${JSON.stringify(v)?.slice(0, 40)}`);
}

const TEMPORALITY_NAMES = [
  'AGGREGATION_TEMPORALITY_UNSPECIFIED',
  'AGGREGATION_TEMPORALITY_DELTA',
  'AGGREGATION_TEMPORALITY_CUMULATIVE',
] as const;

function jAnyValue(v: unknown, depth: number): unknown {
  const o = obj(v, 'AnyValue');
  if ('stringValue' in o) return jstr(o.stringValue, 'stringValue');
  if ('boolValue' in o) return o.boolValue === true;
  if ('intValue' in o) return jint(o.intValue, 'intValue');
  if ('doubleValue' in o) return jdouble(o.doubleValue, 'doubleValue');
  if ('bytesValue' in o) return jstr(o.bytesValue, 'bytesValue');
  if (depth >= MAX_VALUE_DEPTH) return '…';
  if ('arrayValue' in o)
    return arr(obj(o.arrayValue, 'arrayValue').values, 'arrayValue.values').map((x) =>
      jAnyValue(x, depth + 1),
    );
  if ('kvlistValue' in o) {
    const map: Record<string, unknown> = {};
    for (const kv of arr(obj(o.kvlistValue, 'kvlistValue').values, 'kvlistValue.values')) {
      const k = obj(kv, 'KeyValue');
      map[jstr(k.key, 'key')] = jAnyValue(k.value, depth + 1);
    }
    return map;
  }
  return '';
}

function jAttributes(v: unknown): OtlpAttribute[] {
  return arr(v, 'attributes').map((kv) => {
    const o = obj(kv, 'KeyValue');
    return { key: jstr(o.key, 'KeyValue.key'), value: attributeText(jAnyValue(o.value, 0)) };
  });
}

function jNumberPoint(v: unknown): NumberPoint {
  const p = obj(v, 'NumberDataPoint');
  const value = 'asInt' in p ? jint(p.asInt, 'asInt') : jdouble(p.asDouble, 'asDouble');
  return {
    attributes: jAttributes(p.attributes),
    timeNs: jint(p.timeUnixNano, 'timeUnixNano'),
    value,
    noRecordedValue: (jint(p.flags, 'flags') & FLAG_NO_RECORDED_VALUE) !== 0,
  };
}

function jMetric(v: unknown): OtlpMetric {
  const m = obj(v, 'Metric');
  return { ...jMetricData(m), description: jstr(m.description, 'Metric.description') };
}

function jMetricData(m: Json): OtlpMetricData {
  const name = jstr(m.name, 'Metric.name');
  const unit = jstr(m.unit, 'Metric.unit');
  if (m.gauge !== undefined) {
    return {
      kind: 'gauge',
      name,
      unit,
      points: arr(obj(m.gauge, 'gauge').dataPoints, 'dataPoints').map(jNumberPoint),
    };
  }
  if (m.sum !== undefined) {
    const s = obj(m.sum, 'sum');
    return {
      kind: 'sum',
      name,
      unit,
      monotonic: s.isMonotonic === true,
      temporality: temporalityOf(
        jenum(s.aggregationTemporality, TEMPORALITY_NAMES, 'aggregationTemporality'),
      ),
      points: arr(s.dataPoints, 'dataPoints').map(jNumberPoint),
    };
  }
  if (m.histogram !== undefined) {
    const h = obj(m.histogram, 'histogram');
    return {
      kind: 'histogram',
      name,
      unit,
      temporality: temporalityOf(
        jenum(h.aggregationTemporality, TEMPORALITY_NAMES, 'aggregationTemporality'),
      ),
      points: arr(h.dataPoints, 'dataPoints').map((x) => {
        const p = obj(x, 'HistogramDataPoint');
        return {
          attributes: jAttributes(p.attributes),
          timeNs: jint(p.timeUnixNano, 'timeUnixNano'),
          count: jint(p.count, 'count'),
          sum: p.sum === undefined || p.sum === null ? undefined : jdouble(p.sum, 'sum'),
          bucketCounts: arr(p.bucketCounts, 'bucketCounts').map((c) => jint(c, 'bucketCounts')),
          explicitBounds: arr(p.explicitBounds, 'explicitBounds').map((b) => jdouble(b, 'explicitBounds')),
          noRecordedValue: (jint(p.flags, 'flags') & FLAG_NO_RECORDED_VALUE) !== 0,
        };
      }),
    };
  }
  if (m.summary !== undefined) {
    return {
      kind: 'summary',
      name,
      unit,
      points: arr(obj(m.summary, 'summary').dataPoints, 'dataPoints').map((x) => {
        const p = obj(x, 'SummaryDataPoint');
        return {
          attributes: jAttributes(p.attributes),
          timeNs: jint(p.timeUnixNano, 'timeUnixNano'),
          count: jint(p.count, 'count'),
          sum: jdouble(p.sum, 'sum'),
          quantiles: arr(p.quantileValues, 'quantileValues').map((q) => {
            const o = obj(q, 'ValueAtQuantile');
            return { quantile: jdouble(o.quantile, 'quantile'), value: jdouble(o.value, 'value') };
          }),
          noRecordedValue: (jint(p.flags, 'flags') & FLAG_NO_RECORDED_VALUE) !== 0,
        };
      }),
    };
  }
  if (m.exponentialHistogram !== undefined) {
    return {
      kind: 'unsupported',
      name,
      unit,
      what: 'exponential histogram',
      pointCount: arr(obj(m.exponentialHistogram, 'exponentialHistogram').dataPoints, 'dataPoints').length,
    };
  }
  return { kind: 'unsupported', name, unit, what: 'metric without data', pointCount: 0 };
}

/** Decodes an `ExportMetricsServiceRequest` in the OTLP/JSON encoding. */
export function decodeOtlpJson(buf: Uint8Array): OtlpMetrics {
  const depth = jsonDepth(buf, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) {
    throw new OtlpDecodeError(`JSON nesting deeper than ${MAX_JSON_DEPTH} levels; OTLP needs about 10`);
  }
  let root: unknown;
  try {
    root = JSON.parse(textDecoder.decode(buf));
  } catch (err) {
    throw new OtlpDecodeError(`body is not valid JSON: ${(err as Error).message}`);
  }
  return arr(obj(root, 'ExportMetricsServiceRequest').resourceMetrics, 'resourceMetrics').map((rmv) => {
    const rm = obj(rmv, 'ResourceMetrics');
    return {
      resourceAttributes: jAttributes(obj(rm.resource, 'resource').attributes),
      scopes: arr(rm.scopeMetrics, 'scopeMetrics').map((smv) => {
        const sm = obj(smv, 'ScopeMetrics');
        const scope = obj(sm.scope, 'scope');
        return {
          scopeName: jstr(scope.name, 'scope.name'),
          scopeVersion: jstr(scope.version, 'scope.version'),
          scopeAttributes: jAttributes(scope.attributes),
          metrics: arr(sm.metrics, 'metrics').map(jMetric),
        };
      }),
    };
  });
}

/**
 * Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that round-trips, never in exponent
 * form. Prometheus's OTLP translator prints `le` and `quantile` this way.
 */
export function formatFloatF(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  const s = String(v);
  const e = s.indexOf('e');
  if (e < 0) return s;
  // JavaScript writes d[.ddd]e±x; expand it into plain decimal notation.
  const negative = v < 0;
  const mantissa = s.slice(negative ? 1 : 0, e);
  const digits = mantissa.replace('.', '');
  const point = Number(s.slice(e + 1)) + 1; // digits before the decimal point
  let out: string;
  if (point <= 0) out = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return negative ? `-${out}` : out;
}
