/**
 * Memory per active series held by the storage (issue "Storage" item 4): N fleet-shaped series appended at
 * 1 s for T ticks through `Tsdb` with checkpoints every 2 s of data (the head log written, sealed chunks spilled),
 * the default 10-minute blocks (cuts on the way), then the process's heap and array buffers measured after a
 * full GC — over what the same process held before the store existed — and broken down by what the head holds
 * (Head.memoryStats: exact typed-array bytes; JS objects estimated from their counts, calibrated below).
 * Not part of `npm test`; results in bench/results/storage-memory.md.
 *
 *   node --expose-gc --import tsx bench/storage-memory.ts --series 200000 --ticks 660
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { SeriesBatch } from '../src/model/batch.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { defaultTsdbOptions, Tsdb } from '../src/storage/tsdb.js';
import { GPU_AND_TRAIN_METRICS } from './harness/in-process.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '200000' },
    ticks: { type: 'string', default: '660' },
    noise: { type: 'boolean', default: false },
  },
});
const gc = () => (globalThis as { gc?: () => void }).gc?.();
if (!(globalThis as { gc?: unknown }).gc) throw new Error('run with node --expose-gc');
const METRICS = GPU_AND_TRAIN_METRICS;
const PER_NODE = METRICS.length * 8;
const NODES = Math.ceil(Number(args.series) / PER_NODE);
const TICKS = Number(args.ticks);
const T0 = Date.UTC(2026, 0, 1);
let seed = 42;
const rnd = () => {
  seed = (seed * 16807) % 2147483647;
  return seed / 2147483647;
};

/** One batch per node, built once; timestamps and values are rewritten in place every tick. */
const batches: SeriesBatch[] = [];
for (let node = 0; node < NODES; node++) {
  const job = Math.floor(node / 8);
  const b = new SeriesBatchBuilder(PER_NODE);
  for (let g = 0; g < 8; g++)
    for (const m of METRICS)
      b.addSeries({
        __name__: m,
        job_id: `job-${job.toString(36).padStart(5, '0')}`,
        node_id: `node-${node}`,
        cluster: `c${job % 4}`,
        gpu: String(g),
        gpu_uuid: `GPU-${node}-${g}`,
        rank: String((node % 8) * 8 + g),
      }).add(T0, 0);
  batches.push(b.build());
}
function fill(b: SeriesBatch, tick: number): void {
  const t = T0 + tick * 1000;
  for (let i = 0; i < b.sampleCount; i++) {
    b.timestamps[i] = t;
    const m = i % METRICS.length;
    const util = 0.9 + 0.05 * rnd();
    let v: number;
    if (args.noise) v = m === 2 || m === 5 ? 1.98e9 : 0.5 + rnd();
    else
      switch (m) {
        case 0:
          v = Math.round(util * 100) / 100;
          break;
        case 1:
          v = 60e9 + Math.floor(rnd() * 1e6) * 4096;
          break;
        case 2:
          v = 85899345920;
          break;
        case 3:
          v = Math.round((90 + 560 * util) * 100) / 100;
          break;
        case 4:
          v = 60 + Math.floor(rnd() * 8);
          break;
        case 5:
          v = 1.98e9;
          break;
        case 6:
          v = Math.floor(tick / 20);
          break;
        default:
          v = 2 + 8 * (1 + tick / 150) ** -0.7 * (1 + 0.01 * rnd());
      }
    b.values[i] = v;
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-mem-'));
gc();
const before = process.memoryUsage();
const db = await Tsdb.open({
  dir,
  ...defaultTsdbOptions,
  retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
  fsync: false,
  logger: pino({ level: 'warn' }),
});
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
let pos = 0;
const t0 = performance.now();
for (let tick = 0; tick < TICKS; tick++) {
  for (const b of batches) {
    fill(b, tick);
    db.appender.append('bench', b);
  }
  if (tick % 2 === 1) await db.checkpoint(new Map([[0, ++pos]]));
  if (tick % 60 === 59)
    console.log(
      `tick ${tick + 1}: ${((performance.now() - t0) / 1000).toFixed(0)} s, rss ${mb(process.memoryUsage().rss)}, blocks ${db.listBlocks().length}`,
    );
}
await db.checkpoint(new Map([[0, ++pos]]));
gc();
gc();
const after = process.memoryUsage();
const active = db.activeSeries();
const heap = after.heapUsed - before.heapUsed;
const buffers = after.arrayBuffers - before.arrayBuffers;
const st = db.head.memoryStats();
// Object sizes in this V8 (64-bit, pointer compression off in Node 20): measured on the shapes the head uses.
const per = calibrate();
const sealedObjects = st.sealedChunks * per.sealedChunk + st.sealedLists * per.list;
const postingObjects = st.postingLists * per.posting;
const symbolBytes = st.symbols * per.symbol + st.symbolChars;
const typed = st.columnBytes + st.arenaBytes + st.slabBytes + st.postingBytes + st.oooBytes;
const rows: [string, number][] = [
  [
    `per-series columns and series hash index (typed arrays, capacity ${st.capacity}, ${st.hashEntries} hashed)`,
    st.columnBytes,
  ],
  ['open chunks (slab pages)', st.slabBytes],
  [`sealed chunk descriptors (${st.sealedChunks} chunks in ${st.sealedLists} lists, objects)`, sealedObjects],
  ['sealed chunk bytes not yet spilled', st.sealedInMemoryBytes],
  ['label pairs (arena)', st.arenaBytes],
  [`postings (${st.postingLists} lists: objects + ids)`, postingObjects + st.postingBytes],
  [`symbols (${st.symbols} strings)`, symbolBytes],
  ['out-of-order buffers', st.oooBytes + st.oooBuffers * per.list],
];
const accounted = rows.reduce((n, [, b]) => n + b, 0);
console.log(
  `\n${active} active series, ${TICKS} samples each at 1 s (${st.refs} refs), blocks: ${db.listBlocks().length}`,
);
console.log(
  `process: heap +${mb(heap)}, array buffers +${mb(buffers)} → ${((heap + buffers) / active).toFixed(0)} B per active series (RSS ${mb(after.rss)})`,
);
console.log(`typed arrays of the head: ${mb(typed)}`);
for (const [what, b] of rows) console.log(`  ${(b / active).toFixed(0).padStart(6)} B/series  ${what}`);
console.log(
  `  ${((heap + buffers - accounted) / active).toFixed(0).padStart(6)} B/series  the rest (block index cache, scratch, garbage)`,
);
await db.close();
rmSync(dir, { recursive: true, force: true });

/** Heap bytes per object of the shapes the head keeps, measured here. */
function calibrate() {
  const n = 200_000;
  const measure = (make: (i: number) => unknown) => {
    gc();
    const a = process.memoryUsage();
    const keep = new Array<unknown>(n);
    for (let i = 0; i < n; i++) keep[i] = make(i);
    gc();
    const b = process.memoryUsage();
    const bytes = (b.heapUsed - a.heapUsed + b.arrayBuffers - a.arrayBuffers) / n - 8;
    keep.length = 0;
    return bytes;
  };
  const file = {};
  return {
    sealedChunk: measure((i) => ({
      minT: i * 1.5,
      maxT: i * 2.5,
      count: 120,
      bytes: undefined,
      spill: { file, offset: i * 100, length: 900 },
    })),
    list: measure(() => []),
    posting: measure(() => ({ ids: new Int32Array(4), n: 1 })),
    symbol: measure((i) => `s${i}`) - 4,
  };
}
