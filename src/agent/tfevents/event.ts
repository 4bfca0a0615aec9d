/**
 * Just enough protobuf to read scalars from TensorBoard's `Event` records (tensorflow/core/util/event.proto,
 * tensorflow/core/framework/summary.proto and tensor.proto), hand-written because the agent needs five
 * messages and a general protobuf runtime would cost more memory than the whole tailer.
 *
 * Scalars come in two shapes, both read:
 * - `Summary.Value.simple_value` (float): TF1, `torch.utils.tensorboard` add_scalar, tensorboardX;
 * - `Summary.Value.tensor`, a one-element numeric tensor (float, double, half, bfloat16, int32, int64, ...):
 *   TF2 `tf.summary.scalar`, `add_scalar(new_style=True)`, Keras, Lightning. The `scalars` plugin name is only
 *   in the first value of a tag (TensorBoard writes metadata once per tag and file), so a tag whose first
 *   metadata named another plugin (histograms, images, text, ...) is skipped, and any one-element numeric
 *   tensor of an unnamed tag is a scalar.
 */

import { ProtoError, ProtoReader, WireType } from '../../protocol/protobuf.js';

export { ProtoError };

const textDecoder = new TextDecoder();

function string(r: ProtoReader, end: number, what: string): string {
  const stop = r.lengthDelimited(end, what);
  const text = textDecoder.decode(r.buf.subarray(r.pos, stop));
  r.pos = stop;
  return text;
}

/**
 * A field's key (number << 3 | wire type). Unlike `ProtoReader.tag` it lets field number 0 through, to be
 * skipped like any unknown field: event files written by old or odd writers were always read that way.
 */
function fieldKey(r: ProtoReader, end: number): number {
  return r.uint32(end, 'field key');
}

/** A length-delimited field: returns [start, end) and moves past it. */
function bytes(r: ProtoReader, end: number, what: string): [number, number] {
  const stop = r.lengthDelimited(end, what);
  const start = r.pos;
  r.pos = stop;
  return [start, stop];
}

export interface ScalarValue {
  readonly tag: string;
  readonly value: number;
}

export interface DecodedEvent {
  readonly wallTimeSec: number;
  readonly step: number;
  readonly fileVersion: string | undefined;
  readonly scalars: readonly ScalarValue[];
}

/**
 * Decodes one Event record. `pluginOfTag` remembers, per file, the plugin each tag's first metadata named
 * (updated here), so later values of non-scalar tags are skipped.
 */
export function decodeEvent(data: Uint8Array, pluginOfTag: Map<string, string>): DecodedEvent {
  const r = new ProtoReader(data);
  const end = data.length;
  let wallTimeSec = 0;
  let step = 0;
  let fileVersion: string | undefined;
  const scalars: ScalarValue[] = [];
  while (r.pos < end) {
    const key = fieldKey(r, end);
    const field = key >>> 3;
    const wt = key & 7;
    if (field === 1 && wt === WireType.fixed64) wallTimeSec = r.double(end, 'Event.wall_time');
    else if (field === 2 && wt === WireType.varint) step = r.int64(end, 'Event.step');
    else if (field === 3 && wt === WireType.len) fileVersion = string(r, end, 'Event.file_version');
    else if (field === 5 && wt === WireType.len) {
      const stop = r.lengthDelimited(end, 'Event.summary');
      while (r.pos < stop) {
        const k = fieldKey(r, stop);
        if (k === ((1 << 3) | WireType.len)) {
          const v = decodeValue(r, r.lengthDelimited(stop, 'Summary.value'), pluginOfTag);
          if (v) scalars.push(v);
        } else r.skip(k, stop);
      }
    } else r.skip(key, end);
  }
  return { wallTimeSec, step, fileVersion, scalars };
}

