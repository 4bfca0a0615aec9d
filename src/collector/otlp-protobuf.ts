/**
 * OTLP protobuf reading (`ExportMetricsServiceRequest`, schemas in ../shared/protos/opentelemetry/): a schema
 * table walked by one generic reader into the OTLP/JSON object shape (proto3's JSON mapping: camelCase names),
 * which otlp-decode.ts's JSON mapper then turns into the model. One mapper serves both encodings, so they
 * cannot drift apart. Apart from otlp-decode.ts because the schema table and its reader are one concern
 * (the wire format), the mapping onto the model another.
 */
import { ProtoError, ProtoReader, WireType } from '../protocol/protobuf.js';

/** An OTLP/JSON object, as the protobuf reader fills it and the JSON mapper reads it. */
export type Json = Record<string, unknown>;

/** Nesting of AnyValue arrays and maps rendered into a label value; deeper parts are cut. */
export const MAX_VALUE_DEPTH = 16;

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** How a field is read: a scalar kind, `skip` (a message counted but not read), or a nested message schema. */
type FieldKind =
  | 'string'
  | 'bytes'
  | 'bool'
  | 'uint32'
  | 'int64'
  | 'fixed64'
  | 'sfixed64'
  | 'double'
  | 'skip';
interface FieldSpec {
  /** The OTLP/JSON (camelCase) name; error messages use the .proto (snake_case) one. */
  readonly name: string;
  readonly kind: FieldKind | Schema;
  readonly repeated?: boolean;
  /** Member of the message's one `oneof`: setting it clears the others (the last one on the wire wins). */
  readonly oneof?: boolean;
}
interface Schema {
  readonly name: string;
  readonly fields: Readonly<Record<number, FieldSpec>>;
  /** ArrayValue and KeyValueList: each one nests attribute values a level deeper (see MAX_VALUE_DEPTH). */
  readonly nests?: boolean;
}

const WIRE_TYPE: Record<FieldKind, number> = {
  string: WireType.len,
  bytes: WireType.len,
  skip: WireType.len,
  bool: WireType.varint,
  uint32: WireType.varint,
  int64: WireType.varint,
  fixed64: WireType.fixed64,
  sfixed64: WireType.fixed64,
  double: WireType.fixed64,
};

const f = (name: string, kind: FieldKind | Schema): FieldSpec => ({ name, kind });
/** A repeated field. */
const rep = (name: string, kind: FieldKind | Schema): FieldSpec => ({ name, kind, repeated: true });
/** A member of the message's oneof. */
const one = (name: string, kind: FieldKind | Schema): FieldSpec => ({ name, kind, oneof: true });
const schema = (name: string, fields: Record<number, FieldSpec>, nests = false): Schema => ({
  name,
  fields,
  nests,
});

const ANY_VALUE_FIELDS: Record<number, FieldSpec> = {};
const ANY_VALUE = schema('AnyValue', ANY_VALUE_FIELDS);
const KEY_VALUE = schema('KeyValue', { 1: f('key', 'string'), 2: f('value', ANY_VALUE) });
Object.assign(ANY_VALUE_FIELDS, {
  1: one('stringValue', 'string'),
  2: one('boolValue', 'bool'),
  3: one('intValue', 'int64'),
  4: one('doubleValue', 'double'),
  5: one('arrayValue', schema('ArrayValue', { 1: rep('values', ANY_VALUE) }, true)),
  6: one('kvlistValue', schema('KeyValueList', { 1: rep('values', KEY_VALUE) }, true)),
  7: one('bytesValue', 'bytes'),
});
const attrs = rep('attributes', KEY_VALUE);
const time = f('timeUnixNano', 'fixed64');
const flags = f('flags', 'uint32');
const temporality = f('aggregationTemporality', 'uint32');
const NUMBER_POINT = schema('NumberDataPoint', {
  7: attrs,
  3: time,
  4: one('asDouble', 'double'),
  6: one('asInt', 'sfixed64'),
  8: flags,
});
const HISTOGRAM_POINT = schema('HistogramDataPoint', {
  9: attrs,
  3: time,
  4: f('count', 'fixed64'),
  5: f('sum', 'double'),
  6: rep('bucketCounts', 'fixed64'),
  7: rep('explicitBounds', 'double'),
  10: flags,
});
const QUANTILE = schema('ValueAtQuantile', { 1: f('quantile', 'double'), 2: f('value', 'double') });
const SUMMARY_POINT = schema('SummaryDataPoint', {
  7: attrs,
  3: time,
  4: f('count', 'fixed64'),
  5: f('sum', 'double'),
  6: rep('quantileValues', QUANTILE),
  8: flags,
});
const METRIC = schema('Metric', {
  1: f('name', 'string'),
  2: f('description', 'string'),
  3: f('unit', 'string'),
  5: one('gauge', schema('Gauge', { 1: rep('dataPoints', NUMBER_POINT) })),
  7: one(
    'sum',
    schema('Sum', { 1: rep('dataPoints', NUMBER_POINT), 2: temporality, 3: f('isMonotonic', 'bool') }),
  ),
  9: one('histogram', schema('Histogram', { 1: rep('dataPoints', HISTOGRAM_POINT), 2: temporality })),
  // Exponential histograms are not translated: their points are only counted (as rejected), not read.
  10: one('exponentialHistogram', schema('ExponentialHistogram', { 1: rep('dataPoints', 'skip') })),
  11: one('summary', schema('Summary', { 1: rep('dataPoints', SUMMARY_POINT) })),
});
const SCOPE = schema('InstrumentationScope', { 1: f('name', 'string'), 2: f('version', 'string'), 3: attrs });
const SCOPE_METRICS = schema('ScopeMetrics', { 1: f('scope', SCOPE), 2: rep('metrics', METRIC) });
const RESOURCE_METRICS = schema('ResourceMetrics', {
  1: f('resource', schema('Resource', { 1: attrs })),
  2: rep('scopeMetrics', SCOPE_METRICS),
});
const REQUEST = schema('ExportMetricsServiceRequest', { 1: rep('resourceMetrics', RESOURCE_METRICS) });

