/**
 * The two murmur3 variants the code base had, on label-like byte strings (6 to 40 bytes), in M hashes per
 * CPU-second: `tail as a round` (kept, src/model/murmur3.ts: the tail mixed in with a rotate and multiply-add,
 * so that rounds continue over concatenated ranges) and `reference tail` (the processor's former copy: the
 * tail only xored in). Both finalized with fmix32.
 *
 *   npx tsx bench/murmur3.ts
 */
import { fmix32, murmur3 } from '../src/model/murmur3.js';

// Its block loop is src/model/murmur3.ts:murmur3's on purpose: the variants differ only in the tail, which is what
// this measures.
function referenceTail(b: Uint8Array, start: number, len: number): number {
  let h = len;
  let i = start;
  const whole = start + (len & ~3);
  for (; i < whole; i += 4) {
    let k = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail !== 0) {
    let k = b[i]!;
    if (tail > 1) k ^= b[i + 1]! << 8;
    if (tail > 2) k ^= b[i + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  return fmix32(h);
}

const enc = new TextEncoder();
const strings: Uint8Array[] = [];
for (let i = 0; i < 4096; i++)
  strings.push(
    enc.encode(['gpu', 'node-', 'job_id', 'train-run-', 'gpu_utilization_percent'][i % 5]! + i * 7919),
  );
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const ROUNDS = 400;
function run(name: string, f: (b: Uint8Array, s: number, l: number) => number): void {
  let x = 0;
  const t0 = cpu();
  for (let r = 0; r < ROUNDS; r++) for (const s of strings) x ^= f(s, 0, s.length);
  const rate = (ROUNDS * strings.length) / (cpu() - t0) / 1e6;
  console.log(`${name.padEnd(16)} ${rate.toFixed(1)} M hashes/CPU-s${x === 0.5 ? '!' : ''}`);
}
for (let i = 0; i < 3; i++) {
  run('tail as a round', murmur3);
  run('reference tail', referenceTail);
}