/** Reads a `Summary.Value` in `[r.pos, end)`, leaving `r.pos` at `end`. */
function decodeValue(r: ProtoReader, end: number, pluginOfTag: Map<string, string>): ScalarValue | undefined {
  let tag = '';
  let simple: number | undefined;
  let tensor: [number, number] | undefined;
  let plugin: string | undefined;
  while (r.pos < end) {
    const key = fieldKey(r, end);
    const field = key >>> 3;
    const wt = key & 7;
    if (field === 1 && wt === WireType.len) tag = string(r, end, 'Value.tag');
    else if (field === 7 && wt === WireType.len && tag === '')
      tag = string(r, end, 'Value.node_name'); // for old writers without tag
    else if (field === 2 && wt === WireType.fixed32) {
      simple = float32(r, end, 'Value.simple_value');
    } else if (field === 8 && wt === WireType.len) tensor = bytes(r, end, 'Value.tensor');
    else if (field === 9 && wt === WireType.len)
      plugin = pluginName(r, r.lengthDelimited(end, 'Value.metadata'));
    else r.skip(key, end);
  }
  if (tag === '') return undefined;
  if (plugin !== undefined && !pluginOfTag.has(tag)) pluginOfTag.set(tag, plugin);
  if (simple !== undefined) return { tag, value: simple };
  if (tensor === undefined) return undefined;
  const known = pluginOfTag.get(tag);
  if (known !== undefined && known !== '' && known !== 'scalars') return undefined;
  const value = scalarOfTensor(r.buf, tensor[0], tensor[1]);
  return value === undefined ? undefined : { tag, value };
}

function float32(r: ProtoReader, end: number, what: string): number {
  if (r.pos + 4 > end) throw new ProtoError(`truncated float in ${what}`, r.pos);
  const v = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 4).getFloat32(0, true);
  r.pos += 4;
  return v;
}

/** SummaryMetadata.plugin_data.plugin_name ('' if absent) in `[r.pos, end)`; leaves `r.pos` at `end`. */
function pluginName(r: ProtoReader, end: number): string {
  let name = '';
  let found = false;
  while (r.pos < end && !found) {
    const key = fieldKey(r, end);
    if (key === ((1 << 3) | WireType.len)) {
      found = true;
      const stop = r.lengthDelimited(end, 'SummaryMetadata.plugin_data');
      while (r.pos < stop) {
        const k = fieldKey(r, stop);
        if (k === ((1 << 3) | WireType.len)) {
          name = string(r, stop, 'PluginData.plugin_name');
          break;
        }
        r.skip(k, stop);
      }
    } else r.skip(key, end);
  }
  r.pos = end;
  return name;
}

// tensorflow/core/framework/types.proto
const DT_FLOAT = 1;
const DT_DOUBLE = 2;
const DT_INT32 = 3;
const DT_UINT8 = 4;
const DT_INT16 = 5;
const DT_INT8 = 6;
const DT_INT64 = 9;
const DT_BOOL = 10;
const DT_BFLOAT16 = 14;
const DT_UINT16 = 17;
const DT_HALF = 19;
const DT_UINT32 = 22;
const DT_UINT64 = 23;

