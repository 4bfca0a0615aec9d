/**
 * Remote-write decode + append throughput of the collector's hot path, in samples per CPU-second, next to
 * the same work done "the usual way" (DESIGN.md, performance contract: ~1.6 M/CPU-s disciplined vs ~0.25 M).
 *
 * - trainwatch: `SnappyDecoder` into a reused buffer → `decodeRemoteWriteV1` (protobuf walk, series looked up
 *   by raw label bytes in the tenant's `SeriesRegistry`, samples into a reused `RefBatch`) → rate limit →
 *   `PayloadWriter` (one native payload per partition key) → bus record envelope. Everything the collector
 *   does for a request except HTTP and the bus's disk write.
 * - usual way: snappyjs into a fresh buffer → an object per series, label and sample → a string key per
 *   series (`labelsKey`) in a Map → `SeriesBatchBuilder` → `NativeEncoder.encodePayload` → envelope.
 *
 * The data: a fleet of 8-node × 8-GPU jobs, 7 GPU metrics with 9 labels each (as the simulator labels
 * them), one sample per series per request as Prometheus sends, in requests of `--per-request` series.
 * The first tick creates the series and is not measured; CPU time is process.cpuUsage (user + system).
 *
 *   npx tsx bench/ingest-decode.ts                       # 50,000 series, 2,000 per request, 10 ticks
 *   npx tsx bench/ingest-decode.ts --series 176000 --ticks 5
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeBusRecord, newRecordWriter, seriesPartitionKey } from '../src/bus/index.js';
import { NativeRefDecoder } from '../src/collector/native-decode.js';
import { PayloadWriter, RefBatch } from '../src/collector/ref-batch.js';
import { decodeRemoteWriteV1, newDecodeStats } from '../src/collector/remote-write-decode.js';
import { SeriesKeyBuilder } from '../src/collector/series-key.js';
import { SnappyDecoder } from '../src/collector/snappy.js';
import { TenantLimits } from '../src/collector/tenant-limits.js';
import { validateBatch } from '../src/collector/validate.js';
import { type SeriesBatch, SeriesBatchBuilder } from '../src/model/batch.js';
import { labelsKey } from '../src/model/labels.js';
import { decodePayload, NativeEncoder } from '../src/protocol/native.js';
import { ProtoReader } from '../src/protocol/protobuf.js';
import { type RwSeries, snappyCompress, snappyUncompress, writeRequestV1 } from '../test/support/wire.js';
import { GPU_METRICS } from './harness/in-process.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '50000' },
    'per-request': { type: 'string', default: '2000' },
    ticks: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    /** `trainwatch` measures only the hot path (for profiling with --cpu-prof). */
    only: { type: 'string' },
    /**
     * Also the native protocol's collector work on the same series (one payload per request, as the agent sends):
     * its hot path (native-decode.ts) and its general path (objects per series, as before the hot path).
     */
    native: { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
  },
});
const SERIES = Number(args.series);
const PER_REQUEST = Number(args['per-request']);
const TICKS = Number(args.ticks);
const RUNS = Number(args.runs);

function fleetLabels(n: number): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (let job = 0; out.length < n; job++) {
    for (let node = 0; node < 8 && out.length < n; node++) {
      for (let gpu = 0; gpu < 8 && out.length < n; gpu++) {
        for (const metric of GPU_METRICS) {
          if (out.length >= n) break;
          out.push({
            __name__: metric,
            cluster: 'cluster-a',
            gpu: String(gpu),
            gpu_uuid: `GPU-${job.toString(16).padStart(6, '0')}-${node}-${gpu}-4f2a-9c1e-77d0b3a5e6f1`,
            job_id: `llama-7b-${String(job).padStart(5, '0')}`,
            local_rank: String(gpu),
            node_id: `node-${String(job * 8 + node).padStart(5, '0')}`,
            rank: String(node * 8 + gpu),
          });
        }
      }
    }
  }
  return out;
}

