/**
 * Bytes per sample of trainwatch's raw blocks on fleet-simulator data, and where they go: chunk bytes by
 * metric and by codec, the index, and the rollup tiers beside them. The data is what the bench harness sends
 * (`bench/harness/dataset.ts`: per-GPU, per-rank and per-host series, full-precision noisy readings), appended
 * through `Tsdb` and cut into blocks as `trainwatch start` does.
 *
 *   npx tsx bench/storage-bytes.ts                        # 10 jobs × 8 nodes × 8 GPUs, one hour at 1 s
 *   npx tsx bench/storage-bytes.ts --jobs 50 --ticks 30   # the harness's quick data set (30 samples/series)
 *   npx tsx bench/storage-bytes.ts --json out.json        # also write the figures as JSON
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { defaultFleetOptions, FleetSimulator } from '../src/simulator/fleet.js';
import { BlockReader } from '../src/storage/block.js';
import { TsCodec, ValueCodec } from '../src/storage/codec/chunk.js';
import { defaultTsdbOptions, Tsdb } from '../src/storage/tsdb.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '8' },
    gpus: { type: 'string', default: '8' },
    ticks: { type: 'string', default: '3600' },
    interval: { type: 'string', default: '1000' },
    block: { type: 'string', default: String(defaultTsdbOptions.blockDurationMs) },
    json: { type: 'string' },
  },
});
const JOBS = Number(args.jobs);
const TICKS = Number(args.ticks);
const INTERVAL = Number(args.interval);

const sim = new FleetSimulator({
  ...defaultFleetOptions,
  seed: 1,
  jobs: JOBS,
  nodesPerJob: Number(args.nodes),
  gpusPerNode: Number(args.gpus),
  intervalMs: INTERVAL,
  incidents: false,
  startMs: Date.UTC(2026, 0, 1),
  cluster: 'bench',
  minSteps: 1_000_000,
  maxSteps: 2_000_000,
});
for (let i = 0; i < 40; i++) sim.tick();

const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-bench-bytes-'));
const db = await Tsdb.open({
  dir,
  blockDurationMs: Number(args.block),
  outOfOrderWindowMs: 3_600_000,
  retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
  fsync: false,
  blockCacheBytes: 256 << 20,
  logger: pino({ level: 'warn' }),
});
let samples = 0;
let positions = 0;
for (let k = 0; k < TICKS; k++) {
  sim.tick();
  for (const node of sim.activeNodes()) {
    const b = new SeriesBatchBuilder(node.series.length);
    for (let s = 0; s < node.series.length; s++) {
      if (node.present[s] === 0) continue;
      b.addSeries(node.series[s]!).add(sim.nowMs, node.values[s]!);
      samples++;
    }
    db.appender.append('bench', b.build());
  }
  if (k % 60 === 59) await db.checkpoint(new Map([[0, ++positions]]));
}
// Cut everything: a sample far ahead moves the head past every block boundary.
const marker = new SeriesBatchBuilder();
marker.addSeries({ __name__: 'bench_cut_marker' }).add(sim.nowMs + 10 * 3_600_000, 0);
db.appender.append('bench', marker.build());
await db.checkpoint(new Map([[0, ++positions]]));
while (await db.compactOnce());
const blocksDir = path.join(dir, 'blocks');
const files = readdirSync(blocksDir).filter((f) => f.endsWith('.twb'));
const fileBytes = (prefix: string) =>
  files.filter((f) => f.startsWith(prefix)).reduce((n, f) => n + statSync(path.join(blocksDir, f)).size, 0);

// Break the raw blocks down: chunk bytes per metric and per codec, index, the rest (header, meta, footer).
const byMetric = new Map<string, { bytes: number; samples: number; codecs: Map<string, number> }>();
const byCodec = new Map<string, { bytes: number; samples: number }>();
let chunkBytes = 0;
let storedChunkBytes = 0;
let indexBytes = 0;
let rawSamples = 0;
let chunks = 0;
const tsNames = Object.fromEntries(Object.entries(TsCodec).map(([k, v]) => [v, k]));
const vNames = Object.fromEntries(Object.entries(ValueCodec).map(([k, v]) => [v, k]));
for (const f of files.filter((x) => x.startsWith('raw-'))) {
  const r = new BlockReader(path.join(blocksDir, f));
  const idx = r.index();
  rawSamples += r.meta.samples;
  let blockChunkBytes = 0;
  for (let s = 0; s < idx.seriesCount; s++) {
    const metric = idx.labelSet(s).__name__ ?? '';
    let m = byMetric.get(metric);
    if (!m) {
      m = { bytes: 0, samples: 0, codecs: new Map() };
      byMetric.set(metric, m);
    }
    const from = idx.chunkStart[s]!;
    const to = from + idx.chunkCount[s]!;
    for (let c = from; c < to; c++) {
      const bytes = r.read(idx.chunkOffset[c]!, idx.chunkLength[c]!);
      const n = chunkSamples(bytes);
      const codec = `${tsNames[bytes[0]! >>> 4]}/${vNames[bytes[0]! & 15]}`;
      m.bytes += bytes.length;
      m.samples += n;
      m.codecs.set(codec, (m.codecs.get(codec) ?? 0) + n);
      const cc = byCodec.get(codec) ?? { bytes: 0, samples: 0 };
      cc.bytes += bytes.length;
      cc.samples += n;
      byCodec.set(codec, cc);
      blockChunkBytes += bytes.length;
      chunks++;
    }
  }
  chunkBytes += blockChunkBytes;
  // Version 3 stores the chunks in deflated pages: what they take in the file.
  let storedChunks = blockChunkBytes;
  if (r.version >= 3) {
    storedChunks = 0;
    for (const n of idx.pageStored) storedChunks += n;
  }
  storedChunkBytes += storedChunks;
  indexBytes += r.fileBytes - 8 - storedChunks;
  r.close();
}
const rawBytes = fileBytes('raw-');
const rollups = { '10s': fileBytes('10s-'), '1m': fileBytes('1m-'), '1h': fileBytes('1h-') };
const perSample = (b: number) => (b / rawSamples).toFixed(3);
console.log(
  `data: ${JOBS} jobs × ${args.nodes} nodes × ${args.gpus} GPUs, ${TICKS} ticks at ${INTERVAL} ms: ${samples} samples appended, ${rawSamples} in raw blocks (${chunks} chunks)`,
);
console.log(`raw blocks:  ${rawBytes} bytes → ${perSample(rawBytes)} bytes/sample (index included)`);
console.log(
  `  chunks:    ${storedChunkBytes} → ${perSample(storedChunkBytes)} (before the pages' deflate: ${chunkBytes} → ${perSample(chunkBytes)}; by metric and codec below)`,
);
console.log(`  index etc: ${indexBytes} → ${perSample(indexBytes)}`);
for (const [tier, b] of Object.entries(rollups))
  console.log(`rollup ${tier}:  ${b} bytes → ${perSample(b)} per raw sample`);
console.log(
  `raw + rollups: ${perSample(rawBytes + rollups['10s'] + rollups['1m'] + rollups['1h'])} bytes/sample`,
);
console.log('\nby metric (chunk bytes / samples):');
const metrics = [...byMetric].sort((a, b) => b[1].bytes - a[1].bytes);
for (const [name, m] of metrics) {
  const codecs = [...m.codecs]
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${c} ${((100 * n) / m.samples).toFixed(0)}%`)
    .join(', ');
  console.log(`  ${name.padEnd(34)} ${(m.bytes / m.samples).toFixed(3).padStart(7)}  ${codecs}`);
}
console.log('\nby codec:');
for (const [c, x] of [...byCodec].sort((a, b) => b[1].bytes - a[1].bytes))
  console.log(
    `  ${c.padEnd(24)} ${(x.bytes / x.samples).toFixed(3).padStart(7)} bytes/sample over ${x.samples}`,
  );
if (args.json)
  writeFileSync(
    args.json,
    JSON.stringify(
      {
        jobs: JOBS,
        ticks: TICKS,
        samples: rawSamples,
        rawBytes,
        chunkBytes,
        indexBytes,
        rollups,
        byMetric: Object.fromEntries(metrics.map(([n, m]) => [n, { bytes: m.bytes, samples: m.samples }])),
        byCodec: Object.fromEntries(byCodec),
      },
      null,
      2,
    ),
  );
await db.close();
rmSync(dir, { recursive: true, force: true });

function chunkSamples(bytes: Uint8Array): number {
  // Sample count: the uvarint after the codecs byte.
  let n = 0;
  let mul = 1;
  for (let i = 1; i < bytes.length; i++) {
    n += (bytes[i]! & 0x7f) * mul;
    if (bytes[i]! < 0x80) break;
    mul *= 128;
  }
  return n;
}