/** The value of a one-element numeric TensorProto, or undefined for anything else. */
export function scalarOfTensor(buf: Uint8Array, start: number, end: number): number | undefined {
  const r = new ProtoReader(buf);
  r.pos = start;
  let dtype = 0;
  let elements = 1;
  let content: [number, number] | undefined;
  const values: number[] = [];
  while (r.pos < end) {
    const key = fieldKey(r, end);
    const field = key >>> 3;
    const wt = key & 7;
    if (field === 1 && wt === WireType.varint) dtype = r.int64(end, 'TensorProto.dtype');
    else if (field === 2 && wt === WireType.len)
      elements = shapeElements(r, r.lengthDelimited(end, 'tensor_shape'));
    else if (field === 4 && wt === WireType.len) content = bytes(r, end, 'TensorProto.tensor_content');
    else if (field === 5) readRepeated(r, key, end, WireType.fixed32, values);
    else if (field === 6) readRepeated(r, key, end, WireType.fixed64, values);
    else if (field === 7 || field === 10 || field === 11 || field === 16 || field === 17)
      readRepeated(r, key, end, WireType.varint, values);
    else if (field === 13) {
      const halves: number[] = [];
      readRepeated(r, key, end, WireType.varint, halves);
      for (const h of halves) values.push(dtype === DT_BFLOAT16 ? bfloat16(h) : half(h));
    } else r.skip(key, end);
  }
  if (elements !== 1) return undefined;
  if (content) {
    const view = new DataView(buf.buffer, buf.byteOffset + content[0], content[1] - content[0]);
    const n = content[1] - content[0];
    switch (dtype) {
      case DT_FLOAT:
        return n === 4 ? view.getFloat32(0, true) : undefined;
      case DT_DOUBLE:
        return n === 8 ? view.getFloat64(0, true) : undefined;
      case DT_INT32:
      case DT_UINT32:
        return n === 4 ? (dtype === DT_INT32 ? view.getInt32(0, true) : view.getUint32(0, true)) : undefined;
      case DT_INT64:
        return n === 8 ? Number(view.getBigInt64(0, true)) : undefined;
      case DT_UINT64:
        return n === 8 ? Number(view.getBigUint64(0, true)) : undefined;
      case DT_INT16:
        return n === 2 ? view.getInt16(0, true) : undefined;
      case DT_UINT16:
        return n === 2 ? view.getUint16(0, true) : undefined;
      case DT_INT8:
        return n === 1 ? view.getInt8(0) : undefined;
      case DT_UINT8:
      case DT_BOOL:
        return n === 1 ? view.getUint8(0) : undefined;
      case DT_HALF:
        return n === 2 ? half(view.getUint16(0, true)) : undefined;
      case DT_BFLOAT16:
        return n === 2 ? bfloat16(view.getUint16(0, true)) : undefined;
      default:
        return undefined;
    }
  }
  const numeric = [
    DT_FLOAT,
    DT_DOUBLE,
    DT_INT32,
    DT_UINT8,
    DT_INT16,
    DT_INT8,
    DT_INT64,
    DT_BOOL,
    DT_BFLOAT16,
    DT_UINT16,
    DT_HALF,
    DT_UINT32,
    DT_UINT64,
  ];
  if (!numeric.includes(dtype) || values.length !== 1) return undefined;
  return values[0];
}

/** The element count of a TensorShapeProto in `[r.pos, end)` (-1 for unknown rank); leaves `r.pos` at `end`. */
function shapeElements(r: ProtoReader, end: number): number {
  let elements = 1;
  while (r.pos < end) {
    const key = fieldKey(r, end);
    if (key === ((2 << 3) | WireType.len)) {
      const stop = r.lengthDelimited(end, 'TensorShapeProto.dim');
      let size = 0;
      while (r.pos < stop) {
        const k = fieldKey(r, stop);
        if (k === ((1 << 3) | WireType.varint)) size = r.int64(stop, 'Dim.size');
        else r.skip(k, stop);
      }
      elements *= size;
    } else if (key === ((3 << 3) | WireType.varint)) {
      if (r.int64(end, 'TensorShapeProto.unknown_rank') !== 0) {
        r.pos = end;
        return -1;
      }
    } else r.skip(key, end);
  }
  return elements;
}

/**
 * A repeated numeric field, packed (wire type 2) or not: float for fixed32, double for fixed64, int64 for
 * varint. An element with another wire type is skipped.
 */
function readRepeated(r: ProtoReader, key: number, end: number, elementWt: number, out: number[]): void {
  const wt = key & 7;
  if (wt === WireType.len) {
    const stop = r.lengthDelimited(end, `packed field ${key >>> 3}`);
    while (r.pos < stop) out.push(readElement(r, stop, elementWt));
  } else if (wt === elementWt) out.push(readElement(r, end, elementWt));
  else r.skip(key, end);
}

function readElement(r: ProtoReader, end: number, wt: number): number {
  if (wt === WireType.fixed32) return float32(r, end, 'TensorProto.float_val');
  if (wt === WireType.fixed64) return r.double(end, 'TensorProto.double_val');
  return r.int64(end, 'TensorProto value');
}

/** IEEE 754 binary16 bits → number. */
export function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** bfloat16 bits (the upper half of a float32) → number. */
export function bfloat16(bits: number): number {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, (bits & 0xffff) << 16);
  return v.getFloat32(0);
}
