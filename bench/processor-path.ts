/**
 * The processor worker's cost per sample, by part, in CPU microseconds per sample (process.cpuUsage, user +
 * system; one thread does all the work here, so this is that thread's CPU, its GC included).
 *
 * Feeds what a processor worker reads from the bus (one native payload per job per tick: the collector keys
 * records by `job_id`) through the worker's hot path exactly as `Processor.applyWith` runs it:
 *
 * - decode: `decodeRecord` into the series table's refs (record-decoder.ts, series-table.ts);
 * - append: the embedded TSDB's `appendKeyed` with the processor's ref cache (storage/head.ts);
 * - detect: `DetectorEngine.observeRecord` and the derived series appended back (the worker's engine has
 *   derived series on);
 * - checkpoint: `Tsdb.checkpoint` every 5 ticks (head log record, compressed, no fsync).
 *
 * Each part runs over a whole tick's records in turn (one CPU reading per part per tick). The first tick creates
 * every series and is reported apart; the steady figures are over the later ticks.
 *
 *   npx tsx bench/processor-path.ts                     # 40K series (as bench/ingest-profile.ts), 30 ticks
 *   npx tsx bench/processor-path.ts --series 200000 --ticks 10
 *   node --trace-gc --import tsx bench/processor-path.ts  # collections during the steady ticks
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { DetectorSettings } from '../src/processor/detectors/config.js';
import { DetectorEngine } from '../src/processor/detectors/engine.js';
import { decodeRecord, RecordBatch, RecordShapes } from '../src/processor/record-decoder.js';
import { SeriesTable } from '../src/processor/series-table.js';
import { NativeEncoder } from '../src/protocol/native.js';
import { FleetSimulator } from '../src/simulator/fleet.js';
import type { HeadRefCache } from '../src/storage/head.js';
import { fleetForSeries } from './harness/dataset.js';
import { openBenchTsdb } from './harness/in-process.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '40000' },
    ticks: { type: 'string', default: '30' },
    /** Leave the detector engine out (storage path only). */
    'no-detect': { type: 'boolean', default: false },
    /** Decode without remembering record shapes (record-decoder.ts RecordShapes). */
    'no-shapes': { type: 'boolean', default: false },
  },
});
const TICKS = Number(args.ticks);
const TENANT = 'default';

const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// 1. What the bus carries: per tick, one native payload per job (all its nodes' series).
const fleet = fleetForSeries(Number(args.series));
const sim = new FleetSimulator({
  seed: 1,
  jobs: fleet.jobs,
  nodesPerJob: fleet.nodesPerJob,
  gpusPerNode: fleet.gpusPerNode,
  intervalMs: 1000,
  incidents: true,
  startMs: Date.now() - (TICKS + 60) * 1000,
  cluster: 'bench',
  incidentDelayMs: 300_000,
  minSteps: 1_000_000,
  maxSteps: 2_000_000,
});
const enc = new NativeEncoder();
const ticks: Uint8Array[][] = [];
const samplesOf: number[] = [];
for (let i = 0; i < 40; i++) sim.tick();
for (let k = 0; k < TICKS; k++) {
  sim.tick();
  const byJob = new Map<string, SeriesBatchBuilder>();
  let n = 0;
  for (const node of sim.activeNodes()) {
    let b = byJob.get(node.job.id);
    if (!b) {
      b = new SeriesBatchBuilder();
      byJob.set(node.job.id, b);
    }
    for (let s = 0; s < node.series.length; s++) {
      if (node.present[s] === 0) continue;
      b.addSeries(node.series[s]!).add(sim.nowMs, node.values[s]!);
      n++;
    }
  }
  ticks.push([...byJob.values()].map((b) => enc.encodePayload(b.build())));
  samplesOf.push(n);
}
console.log(
  `fleet: ${fleet.jobs} jobs, ${samplesOf[0]} series, ${TICKS} ticks, ${ticks[0]!.length} records per tick`,
);

// 2. The worker's path.
const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-bench-processor-'));
const db = await openBenchTsdb(dir, { fsync: false, blockCacheBytes: 256 << 20 });
const table = new SeriesTable();
const tenantSid = table.internString(TENANT);
const refs = db.appender.newSeriesRefCache!() as HeadRefCache;
const shapes = args['no-shapes'] ? undefined : new RecordShapes();
const engine = args['no-detect']
  ? undefined
  : new DetectorEngine(DetectorSettings.defaults(), { transition() {} }, { derived: true });
/** One decode buffer per record of a tick: each phase runs over the whole tick (a CPU reading per phase). */
const batches = ticks[0]!.map(() => new RecordBatch());
const parts = { decode: 0, append: 0, detect: 0, checkpoint: 0 };
let first = { ...parts };
let firstSamples = 0;
let steadySamples = 0;
let positions = 0;
const gcBefore = process.memoryUsage().heapUsed;
for (let k = 0; k < TICKS; k++) {
  const nowMs = Date.now();
  engine?.tick(nowMs, true);
  const records = ticks[k]!;
  while (batches.length < records.length) batches.push(new RecordBatch());
  let c = cpu();
  for (let i = 0; i < records.length; i++)
    decodeRecord(records[i]!, tenantSid, table, batches[i]!, nowMs, undefined, shapes);
  let c1 = cpu();
  parts.decode += c1 - c;
  c = c1;
  for (let i = 0; i < records.length; i++) {
    const rb = batches[i]!;
    await db.appender.appendKeyed!(
      TENANT,
      {
        seriesCount: rb.seriesCount,
        keys: rb.refs,
        labels: table.labels,
        labelIds: table,
        offsets: rb.starts,
        timestamps: rb.timestamps,
        values: rb.values,
        sampleCount: rb.sampleCount,
      },
      refs,
    );
  }
  c1 = cpu();
  parts.append += c1 - c;
  c = c1;
  if (engine) {
    for (let i = 0; i < records.length; i++) {
      engine.observeRecord(TENANT, batches[i]!, table);
      for (const [tenant, derived] of engine.takeDerived()) await db.appender.append(tenant, derived);
    }
    parts.detect += cpu() - c;
  }
  if (k % 5 === 4) {
    const c = cpu();
    await db.checkpoint(new Map([[0, ++positions]]));
    parts.checkpoint += cpu() - c;
  }
  if (k === 0) {
    first = { ...parts };
    for (const key of Object.keys(parts) as (keyof typeof parts)[]) parts[key] = 0;
    firstSamples = samplesOf[0]!;
  } else steadySamples += samplesOf[k]!;
}
const fmt = (us: number, n: number) => (us / n).toFixed(3).padStart(7);
console.log('| part | first tick (creates series) µs/sample | steady µs/sample |');
console.log('|---|---:|---:|');
let firstTotal = 0;
let steadyTotal = 0;
for (const key of Object.keys(parts) as (keyof typeof parts)[]) {
  firstTotal += first[key];
  steadyTotal += parts[key];
  console.log(`| ${key} | ${fmt(first[key], firstSamples)} | ${fmt(parts[key], steadySamples)} |`);
}
console.log(`| **total** | ${fmt(firstTotal, firstSamples)} | ${fmt(steadyTotal, steadySamples)} |`);
console.log(
  `steady: ${(steadySamples / (steadyTotal / 1e6) / 1e6).toFixed(2)} M samples per CPU-second; heap growth ${((process.memoryUsage().heapUsed - gcBefore) / 1e6).toFixed(1)} MB`,
);
await db.close();
rmSync(dir, { recursive: true, force: true });
