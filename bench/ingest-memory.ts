/**
 * Memory per active series of each part of the ingest path, measured in one process on the benchmark's
 * fleet data set (bench/harness/dataset.ts: the simulator's 8-node × 8-GPU jobs, as remote-write 1.0):
 *
 * 1. collector: the tenant's series registry (interning table + active-series tracker), fed the requests as
 *    the remote-write route feeds it (snappy → protobuf walk → refs → one native payload per partition key);
 * 2. processor: its series table (series-table.ts), fed those payloads as bus records;
 * 3. detectors: the detector engine with derived series, fed the decoded records;
 * 4. storage: the TSDB head in memory (`MemoryStorage`), fed the same batches (storage's own share, for
 *    reference: the storage engineer owns it).
 *
 * Each figure is the growth of V8's heap plus array buffers (typed arrays) after a full GC, divided by the
 * active series; the data set's own payloads are built before the first measurement and kept to the end.
 *
 *   node --expose-gc --import tsx bench/ingest-memory.ts                 # 200K series, 10 ticks
 *   node --expose-gc --import tsx bench/ingest-memory.ts --series 40000
 */
import { parseArgs } from 'node:util';
import { PayloadWriter, RefBatch } from '../src/collector/ref-batch.js';
import { decodeRemoteWriteV1, newDecodeStats } from '../src/collector/remote-write-decode.js';
import { SeriesKeyBuilder } from '../src/collector/series-key.js';
import { SnappyDecoder } from '../src/collector/snappy.js';
import { TenantLimits } from '../src/collector/tenant-limits.js';
import type { SeriesBatch } from '../src/model/batch.js';
import type { LabelSet } from '../src/model/labels.js';
import { DetectorSettings } from '../src/processor/detectors/config.js';
import { DetectorEngine } from '../src/processor/detectors/engine.js';
import { decodeRecord, RecordBatch } from '../src/processor/record-decoder.js';
import { SeriesTable } from '../src/processor/series-table.js';
import { StateWriter } from '../src/processor/state.js';
import { ProtoReader } from '../src/protocol/protobuf.js';
import { MemoryStorage } from '../src/storage/index.js';
import { buildDataset, fleetForSeries } from './harness/dataset.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '200000' },
    ticks: { type: 'string', default: '10' },
    /** Skip the storage measurement (the slowest part). */
    'no-storage': { type: 'boolean', default: false },
  },
});

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc --import tsx bench/ingest-memory.ts\n');
  process.exit(2);
}

/** Heap plus array buffers after full GCs, with pauses so that concurrent sweeping of buffers finishes. */
async function used(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  lastBuffers = m.arrayBuffers;
  return m.heapUsed + m.arrayBuffers;
}
/** Array buffers (typed arrays) at the last measurement: each row also says how much of it they are. */
let lastBuffers = 0;

const TENANT = 'bench';
const ticks = Number(args.ticks);
const ds = buildDataset({
  seed: 42,
  ...fleetForSeries(Number(args.series)),
  ticks,
  ticksPerRequest: 1,
  intervalMs: 1000,
  endMs: Date.now(),
  tenant: TENANT,
  warmupTicks: 40,
});
const series = ds.summary.activeSeries;
process.stdout.write(
  `data set: ${series} active series, ${ds.summary.samples} samples, ${ds.requests.length} requests\n`,
);

const rows: [string, number, number][] = [];
/** Everything measured stays referenced from here to the end (V8 frees what a function no longer uses). */
const keep: unknown[] = [ds];
let before = await used();
let buffersBefore = lastBuffers;
const measure = async (what: string, minus = 0) => {
  const now = await used();
  rows.push([what, (now - before - minus) / series, (lastBuffers - buffersBefore - minus) / series]);
  before = now;
  buffersBefore = lastBuffers;
};

