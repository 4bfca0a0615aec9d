/**
 * A minimal protobuf wire-format reader for trainwatch's protobuf decoders: the collector's remote-write and
 * OTLP decoders and the agent's TensorBoard event reader.
 * It walks a message field by field over one buffer, never builds an object, and reports every malformed
 * input as a {@link ProtoError} naming what it was reading and where: truncated fields, varints longer than
 * 10 bytes, lengths beyond the enclosing message, wire types that do not match the schema, groups.
 *
 * Usage: `while (r.pos < end) { const tag = r.tag(end); switch (tag >>> 3) { ... default: r.skip(tag, end) } }`.
 */

export class ProtoError extends Error {
  constructor(message: string, offset: number) {
    super(`${message} (at byte ${offset})`);
    this.name = 'ProtoError';
  }
}

export const WireType = { varint: 0, fixed64: 1, len: 2, startGroup: 3, endGroup: 4, fixed32: 5 } as const;

const TWO_32 = 4294967296;

export class ProtoReader {
  buf: Uint8Array;
  pos = 0;
  private view: DataView;

  constructor(buf: Uint8Array = new Uint8Array(0)) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Points the reader at another buffer (reuse instead of allocating a reader per request). */
  reset(buf: Uint8Array): this {
    this.buf = buf;
    this.pos = 0;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    return this;
  }

  /** A field's tag (field number << 3 | wire type). */
  tag(end: number): number {
    const t = this.uint32(end, 'field tag');
    if (t >>> 3 === 0) throw new ProtoError('field number 0 is invalid', this.pos);
    return t;
  }

  /** A varint that must fit in 32 bits (tags, lengths, enums, uint32 fields). */
  uint32(end: number, what: string): number {
    const buf = this.buf;
    let p = this.pos;
    if (p >= end) throw new ProtoError(`truncated varint in ${what}`, p);
    let b = buf[p++]!;
    if (b < 0x80) {
      this.pos = p;
      return b;
    }
    // Two bytes (lengths of series and label sets) are the next most common case.
    if (p < end && buf[p]! < 0x80) {
      this.pos = p + 1;
      return (b & 0x7f) | (buf[p]! << 7);
    }
    let v = b & 0x7f;
    for (let shift = 7; shift < 70; shift += 7) {
      if (p >= end) throw new ProtoError(`truncated varint in ${what}`, p);
      b = buf[p++]!;
      if (shift < 32) v += (b & 0x7f) * 2 ** shift;
      else if ((b & 0x7f) !== 0 && shift < 63) {
        throw new ProtoError(`varint in ${what} does not fit in 32 bits`, p);
      }
      if (b < 0x80) {
        this.pos = p;
        if (v > 0xffffffff) throw new ProtoError(`varint in ${what} does not fit in 32 bits`, p);
        return v;
      }
    }
    throw new ProtoError(`varint in ${what} is longer than 10 bytes`, p);
  }

  /**
   * An int64 varint as a JS number (two's complement: negative values take 10 bytes). Exact within ±2^53;
   * beyond that the nearest double, which callers' range checks then refuse.
   */
  int64(end: number, what: string): number {
    const buf = this.buf;
    let p = this.pos;
    let lo = 0;
    let hi = 0;
    let i = 0;
    for (; i < 10; i++) {
      if (p >= end) throw new ProtoError(`truncated varint in ${what}`, p);
      const b = buf[p++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) break;
    }
    if (i === 10) throw new ProtoError(`varint in ${what} is longer than 10 bytes`, p);
    this.pos = p;
    if (hi & 0x80000000) {
      // Negative: -(~x + 1)
      const nlo = ~lo >>> 0;
      const nhi = ~hi >>> 0;
      return -(nhi * TWO_32 + nlo + 1);
    }
    return (hi >>> 0) * TWO_32 + (lo >>> 0);
  }

  /** A uint64 varint as a JS number (exact below 2^53). */
  uint64(end: number, what: string): number {
    const v = this.int64(end, what);
    return v < 0 ? v + 2 ** 64 : v;
  }

  /** A zigzag sint32/sint64 varint. */
  sint64(end: number, what: string): number {
    const u = this.uint64(end, what);
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  double(end: number, what: string): number {
    if (this.pos + 8 > end) throw new ProtoError(`truncated double in ${what}`, this.pos);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** fixed64 as a number (exact below 2^53; OTLP nanosecond times lose only sub-microsecond precision). */
  fixed64(end: number, what: string): number {
    if (this.pos + 8 > end) throw new ProtoError(`truncated fixed64 in ${what}`, this.pos);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  sfixed64(end: number, what: string): number {
    if (this.pos + 8 > end) throw new ProtoError(`truncated sfixed64 in ${what}`, this.pos);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getInt32(this.pos + 4, true);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  /** Reads a length prefix and returns where the field's bytes end; `pos` is then at their start. */
  lengthDelimited(end: number, what: string): number {
    const len = this.uint32(end, `${what} length`);
    const stop = this.pos + len;
    if (stop > end) {
      throw new ProtoError(`${what} claims ${len} bytes but only ${end - this.pos} remain`, this.pos);
    }
    return stop;
  }

  /** Checks that a field has the wire type the schema gives it. */
  expect(tag: number, wireType: number, what: string): void {
    if ((tag & 7) !== wireType) {
      throw new ProtoError(
        `field ${tag >>> 3} (${what}) has wire type ${tag & 7}, expected ${wireType}`,
        this.pos,
      );
    }
  }

  /** Skips a field this decoder does not use. Groups (deprecated, never used by these schemas) are refused. */
  skip(tag: number, end: number): void {
    switch (tag & 7) {
      case WireType.varint:
        this.int64(end, `field ${tag >>> 3}`);
        return;
      case WireType.fixed64:
        if (this.pos + 8 > end) throw new ProtoError(`truncated field ${tag >>> 3}`, this.pos);
        this.pos += 8;
        return;
      case WireType.len:
        this.pos = this.lengthDelimited(end, `field ${tag >>> 3}`);
        return;
      case WireType.fixed32:
        if (this.pos + 4 > end) throw new ProtoError(`truncated field ${tag >>> 3}`, this.pos);
        this.pos += 4;
        return;
      default:
        throw new ProtoError(`field ${tag >>> 3} has unsupported wire type ${tag & 7}`, this.pos);
    }
  }
}
