/**
 * The large storage run (issue "Storage"): ≥ 1M active series held in one process, with RSS per series,
 * append throughput, incremental checkpoint cost, query latency and bytes per sample reported. Not part of
 * `npm test`. Results: bench/results/storage-large.md.
 *
 *   node --expose-gc --max-old-space-size=16000 --import tsx bench/storage-large.ts --series 1000000 --ticks 40
 *
 * Series look like the fleet's: 8 GPU metrics per GPU, 8 GPUs per node, 8 nodes per job, with the labels the
 * agent sets (job_id, node_id, gpu, gpu_uuid, rank, cluster). Values follow the simulator's shapes: noisy
 * utilisation and power, integer-valued memory and clocks, constants, counters. One sample per series per tick
 * (15 s apart), one native payload per node per tick, decoded as the processor decodes it.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { LabelMatcher } from '../src/model/labels.js';
import { decodePayload, NativeEncoder } from '../src/protocol/native.js';
import { GPU_AND_TRAIN_METRICS, openBenchTsdb } from './harness/in-process.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '1000000' },
    ticks: { type: 'string', default: '40' },
    interval: { type: 'string', default: '15000' },
    'checkpoint-every': { type: 'string', default: '4' },
  },
});
const METRICS = GPU_AND_TRAIN_METRICS;
const PER_NODE = METRICS.length * 8;
const NODES = Math.ceil(Number(args.series) / PER_NODE);
const TICKS = Number(args.ticks);
const INTERVAL = Number(args.interval);
const CP_EVERY = Number(args['checkpoint-every']);
const T0 = Date.UTC(2026, 0, 1);

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;

let seed = 42;
const rnd = () => {
  seed = (seed * 16807) % 2147483647;
  return seed / 2147483647;
};

const enc = new NativeEncoder();
function nodePayload(node: number, tick: number): Uint8Array {
  const job = Math.floor(node / 8);
  const b = new SeriesBatchBuilder(PER_NODE);
  const t = T0 + tick * INTERVAL;
  for (let g = 0; g < 8; g++) {
    const base = {
      job_id: `job-${job.toString(36).padStart(5, '0')}`,
      node_id: `node-${node}`,
      cluster: `c${job % 4}`,
      gpu: String(g),
      gpu_uuid: `GPU-${node}-${g}`,
      rank: String((node % 8) * 8 + g),
    };
    const util = Math.min(1, 0.9 + 0.05 * rnd());
    for (const m of METRICS) {
      let v: number;
      switch (m) {
        case 'gpu_utilization_ratio':
          v = util;
          break;
        case 'gpu_memory_used_bytes':
          v = 60e9 + Math.floor(rnd() * 1e6) * 4096;
          break;
        case 'gpu_memory_total_bytes':
          v = 85899345920;
          break;
        case 'gpu_power_watts':
          v = Math.round((90 + 560 * util) * 100) / 100;
          break;
        case 'gpu_temperature_celsius':
          v = 60 + Math.floor(rnd() * 8);
          break;
        case 'gpu_sm_clock_hertz':
          v = 1.98e9;
          break;
        case 'gpu_ecc_errors_total':
          v = Math.floor(tick / 20);
          break;
        default:
          v = 2 + 8 * (1 + tick / 150) ** -0.7 * (1 + 0.01 * rnd());
      }
      b.addSeries({ __name__: m, ...base }).add(t, v);
    }
  }
  return enc.encodePayload(b.build());
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-large-'));
const db = await openBenchTsdb(dir, { fsync: true, blockCacheBytes: 1 << 30 });
gc();
const rssStart = process.memoryUsage().rss;
let appendCpu = 0;
let steadyCpu = 0;
let steadySamples = 0;
let samples = 0;
const checkpoints: { ms: number; bytes: number }[] = [];
let pos = 0;
console.log(`nodes ${NODES}, series ${NODES * PER_NODE}, ticks ${TICKS}`);
for (let tick = 0; tick < TICKS; tick++) {
  let tickCpu = 0;
  let tickSamples = 0;
  for (let node = 0; node < NODES; node++) {
    const batch = decodePayload(nodePayload(node, tick)).batch;
    const c = cpu();
    db.appender.append('bench', batch);
    tickCpu += cpu() - c;
    tickSamples += batch.sampleCount;
  }
  appendCpu += tickCpu;
  samples += tickSamples;
  if (tick > 0) {
    steadyCpu += tickCpu;
    steadySamples += tickSamples;
  }
  if (tick % CP_EVERY === CP_EVERY - 1) {
    const before = dirBytes(path.join(dir, 'head'));
    const t = performance.now();
    await db.checkpoint(new Map([[0, ++pos]]));
    checkpoints.push({ ms: performance.now() - t, bytes: dirBytes(path.join(dir, 'head')) - before });
  }
  if (tick === 0 || tick % 10 === 9)
    console.log(
      `tick ${tick}: ${(tickSamples / tickCpu / 1e6).toFixed(2)} M samples/CPU-s, rss ${mb(process.memoryUsage().rss)}`,
    );
}
gc();
const active = db.activeSeries();
const mem = process.memoryUsage();
const out: string[] = [];
const say = (s: string) => {
  out.push(s);
  console.log(s);
};
say(`active series: ${active}`);
say(`samples appended: ${samples} (${TICKS} per series)`);
say(
  `append: ${(samples / appendCpu / 1e6).toFixed(2)} M samples/CPU-s overall; ${(steadySamples / steadyCpu / 1e6).toFixed(2)} M once series exist (decode not included)`,
);
say(
  `RSS: ${mb(mem.rss)} total, ${mb(mem.rss - rssStart)} over the empty store → ${((mem.rss - rssStart) / active).toFixed(0)} B per active series (heap used ${mb(mem.heapUsed)}, array buffers ${mb(mem.arrayBuffers)})`,
);
const incr = checkpoints.slice(1);
say(
  `incremental checkpoint (${CP_EVERY} ticks = ${CP_EVERY * active} samples): median ${median(incr.map((c) => c.ms)).toFixed(0)} ms, ${mb(median(incr.map((c) => c.bytes)))} written; first (snapshot) ${checkpoints[0]?.ms.toFixed(0)} ms`,
);

// Query latency on the head.
const q = db.localQuerier('bench', T0, T0 + TICKS * INTERVAL);
const lat = (what: string, matchers: LabelMatcher[]) => {
  const times: number[] = [];
  let n = 0;
  let pts = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const sel = q.select(matchers);
    n = sel.length;
    pts = 0;
    for (const s of sel) {
      const it = s.iterator();
      while (it.next()) pts++;
    }
    times.push(performance.now() - t);
  }
  say(`query ${what}: ${n} series, ${pts} samples, median ${median(times).toFixed(1)} ms`);
};
lat('one job (job_id=)', [
  new LabelMatcher('=', '__name__', 'gpu_utilization_ratio'),
  new LabelMatcher('=', 'job_id', 'job-00010'),
]);
lat('one node, all metrics', [new LabelMatcher('=', 'node_id', 'node-777')]);
lat('regex over 1/16 of the clusters', [
  new LabelMatcher('=', '__name__', 'gpu_power_watts'),
  new LabelMatcher('=~', 'job_id', 'job-000[0-9a-f].'),
  new LabelMatcher('!=', 'gpu', '7'),
]);

// Cut everything into blocks: bytes per sample on disk, then the same queries on blocks.
const mark = new SeriesBatchBuilder();
mark.addSeries({ __name__: 'bench_cut_marker' }).add(T0 + 10 * 3_600_000, 0);
db.appender.append('bench', mark.build());
let t = performance.now();
await db.checkpoint(new Map([[0, ++pos]]));
say(`cut of the head into blocks: ${((performance.now() - t) / 1000).toFixed(1)} s`);
t = performance.now();
while (await db.compactOnce());
const blocksDir = path.join(dir, 'blocks');
const raw = db.listBlocks().filter((b) => b.tier === 'raw');
const rawBytes = readdirSync(blocksDir)
  .filter((f) => f.startsWith('raw-'))
  .reduce((n, f) => n + statSync(path.join(blocksDir, f)).size, 0);
const rawSamples = raw.reduce((n, b) => n + b.samples, 0);
say(
  `raw blocks: ${mb(rawBytes)} for ${rawSamples} samples → ${(rawBytes / rawSamples).toFixed(2)} bytes/sample including the index (${TICKS} samples per series)`,
);
gc();
say(`RSS after the cut (head empty, block index cached): ${mb(process.memoryUsage().rss)}`);
const qb = db.localQuerier('bench', T0, T0 + TICKS * INTERVAL);
const latB = (what: string, matchers: LabelMatcher[]) => {
  const times: number[] = [];
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const s0 = performance.now();
    const sel = qb.select(matchers);
    n = sel.length;
    for (const s of sel) {
      const it = s.iterator();
      while (it.next());
    }
    times.push(performance.now() - s0);
  }
  say(`query on blocks ${what}: ${n} series, median ${median(times).toFixed(1)} ms`);
};
latB('one job (job_id=)', [
  new LabelMatcher('=', '__name__', 'gpu_utilization_ratio'),
  new LabelMatcher('=', 'job_id', 'job-00010'),
]);
latB('one node, all metrics', [new LabelMatcher('=', 'node_id', 'node-777')]);
await db.close();
rmSync(dir, { recursive: true, force: true });

function dirBytes(d: string): number {
  return readdirSync(d).reduce((n, f) => n + statSync(path.join(d, f)).size, 0);
}
function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
