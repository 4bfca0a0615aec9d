/**
 * Gorilla decode speed (samples per CPU-second): the bulk decoder (queries, bulk-read.ts), the sample reader
 * (iterators, the head's out-of-order checks) and a block chunk with XOR values. 200 chunks of 120 samples.
 *
 *   npx tsx bench/storage-decode.ts            # this tree
 *   npx tsx bench/storage-decode.ts /other/checkout   # another checkout, for a before/after comparison
 */
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..'));
const { decodeXorInto, encodeXor, XorReader } = await import(`${root}/src/storage/codec/xor.ts`);
const { encodeChunk, decodeChunk, SampleBuffer } = await import(`${root}/src/storage/codec/chunk.ts`);
const { ByteWriter } = await import(`${root}/src/protocol/bytes.ts`);
const chunks: Uint8Array[] = [];
const ts = new Float64Array(120),
  vs = new Float64Array(120);
for (let c = 0; c < 200; c++) {
  for (let i = 0; i < 120; i++) {
    ts[i] = 1e12 + i * 1000 + (i % 7 === 0 ? c : 0);
    vs[i] = c % 3 === 0 ? 42 : Math.round(Math.sin(i + c) * 1000) / 10 + c;
  }
  chunks.push(encodeXor(ts, vs, 0, 120));
}
const T = new Float64Array(200),
  VB = new Uint32Array(400);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
for (let w = 0; w < 3; w++) {
  let t0 = cpu();
  for (let r = 0; r < 400; r++) for (const b of chunks) decodeXorInto(b, 120, T, VB, 0);
  const bulk = (400 * 200 * 120) / (cpu() - t0) / 1e6;
  const rd = new XorReader();
  let s = 0;
  t0 = cpu();
  for (let r = 0; r < 200; r++)
    for (const b of chunks) {
      rd.reset(b, 120);
      while (rd.next()) s += rd.t;
    }
  const reader = (200 * 200 * 120) / (cpu() - t0) / 1e6;
  // block chunk with XOR values: force by noisy values
  const out = new ByteWriter();
  const sb = new SampleBuffer(256);
  for (let i = 0; i < 120; i++) vs[i] = Math.random();
  out.reset();
  encodeChunk(ts, vs, 0, 120, out);
  const blk = out.toBytes();
  t0 = cpu();
  for (let r = 0; r < 40000; r++) decodeChunk(blk, sb, ts[0]);
  const block = (40000 * 120) / (cpu() - t0) / 1e6;
  console.log(
    `bulk ${bulk.toFixed(1)} M/s  reader ${reader.toFixed(1)} M/s  blockchunk(xor) ${block.toFixed(1)} M/s ${s > 0 ? '' : '!'}`,
  );
}
