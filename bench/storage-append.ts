/**
 * Storage append throughput and bytes per sample on fleet-simulator data (src/simulator), in samples per
 * CPU-second (process.cpuUsage, user + system).
 *
 * - append: one native payload per node per tick (what the processor reads from the bus), decoded with
 *   `decodePayload` and appended with `Tsdb.appender.append`. The decode alone is timed in a separate pass and
 *   subtracted, so `append` is the storage's own cost; `decode+append` is the processor's whole path.
 * - bytes/sample: the same data cut into blocks (and compacted): bytes of the raw block files ÷ samples.
 *
 *   npx tsx bench/storage-append.ts                          # 240 jobs × 8 nodes × 8 GPUs ≈ 200k series, 30 ticks
 *   npx tsx bench/storage-append.ts --jobs 20 --ticks 3600   # an hour of 1 s data for bytes/sample
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { decodePayload, NativeEncoder } from '../src/protocol/native.js';
import { FleetSimulator } from '../src/simulator/fleet.js';
import { openBenchTsdb } from './harness/in-process.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '240' },
    nodes: { type: 'string', default: '8' },
    gpus: { type: 'string', default: '8' },
    ticks: { type: 'string', default: '30' },
    interval: { type: 'string', default: '1000' },
  },
});
const JOBS = Number(args.jobs);
const TICKS = Number(args.ticks);
const INTERVAL = Number(args.interval);

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// 1. Generate the payloads: one per node per tick, as the bus carries them.
const sim = new FleetSimulator({
  seed: 1,
  jobs: JOBS,
  nodesPerJob: Number(args.nodes),
  gpusPerNode: Number(args.gpus),
  intervalMs: INTERVAL,
  incidents: true,
  startMs: Date.UTC(2026, 0, 1),
  cluster: 'bench',
  incidentDelayMs: 300_000,
  // Jobs long enough to run through the whole measurement.
  minSteps: 1_000_000,
  maxSteps: 2_000_000,
});
const enc = new NativeEncoder();
const ticks: Uint8Array[][] = [];
let samples = 0;
const seriesSeen = new Set<string>();
// Let the queued jobs start.
for (let i = 0; i < 40; i++) sim.tick();
for (let k = 0; k < TICKS; k++) {
  sim.tick();
  const payloads: Uint8Array[] = [];
  for (const node of sim.activeNodes()) {
    const b = new SeriesBatchBuilder(node.series.length);
    for (let s = 0; s < node.series.length; s++) {
      if (node.present[s] === 0) continue;
      b.addSeries(node.series[s]!).add(sim.nowMs, node.values[s]!);
      if (k === 0) seriesSeen.add(`${node.nodeId}/${s}`);
      samples++;
    }
    payloads.push(enc.encodePayload(b.build()));
  }
  ticks.push(payloads);
}
const series = seriesSeen.size;
console.log(
  `fleet: ${series} series, ${TICKS} ticks, ${samples} samples, ${ticks[0]!.length} payloads per tick`,
);

// 2. Decode alone.
let c0 = cpu();
let decoded = 0;
for (const payloads of ticks) for (const p of payloads) decoded += decodePayload(p).batch.sampleCount;
const decodeCpu = cpu() - c0;

// 3. Decode + append into a TSDB with a data directory.
const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-bench-storage-'));
const db = await openBenchTsdb(dir, { fsync: false, blockCacheBytes: 256 << 20 });
const rss0 = process.memoryUsage().rss;
c0 = cpu();
let firstTickCpu = 0;
let checkpointCpu = 0;
let positions = 0;
for (let k = 0; k < ticks.length; k++) {
  for (const p of ticks[k]!) db.appender.append('bench', decodePayload(p).batch);
  if (k === 0) firstTickCpu = cpu() - c0;
  if (k % 5 === 4) {
    const cc = cpu();
    await db.checkpoint(new Map([[0, ++positions]]));
    checkpointCpu += cpu() - cc;
  }
}
const totalCpu = cpu() - c0;
const appendCpu = totalCpu - checkpointCpu - decodeCpu;
const steadyRate =
  ((samples - samples / TICKS) / (totalCpu - checkpointCpu - firstTickCpu - decodeCpu * (1 - 1 / TICKS))) | 0;
global.gc?.();
const rss = process.memoryUsage().rss;
console.log(`decode only:        ${(decoded / decodeCpu / 1e6).toFixed(2)} M samples/CPU-s`);
console.log(
  `decode+append:      ${(samples / (totalCpu - checkpointCpu) / 1e6).toFixed(2)} M samples/CPU-s (incl. first tick, which creates the series)`,
);
console.log(
  `append (storage):   ${(samples / appendCpu / 1e6).toFixed(2)} M samples/CPU-s; steady state (series exist): ${(steadyRate / 1e6).toFixed(2)} M`,
);
console.log(
  `checkpoints:        ${checkpointCpu.toFixed(2)} CPU-s for ${Math.floor(TICKS / 5)} (head log ${(
    readdirSync(path.join(dir, 'head'))
      .filter((f) => f.endsWith('.log'))
      .reduce((n, f) => n + statSync(path.join(dir, 'head', f)).size, 0) / 1e6
  ).toFixed(1)} MB)`,
);
console.log(
  `RSS:                ${(rss / 1e6).toFixed(0)} MB (${((rss - rss0) / series).toFixed(0)} B/series over the start, ${(rss / series).toFixed(0)} B/series total)`,
);

// 4. Bytes per sample: cut everything into blocks and compact.
const t0 = Date.now();
const last = new SeriesBatchBuilder();
last.addSeries({ __name__: 'bench_cut_marker' }).add(sim.nowMs + 10 * 3_600_000, 0);
db.appender.append('bench', last.build());
await db.checkpoint(new Map([[0, ++positions]]));
while (await db.compactOnce());
const raw = db.listBlocks().filter((b) => b.tier === 'raw');
const blocksDir = path.join(dir, 'blocks');
const rawBytes = readdirSync(blocksDir)
  .filter((f) => f.startsWith('raw-'))
  .reduce((n, f) => n + statSync(path.join(blocksDir, f)).size, 0);
const rawSamples = raw.reduce((n, b) => n + b.samples, 0);
console.log(
  `blocks:             ${raw.length} raw, ${rawSamples} samples, ${(rawBytes / 1e6).toFixed(2)} MB → ${(rawBytes / rawSamples).toFixed(3)} bytes/sample (index included), cut+compaction ${Date.now() - t0} ms`,
);
for (const tier of ['10s', '1m', '1h'] as const) {
  const files = readdirSync(blocksDir).filter((f) => f.startsWith(`${tier}-`));
  if (files.length > 0)
    console.log(
      `  ${tier} rollups:       ${(files.reduce((n, f) => n + statSync(path.join(blocksDir, f)).size, 0) / 1e6).toFixed(2)} MB`,
    );
}
await db.close();
rmSync(dir, { recursive: true, force: true });