function buildRequests(labels: Record<string, string>[]): Uint8Array[][] {
  const t0 = Date.now() - TICKS * 15_000;
  const ticks: Uint8Array[][] = [];
  for (let tick = 0; tick < TICKS; tick++) {
    const reqs: Uint8Array[] = [];
    for (let i = 0; i < labels.length; i += PER_REQUEST) {
      const series: RwSeries[] = labels
        .slice(i, i + PER_REQUEST)
        .map((l, k) => ({ labels: l, samples: [[t0 + tick * 15_000, Math.sin(i + k + tick) * 100]] }));
      reqs.push(snappyCompress(writeRequestV1(series)));
    }
    ticks.push(reqs);
  }
  return ticks;
}

// ----------------------------------------------------------------------------------------------------------
// trainwatch's hot path

// The collector parts, as in ingest-memory.ts (its section 1): this measures decode time, that one memory,
// each with its own limits, so each builds its own.
function disciplined(): (body: Uint8Array) => number {
  const tenants = new TenantLimits({
    maxActiveSeries: 10_000_000,
    activeSeriesTtlMs: 3_600_000,
    samplesPerSecond: 1e12,
    samplesBurst: 1e12,
    series: { maxLabelsPerSeries: 40, maxLabelValueBytes: 2048, maxLabelNameBytes: 1024 },
  });
  const snappy = new SnappyDecoder();
  const reader = new ProtoReader();
  const keys = new SeriesKeyBuilder();
  const batch = new RefBatch();
  const writer = new PayloadWriter();
  const records = newRecordWriter();
  return (body) => {
    const now = Date.now();
    const state = tenants.get('bench', now);
    state.registry.beginRequest(now);
    batch.reset();
    const raw = snappy.decode(body, 64 << 20);
    decodeRemoteWriteV1(raw, {
      reader,
      keys,
      batch,
      registry: state.registry,
      nowMs: now,
      maxSamples: 1e9,
      stats: newDecodeStats(),
    });
    tenants.chargeSamples(state, 'bench', batch.sampleCount, '', now);
    let bytes = 0;
    for (const part of writer.encode(batch, state.registry))
      bytes += encodeBusRecord(records, 'bench', '', 0, now, part.payload).length;
    return bytes > 0 ? batch.sampleCount : 0;
  };
}

// ----------------------------------------------------------------------------------------------------------
// The native protocol: the same series as native payloads (docs/protocol.md), as the route handles them.

function buildNativeRequests(labels: Record<string, string>[]): Uint8Array[][] {
  const t0 = Date.now() - TICKS * 15_000;
  const encoder = new NativeEncoder();
  const ticks: Uint8Array[][] = [];
  for (let tick = 0; tick < TICKS; tick++) {
    const reqs: Uint8Array[] = [];
    for (let i = 0; i < labels.length; i += PER_REQUEST) {
      const b = new SeriesBatchBuilder();
      const slice = labels.slice(i, i + PER_REQUEST);
      for (let k = 0; k < slice.length; k++)
        b.addSample(slice[k]!, t0 + tick * 15_000, Math.sin(i + k + tick) * 100);
      reqs.push(encoder.encodePayload(b.build()).slice());
    }
    ticks.push(reqs);
  }
  return ticks;
}

const BENCH_LIMITS = { maxLabelsPerSeries: 40, maxLabelValueBytes: 2048, maxLabelNameBytes: 1024 };

function benchTenants(): TenantLimits {
  return new TenantLimits({
    maxActiveSeries: 10_000_000,
    activeSeriesTtlMs: 3_600_000,
    samplesPerSecond: 1e12,
    samplesBurst: 1e12,
    series: BENCH_LIMITS,
  });
}

