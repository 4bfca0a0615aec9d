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

export class ProtoError extends Error {}

/** Protobuf wire reader over a byte range. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Varint as a JS number; 64-bit values beyond 2^53 lose precision, negative int64 (10 bytes) are exact. */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        // Ten-byte varints are negative int64s: two's complement.
        return i === 9 || result >= 2 ** 63 ? result - 2 ** 64 : result;
      }
      mul *= 128;
    }
    throw new ProtoError('varint longer than 10 bytes');
  }

  fixed32(): DataView {
    if (this.pos + 4 > this.end) throw new ProtoError('truncated fixed32');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4);
    this.pos += 4;
    return v;
  }

  fixed64(): DataView {
    if (this.pos + 8 > this.end) throw new ProtoError('truncated fixed64');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8);
    this.pos += 8;
    return v;
  }

  /** A length-delimited field: returns [start, end) and moves past it. */
  bytes(): [number, number] {
    const len = this.varint();
    if (len < 0 || this.pos + len > this.end)
      throw new ProtoError('length-delimited field runs past its message');
    const start = this.pos;
    this.pos += len;
    return [start, start + len];
  }

  string(): string {
    const [s, e] = this.bytes();
    return textDecoder.decode(this.buf.subarray(s, e));
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.fixed64();
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        this.fixed32();
        return;
      default:
        throw new ProtoError(`unsupported wire type ${wireType}`);
    }
  }
}

const textDecoder = new TextDecoder();

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
  const r = new Reader(data);
  let wallTimeSec = 0;
  let step = 0;
  let fileVersion: string | undefined;
  const scalars: ScalarValue[] = [];
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (field === 1 && wt === 1) wallTimeSec = r.fixed64().getFloat64(0, true);
    else if (field === 2 && wt === 0) step = r.varint();
    else if (field === 3 && wt === 2) fileVersion = r.string();
    else if (field === 5 && wt === 2) {
      const [s, e] = r.bytes();
      decodeSummary(data, s, e, pluginOfTag, scalars);
    } else r.skip(wt);
  }
  return { wallTimeSec, step, fileVersion, scalars };
}

function decodeSummary(
  buf: Uint8Array,
  start: number,
  end: number,
  pluginOfTag: Map<string, string>,
  out: ScalarValue[],
): void {
  const r = new Reader(buf, start, end);
  while (!r.done) {
    const key = r.varint();
    if (key === ((1 << 3) | 2)) {
      const [s, e] = r.bytes();
      const v = decodeValue(buf, s, e, pluginOfTag);
      if (v) out.push(v);
    } else r.skip(key & 7);
  }
}

function decodeValue(
  buf: Uint8Array,
  start: number,
  end: number,
  pluginOfTag: Map<string, string>,
): ScalarValue | undefined {
  const r = new Reader(buf, start, end);
  let tag = '';
  let simple: number | undefined;
  let tensor: [number, number] | undefined;
  let plugin: string | undefined;
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (field === 1 && wt === 2) tag = r.string();
    else if (field === 7 && wt === 2 && tag === '')
      tag = r.string(); // node_name, for old writers without tag
    else if (field === 2 && wt === 5) simple = r.fixed32().getFloat32(0, true);
    else if (field === 8 && wt === 2) tensor = r.bytes();
    else if (field === 9 && wt === 2) {
      const [s, e] = r.bytes();
      plugin = pluginName(buf, s, e);
    } else r.skip(wt);
  }
  if (tag === '') return undefined;
  if (plugin !== undefined && !pluginOfTag.has(tag)) pluginOfTag.set(tag, plugin);
  if (simple !== undefined) return { tag, value: simple };
  if (tensor === undefined) return undefined;
  const known = pluginOfTag.get(tag);
  if (known !== undefined && known !== '' && known !== 'scalars') return undefined;
  const value = scalarOfTensor(buf, tensor[0], tensor[1]);
  return value === undefined ? undefined : { tag, value };
}

/** SummaryMetadata.plugin_data.plugin_name ('' if absent). */
function pluginName(buf: Uint8Array, start: number, end: number): string {
  const r = new Reader(buf, start, end);
  while (!r.done) {
    const key = r.varint();
    if (key === ((1 << 3) | 2)) {
      const [s, e] = r.bytes();
      const pr = new Reader(buf, s, e);
      while (!pr.done) {
        const k = pr.varint();
        if (k === ((1 << 3) | 2)) return pr.string();
        pr.skip(k & 7);
      }
      return '';
    }
    r.skip(key & 7);
  }
  return '';
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
  const r = new Reader(buf, start, end);
  let dtype = 0;
  let elements = 1;
  let content: [number, number] | undefined;
  const values: number[] = [];
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wt = key & 7;
    if (field === 1 && wt === 0) dtype = r.varint();
    else if (field === 2 && wt === 2) {
      const [s, e] = r.bytes();
      elements = shapeElements(buf, s, e);
    } else if (field === 4 && wt === 2) content = r.bytes();
    else if (field === 5) readRepeated(r, wt, 5, (v) => values.push(v.getFloat32(0, true)));
    else if (field === 6) readRepeated(r, wt, 1, (v) => values.push(v.getFloat64(0, true)));
    else if (field === 7 || field === 10 || field === 11 || field === 16 || field === 17)
      readRepeatedVarint(r, wt, values);
    else if (field === 13) {
      const halves: number[] = [];
      readRepeatedVarint(r, wt, halves);
      for (const h of halves) values.push(dtype === DT_BFLOAT16 ? bfloat16(h) : half(h));
    } else r.skip(wt);
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

function shapeElements(buf: Uint8Array, start: number, end: number): number {
  const r = new Reader(buf, start, end);
  let elements = 1;
  while (!r.done) {
    const key = r.varint();
    if (key === ((2 << 3) | 2)) {
      const [s, e] = r.bytes();
      const d = new Reader(buf, s, e);
      let size = 0;
      while (!d.done) {
        const k = d.varint();
        if (k === ((1 << 3) | 0)) size = d.varint();
        else d.skip(k & 7);
      }
      elements *= size;
    } else if (key === ((3 << 3) | 0)) {
      if (r.varint() !== 0) return -1; // unknown rank
    } else r.skip(key & 7);
  }
  return elements;
}

/** Repeated fixed-width field, packed (wire type 2) or not. */
function readRepeated(r: Reader, wt: number, elementWt: 1 | 5, each: (v: DataView) => void): void {
  if (wt === 2) {
    const [s, e] = r.bytes();
    const sub = new Reader(r.buf, s, e);
    while (!sub.done) each(elementWt === 5 ? sub.fixed32() : sub.fixed64());
  } else if (wt === elementWt) {
    each(elementWt === 5 ? r.fixed32() : r.fixed64());
  } else r.skip(wt);
}

function readRepeatedVarint(r: Reader, wt: number, out: number[]): void {
  if (wt === 2) {
    const [s, e] = r.bytes();
    const sub = new Reader(r.buf, s, e);
    while (!sub.done) out.push(sub.varint());
  } else if (wt === 0) out.push(r.varint());
  else r.skip(wt);
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