const snakeCase = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function readScalar(r: ProtoReader, kind: FieldKind, end: number, what: string): unknown {
  switch (kind) {
    case 'string': {
      const stop = r.lengthDelimited(end, what);
      try {
        return textDecoder.decode(r.buf.subarray(r.pos, stop));
      } catch {
        throw new ProtoError(`${what} is not valid UTF-8`, r.pos);
      } finally {
        r.pos = stop;
      }
    }
    case 'bytes': {
      const stop = r.lengthDelimited(end, what);
      const text = Buffer.from(r.buf.subarray(r.pos, stop)).toString('base64');
      r.pos = stop;
      return text;
    }
    case 'skip':
      r.pos = r.lengthDelimited(end, what);
      return null;
    case 'bool':
      return r.int64(end, what) !== 0;
    case 'uint32':
      return r.uint32(end, what);
    case 'int64':
      return r.int64(end, what);
    case 'fixed64':
      return r.fixed64(end, what);
    case 'sfixed64':
      return r.sfixed64(end, what);
    case 'double':
      return r.double(end, what);
  }
}

/** Stores a field's value: appended to its list when repeated, else replacing what was there (last one wins). */
function put(into: Json, field: FieldSpec, value: unknown): void {
  if (!field.repeated) into[field.name] = value;
  else if (Array.isArray(into[field.name])) (into[field.name] as unknown[]).push(value);
  else into[field.name] = [value];
}

/**
 * Reads the message in `[r.pos, end)` into `into`. Singular messages met twice merge (proto3); repeated
 * fixed-width scalars may be packed. `valueDepth` counts nested ArrayValue/KeyValueList levels: at
 * MAX_VALUE_DEPTH their bytes are skipped unread and left as `{}`, which the mapper renders as '…'.
 */
function readMessage(r: ProtoReader, end: number, s: Schema, into: Json, valueDepth: number): Json {
  while (r.pos < end) {
    const tag = r.tag(end);
    const field = s.fields[tag >>> 3];
    if (!field) {
      r.skip(tag, end);
      continue;
    }
    const what = `${s.name}.${snakeCase(field.name)}`;
    if (field.oneof) {
      for (const other of Object.values(s.fields))
        if (other.oneof && other !== field) delete into[other.name];
    }
    const kind = field.kind;
    if (typeof kind !== 'string') {
      r.expect(tag, WireType.len, what);
      const stop = r.lengthDelimited(end, what);
      const existing = field.repeated ? undefined : (into[field.name] as Json | undefined);
      const cut = kind.nests === true && valueDepth >= MAX_VALUE_DEPTH;
      put(
        into,
        field,
        cut ? {} : readMessage(r, stop, kind, existing ?? {}, valueDepth + (kind.nests ? 1 : 0)),
      );
      r.pos = stop;
    } else if (field.repeated && (tag & 7) === WireType.len && WIRE_TYPE[kind] === WireType.fixed64) {
      const stop = r.lengthDelimited(end, what);
      if ((stop - r.pos) % 8 !== 0)
        throw new ProtoError(`packed ${what} is not a multiple of 8 bytes`, r.pos);
      while (r.pos < stop) put(into, field, readScalar(r, kind, stop, what));
    } else {
      // String fields are read by their length prefix whatever wire type the tag names (as the decoder
      // always has); every other field must carry the wire type its schema gives it.
      if (kind !== 'string') r.expect(tag, WIRE_TYPE[kind], what);
      put(into, field, readScalar(r, kind, end, what));
    }
  }
  return into;
}

/** Reads an `ExportMetricsServiceRequest` into the OTLP/JSON object shape; throws {@link ProtoError}. */
export function readOtlpProtobuf(buf: Uint8Array): Json {
  return readMessage(new ProtoReader(buf), buf.length, REQUEST, {}, 0);
}