/** The route's hot path: walk into refs, then forward (one partition key) or split as remote-write does. */
function nativeFast(): (payload: Uint8Array) => number {
  const tenants = benchTenants();
  const decoder = new NativeRefDecoder();
  const keys = new SeriesKeyBuilder();
  const batch = new RefBatch();
  const writer = new PayloadWriter();
  const records = newRecordWriter();
  const limits = { ...BENCH_LIMITS, maxPayloadBytes: 64 << 20 };
  return (payload) => {
    const now = Date.now();
    const state = tenants.get('bench', now);
    const registry = state.registry;
    registry.beginRequest(now);
    decoder.decode(payload, keys, batch, registry, limits, now);
    tenants.chargeSamples(state, 'bench', batch.sampleCount, '', now);
    let single = registry.partitionIndexOf(batch.refs[0]!);
    for (let i = 1; i < batch.seriesCount; i++)
      if (registry.partitionIndexOf(batch.refs[i]!) !== single) single = -1;
    let bytes = 0;
    if (single >= 0) bytes += encodeBusRecord(records, 'bench', '', 0, now, payload).length;
    else
      for (const part of writer.encode(batch, registry))
        bytes += encodeBusRecord(records, 'bench', '', 0, now, part.payload).length;
    return bytes > 0 ? batch.sampleCount : 0;
  };
}

/** The route's general path: decodePayload, validateBatch, the registry by strings, split by key. */
function nativeGeneral(): (payload: Uint8Array) => number {
  const tenants = benchTenants();
  const keys = new SeriesKeyBuilder();
  const encoder = new NativeEncoder();
  const records = newRecordWriter();
  const limits = { ...BENCH_LIMITS, maxPayloadBytes: 64 << 20 };
  return (payload) => {
    const now = Date.now();
    const { batch, events } = decodePayload(payload, limits);
    validateBatch(batch, events, limits, now);
    const state = tenants.get('bench', now);
    state.registry.beginRequest(now);
    for (const l of batch.series) {
      keys.beginStrings();
      for (const name in l) keys.addStrings(name, l[name]!);
      keys.finish();
      state.registry.resolve(keys, now);
    }
    tenants.chargeSamples(state, 'bench', batch.sampleCount, '', now);
    const groups = new Map<string, number[]>();
    for (let i = 0; i < batch.series.length; i++) {
      const key = seriesPartitionKey('bench', batch.series[i]!, '')!;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    }
    let bytes = 0;
    for (const [, g] of groups) {
      const part = groups.size === 1 ? payload : encoder.encodePayload(subBatch(batch, g));
      bytes += encodeBusRecord(records, 'bench', '', 0, now, part).length;
    }
    return bytes > 0 ? batch.sampleCount : 0;
  };
}

function subBatch(batch: SeriesBatch, indexes: readonly number[]): SeriesBatch {
  const b = new SeriesBatchBuilder();
  for (const i of indexes) {
    b.addSeries(batch.series[i]!);
    for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
      b.add(batch.timestamps[j]!, batch.values[j]!);
  }
  return b.build();
}

// ----------------------------------------------------------------------------------------------------------
// The usual way

const textDecoder = new TextDecoder();

function naive(): (body: Uint8Array) => number {
  const known = new Map<string, number>();
  const encoder = new NativeEncoder();
  const records = newRecordWriter();
  return (body) => {
    const raw = snappyUncompress(body);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    let p = 0;
    const varint = () => {
      let v = 0;
      let mul = 1;
      for (;;) {
        const b = raw[p++]!;
        v += (b & 0x7f) * mul;
        if (b < 0x80) return v;
        mul *= 128;
      }
    };
    const series: { labels: Record<string, string>; samples: { t: number; v: number }[] }[] = [];
    while (p < raw.length) {
      varint(); // timeseries tag
      const end = varint() + p;
      const ts = { labels: {} as Record<string, string>, samples: [] as { t: number; v: number }[] };
      while (p < end) {
        const tag = varint();
        const len = varint();
        const stop = p + len;
        if (tag >>> 3 === 1) {
          let name = '';
          let value = '';
          while (p < stop) {
            const t = varint();
            const l = varint();
            const s = textDecoder.decode(raw.subarray(p, p + l));
            p += l;
            if (t >>> 3 === 1) name = s;
            else value = s;
          }
          ts.labels[name] = value;
        } else {
          const sample = { t: 0, v: 0 };
          while (p < stop) {
            const t = varint();
            if (t >>> 3 === 1) {
              sample.v = view.getFloat64(p, true);
              p += 8;
            } else sample.t = varint();
          }
          ts.samples.push(sample);
        }
        p = stop;
      }
      series.push(ts);
    }
    const builder = new SeriesBatchBuilder();
    let samples = 0;
    for (const s of series) {
      const key = labelsKey(s.labels);
      if (!known.has(key)) known.set(key, known.size);
      builder.addSeries({ ...s.labels, tenant: 'bench' });
      for (const smp of s.samples) builder.add(smp.t, smp.v);
      samples += s.samples.length;
    }
    const payload = encoder.encodePayload(builder.build());
    encodeBusRecord(records, 'bench', '', 0, Date.now(), payload);
    return samples;
  };
}

