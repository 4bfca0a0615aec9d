/**
 * TFRecord framing, as TensorFlow's `tensorflow/core/lib/io/record_writer.cc` writes it and every TensorBoard
 * writer (tf.summary, torch.utils.tensorboard, tensorboardX) uses for `events.out.tfevents.*` files:
 *
 * ```
 * ┌───────────────┬──────────────────────────┬────────────┬─────────────────────────┐
 * │ length u64le  │ masked CRC-32C of length │ data       │ masked CRC-32C of data  │
 * │               │ (u32le)                  │ (length B) │ (u32le)                 │
 * └───────────────┴──────────────────────────┴────────────┴─────────────────────────┘
 * masked(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8   (mod 2^32)
 * ```
 *
 * CRC-32C is the Castagnoli polynomial (0x82F63B78 reflected), which node:zlib does not provide.
 */

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function maskedCrc32c(data: Uint8Array, start = 0, end = data.length): number {
  const crc = crc32c(data, start, end);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export const RECORD_OVERHEAD = 16;

export type RecordRead =
  | { readonly kind: 'record'; readonly data: Uint8Array; readonly next: number }
  /** Not enough bytes yet: the writer is in the middle of a record (or has not flushed it). */
  | { readonly kind: 'partial' }
  | { readonly kind: 'corrupt'; readonly reason: string };

/** Reads the record starting at `pos` of `buf`. */
export function readRecord(buf: Uint8Array, pos: number): RecordRead {
  if (buf.length - pos < 12) return { kind: 'partial' };
  const view = new DataView(buf.buffer, buf.byteOffset + pos, 12);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (maskedCrc32c(buf, pos, pos + 8) !== view.getUint32(8, true))
    return { kind: 'corrupt', reason: `length CRC mismatch at byte ${pos}` };
  if (hi !== 0 || lo > 1 << 30)
    return { kind: 'corrupt', reason: `record of ${hi * 2 ** 32 + lo} bytes at byte ${pos}` };
  const end = pos + 12 + lo + 4;
  if (buf.length < end) return { kind: 'partial' };
  const dataCrc = new DataView(buf.buffer, buf.byteOffset + pos + 12 + lo, 4).getUint32(0, true);
  if (maskedCrc32c(buf, pos + 12, pos + 12 + lo) !== dataCrc)
    return { kind: 'corrupt', reason: `data CRC mismatch in the record at byte ${pos}` };
  return { kind: 'record', data: buf.subarray(pos + 12, pos + 12 + lo), next: end };
}