// ---- 1. collector -----------------------------------------------------------------------------------
// The collector parts, as in ingest-decode.ts:disciplined (different limits: this measures memory, that time).
const tenants = new TenantLimits({
  maxActiveSeries: 1e9,
  activeSeriesTtlMs: 3_600_000,
  samplesPerSecond: 1e12,
  samplesBurst: 1e12,
  series: { maxLabelsPerSeries: 64, maxLabelValueBytes: 4096, maxLabelNameBytes: 1024 },
});
const snappy = new SnappyDecoder();
const reader = new ProtoReader();
const keys = new SeriesKeyBuilder();
const batch = new RefBatch();
const writer = new PayloadWriter();
/** Bus payloads per tick (kept for the processor: not counted in the collector's figure). */
const payloads: Uint8Array[][] = [];
let payloadBytes = 0;
for (let tick = 1; tick <= ds.summary.chunks; tick++) {
  const list: Uint8Array[] = [];
  for (const req of ds.requests) {
    if (req.chunk !== tick) continue;
    const now = Date.now();
    const state = tenants.get(TENANT, now);
    state.registry.beginRequest(now);
    batch.reset();
    decodeRemoteWriteV1(snappy.decode(req.remoteWrite, 64 << 20), {
      reader,
      keys,
      batch,
      registry: state.registry,
      nowMs: now,
      maxSamples: 1e9,
      stats: newDecodeStats(),
    });
    for (const part of writer.encode(batch, state.registry)) {
      list.push(part.payload);
      payloadBytes += part.payload.byteLength;
    }
  }
  payloads.push(list);
}
await measure('collector: series registry', payloadBytes);

// ---- 2. processor's series table ------------------------------------------------------------------------
const table = new SeriesTable();
keep.push(tenants, payloads, table);
const tenantSid = table.internString(TENANT);
const rb = new RecordBatch();
for (const list of payloads) for (const p of list) decodeRecord(p, tenantSid, table, rb, Date.now());
await measure('processor: series table (refs, label objects)');

// ---- 3. detectors -------------------------------------------------------------------------------------
const engine = new DetectorEngine(DetectorSettings.defaults(), { transition() {} }, { derived: true });
keep.push(engine);
for (const list of payloads) {
  for (const p of list) {
    decodeRecord(p, tenantSid, table, rb, Date.now());
    engine.observeRecord(TENANT, rb, table);
    engine.takeDerived();
  }
}
await measure(`detectors + derived (${engine.seriesCount} series analysed)`);
// The state file (format 2) as the processor writes it: in slices, with the event loop free in between.
const w = new StateWriter();
let longestSliceMs = 0;
let stateMs = 0;
let snapshotBytes = 0;
let t = performance.now();
for (const _ of engine.encodeState(w)) {
  const now = performance.now();
  longestSliceMs = Math.max(longestSliceMs, now - t);
  stateMs += now - t;
  snapshotBytes += w.take().length;
  t = performance.now();
}
stateMs += performance.now() - t;
snapshotBytes += w.take().length;
// Version 1 (JSON), for comparison.
const jsonStarted = performance.now();
const jsonBytes = JSON.stringify(engine.snapshot()).length;
const jsonTookMs = performance.now() - jsonStarted;

// ---- 4. storage -------------------------------------------------------------------------------------
if (!args['no-storage']) {
  const storage = new MemoryStorage();
  keep.push(storage);
  for (const list of payloads) {
    for (const p of list) {
      decodeRecord(p, tenantSid, table, rb, Date.now());
      const n = rb.seriesCount;
      const labels: LabelSet[] = [];
      for (let e = 0; e < n; e++) labels.push(table.labels[rb.refs[e]!]!);
      const b: SeriesBatch = {
        series: labels,
        offsets: rb.starts.subarray(0, n + 1),
        timestamps: rb.timestamps.subarray(0, rb.sampleCount),
        values: rb.values.subarray(0, rb.sampleCount),
        sampleCount: rb.sampleCount,
      };
      storage.appender.append(TENANT, b);
    }
  }
  await measure(`storage: head in memory (${ticks} samples per series; storage engineer's share)`);
}

process.stdout.write('\n| part | bytes per active series | of which typed arrays |\n|---|---:|---:|\n');
for (const [what, bytes, buffers] of rows)
  process.stdout.write(`| ${what} | ${Math.round(bytes)} | ${Math.round(buffers)} |\n`);
process.stdout.write(
  `\ndetector state file (processor/state.bin) for these series: ${(snapshotBytes / 1e6).toFixed(1)} MB, ${Math.round(snapshotBytes / series)} bytes per series, encoded in ${stateMs.toFixed(0)} ms (longest slice ${longestSliceMs.toFixed(1)} ms); the version-1 JSON: ${(jsonBytes / 1e6).toFixed(1)} MB in ${jsonTookMs.toFixed(0)} ms, in one piece\n`,
);
process.stdout.write(`(${keep.length} parts measured)\n`);