function measure(name: string, make: () => (body: Uint8Array) => number, ticks: Uint8Array[][]) {
  let best = 0;
  for (let run = 0; run < RUNS; run++) {
    const handle = make();
    const creating = process.cpuUsage();
    let created = 0;
    for (const body of ticks[0]!) created += handle(body); // creates the series
    const creatingUsed = process.cpuUsage(creating);
    const cpu = process.cpuUsage();
    const wall = performance.now();
    let samples = 0;
    for (let t = 1; t < ticks.length; t++) for (const body of ticks[t]!) samples += handle(body);
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const perCpuSecond = samples / cpuSeconds;
    best = Math.max(best, perCpuSecond);
    console.log(
      `${name.padEnd(10)} run ${run + 1}: ${samples} samples in ${cpuSeconds.toFixed(3)} CPU-s ` +
        `(${((performance.now() - wall) / 1000).toFixed(3)} s wall): ${(perCpuSecond / 1e6).toFixed(3)} M samples/CPU-s; ` +
        `first tick (new series): ${((creatingUsed.user + creatingUsed.system) / created).toFixed(2)} µs/sample`,
    );
  }
  return best;
}

const labels = fleetLabels(SERIES);
console.log(
  `building ${TICKS} ticks × ${Math.ceil(SERIES / PER_REQUEST)} requests of ${PER_REQUEST} series …`,
);
const ticks = buildRequests(labels);
const fast = measure('trainwatch', disciplined, ticks);
if (args.native) {
  const nativeTicks = buildNativeRequests(labels);
  const nf = measure('native', nativeFast, nativeTicks);
  const ng = measure('native-gen', nativeGeneral, nativeTicks);
  console.log(
    `\nper CPU-second: remote-write ${(fast / 1e6).toFixed(2)} M, native hot path ${(nf / 1e6).toFixed(2)} M, ` +
      `native general path ${(ng / 1e6).toFixed(2)} M`,
  );
}
if (args.only === 'trainwatch') process.exit(0);
const slow = measure('usual way', naive, ticks);
const result = {
  benchmark: 'ingest-decode',
  command: `npx tsx bench/ingest-decode.ts --series ${SERIES} --per-request ${PER_REQUEST} --ticks ${TICKS} --runs ${RUNS}`,
  date: new Date().toISOString(),
  node: process.version,
  cores: os.cpus().length,
  loadAverageAtEnd: Number(os.loadavg()[0]!.toFixed(2)),
  series: SERIES,
  seriesPerRequest: PER_REQUEST,
  measuredSamples: SERIES * (TICKS - 1),
  samplesPerCpuSecond: { trainwatch: Math.round(fast), usualWay: Math.round(slow) },
  ratio: Number((fast / slow).toFixed(2)),
  note: 'best of the runs; decode + series lookup + payload encoding, without HTTP and the bus disk write',
};
console.log(
  `\ntrainwatch ${(fast / 1e6).toFixed(2)} M samples/CPU-s, usual way ${(slow / 1e6).toFixed(2)} M: ×${result.ratio}`,
);
mkdirSync(args.out!, { recursive: true });
const file = path.join(args.out!, `ingest-decode-${result.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`written to ${path.relative(process.cwd(), file)}`);
