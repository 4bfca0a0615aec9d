/**
 * OTLP/HTTP metrics request decoders: protobuf (`ExportMetricsServiceRequest`, schemas in
 * ../shared/protos/opentelemetry/, transcribed into otlp-protobuf.ts's schema table) and the OTLP/JSON
 * encoding of the same message. The protobuf is read into the OTLP/JSON object shape, so one mapper produces
 * the small {@link OtlpMetrics} model (that `otlp-translate.ts` maps onto Prometheus series) from either
 * encoding.
 *
 * OTLP is not the hottest path (SDKs export every few seconds, batches are pre-aggregated), so this builds a
 * light object per metric and data point; sample values still end up in typed arrays.
 *
 * Robustness: every structural problem is an {@link OtlpDecodeError} (400). JSON nesting is measured before
 * `JSON.parse` runs, so a body of ten million `[` costs a linear scan, not seconds of parsing; attribute
 * values (which may nest arrays and maps) are rendered iteratively up to a depth limit.
 */
import { ProtoError } from '../protocol/protobuf.js';
import { type Json, MAX_VALUE_DEPTH, readOtlpProtobuf } from './otlp-protobuf.js';

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

/** JSON nesting accepted (OTLP/JSON needs about 10 levels plus attribute values). */
export const MAX_JSON_DEPTH = 64;

const FLAG_NO_RECORDED_VALUE = 1;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes an `ExportMetricsServiceRequest` in the protobuf encoding. */
export function decodeOtlpProtobuf(buf: Uint8Array): OtlpMetrics {
  let root: Json;
  try {
    root = readOtlpProtobuf(buf);
  } catch (err) {
    if (err instanceof ProtoError) throw new OtlpDecodeError(`malformed OTLP protobuf: ${err.message}`);
    throw err;
  }
  return mapRequest(root);
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
  return mapRequest(root);
}

/** An `ExportMetricsServiceRequest` in the OTLP/JSON object shape (parsed JSON, or read from protobuf) → model. */
function mapRequest(root: unknown): OtlpMetrics {
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

export function attributeText(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number') return formatFloatF(raw);
  if (typeof raw === 'boolean') return raw ? 'true' : 'false';
  return JSON.stringify(raw);
}

function temporalityOf(v: number): Temporality {
  return v === 1 ? 'delta' : v === 2 ? 'cumulative' : 'unspecified';
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
