/**
 * Bytes per sample of trainwatch's whole data directory once a checkpoint has covered the bus, per
 * subfolder (bus, head log, spill files, blocks, processor state, metadata), next to VictoriaMetrics's on the
 * same data set in the same run.
 *
 * Builds the bench data set (bench/harness/dataset.ts: the simulator's fleet, remote-write 1.0, one tick per
 * request), starts the built server as `npm run bench` does (`bin/trainwatch.js start`, the bench config),
 * replays the data set — by default at one tick per second, as scrapes arrive, so that every checkpoint sees
 * only a few new samples per series — waits until it is queryable and until every partition's committed
 * offset has reached the bus's end (a checkpoint covered everything), waits one more checkpoint interval, and
 * measures the data directory with the server running. Then the same for VictoriaMetrics (force flush and
 * merge, as the bench's storage scenario does).
 *
 *   npm run build:server && npx tsx bench/data-dir-bytes.ts                  # 40K series × 120 ticks, real time
 *   npx tsx bench/data-dir-bytes.ts --series 20000 --ticks 60 --rate 0       # as fast as accepted
 *   npx tsx bench/data-dir-bytes.ts --no-vm --json out.json
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fleetForSeries } from './harness/dataset.js';
import { GeneratorProcess } from './harness/generator.js';
import { dirBreakdown, dirBytes, waitFor } from './harness/proc.js';
import { type System, startTrainwatch, startVictoriaMetrics } from './harness/systems.js';
import { waitDrained } from './scenarios/ingest.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '40000' },
    ticks: { type: 'string', default: '120' },
    /** Samples per second to replay at; default one tick per second; 0: as fast as accepted. */
    rate: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    /** Extra trainwatch configuration as JSON (e.g. '{"bus":{"segment_bytes":"64MiB"}}'). */
    config: { type: 'string', default: '{}' },
    'no-vm': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});

const log = (m: string) => process.stdout.write(`${m}\n`);

/** End offset (base + records) of each partition of the embedded bus, read from its segment files. */
function busEndOffsets(busDir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of readdirSync(busDir).filter((d) => /^p-\d+$/.test(d))) {
    const segs = readdirSync(path.join(busDir, p))
      .filter((f) => /^\d{20}\.seg$/.test(f))
      .sort();
    const last = segs[segs.length - 1];
    if (!last) continue;
    const data = readFileSync(path.join(busDir, p, last));
    let pos = 8;
    let n = 0;
    while (pos + 8 <= data.length) {
      const len = data.readUInt32LE(pos);
      if (pos + 8 + len > data.length) break;
      pos += 8 + len;
      n++;
    }
    out.set(p, Number(last.slice(0, 20)) + n);
  }
  return out;
}

function committedOffsets(busDir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of readdirSync(busDir).filter((d) => /^p-\d+$/.test(d))) {
    let low = Number.POSITIVE_INFINITY;
    for (const f of readdirSync(path.join(busDir, p)).filter((x) => /^committed-[a-z0-9_-]+$/.test(x)))
      low = Math.min(low, Number(readFileSync(path.join(busDir, p, f), 'utf8').trim()));
    out.set(p, Number.isFinite(low) ? low : 0);
  }
  return out;
}

/** Bytes of files under `dir` whose name matches `re`. */
function filesBytes(dir: string, re: RegExp): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const f of readdirSync(dir)) if (re.test(f)) total += statSync(path.join(dir, f)).size;
  return total;
}

function trainwatchBreakdown(dataDir: string): Record<string, number> {
  const top = dirBreakdown(dataDir);
  const headDir = path.join(dataDir, 'tsdb', 'head');
  const blocksDir = path.join(dataDir, 'tsdb', 'blocks');
  let meta = 0;
  let other = 0;
  for (const [name, bytes] of Object.entries(top)) {
    if (name === 'bus' || name === 'tsdb' || name === 'processor') continue;
    if (name.startsWith('meta.db')) meta += bytes;
    else other += bytes;
  }
  const head = dirBytes(path.join(dataDir, 'tsdb'));
  const headLog = filesBytes(headDir, /\.log$/);
  const spill = filesBytes(headDir, /^spill-\d+\.bin$/);
  const rawBlocks = filesBytes(blocksDir, /^raw-\d+\.twb$/);
  const allBlocks = filesBytes(blocksDir, /\.twb$/);
  return {
    bus: top.bus ?? 0,
    'tsdb/head log': headLog,
    'tsdb/head spill': spill,
    'tsdb/blocks raw': rawBlocks,
    'tsdb/blocks rollups': allBlocks - rawBlocks,
    'tsdb other': head - headLog - spill - allBlocks,
    processor: top.processor ?? 0,
    'meta.db': meta,
    other,
  };
}

async function main(): Promise<void> {
  const series = Number(args.series);
  const ticks = Number(args.ticks);
  const work = mkdtempSync(path.join(os.tmpdir(), 'trainwatch-data-dir-bytes-'));
  const generator = new GeneratorProcess();
  const systems: System[] = [];
  const results: Record<string, unknown> = {};
  try {
    // The main data set as run.ts builds it, one option per line (twin: ingest-profile.ts:main): each tool stands alone.
    const fleet = fleetForSeries(series);
    const ds = await generator.build('main', {
      seed: 42,
      ...fleet,
      ticks,
      ticksPerRequest: 1,
      intervalMs: 1000,
      endMs: Date.now(),
      tenant: 'bench',
    });
    const rate = args.rate !== undefined ? Number(args.rate) : Math.ceil(ds.samples / ticks);
    log(
      `data set: ${ds.activeSeries} active series, ${ds.samples} samples, ${ds.requests} requests; replay at ${rate || 'full'} samples/s`,
    );
    results.dataset = { series: ds.activeSeries, samples: ds.samples, ticks, rate };

    const run = async (sys: System) => {
      const replay = await generator.replay('main', {
        baseUrl: sys.baseUrl,
        format: 'remote-write',
        concurrency: Number(args.concurrency),
        targetSamplesPerSec: rate,
        maxSeconds: 1200,
      });
      if (replay.samplesRefused > 0) throw new Error(`${sys.name} refused ${replay.samplesRefused} samples`);
      await waitDrained(sys, ds, 300_000);
      return replay;
    };

    // trainwatch
    const tw = await startTrainwatch({
      workDir: work,
      extraConfig: JSON.parse(args.config) as Record<string, unknown>,
    });
    systems.push(tw);
    const replay = await run(tw);
    const started = Date.now();
    const busDir = path.join(tw.dataDir, 'bus');
    const covered = await waitFor(
      'a checkpoint to cover the whole bus',
      () => {
        const ends = busEndOffsets(busDir);
        const committed = committedOffsets(busDir);
        for (const [p, end] of ends) if ((committed.get(p) ?? 0) < end) return false;
        return Date.now();
      },
      180_000,
      500,
    );
    // One more checkpoint interval: the commit's segment deletions and the head log settle.
    await new Promise((r) => setTimeout(r, 3000));
    const breakdown = trainwatchBreakdown(tw.dataDir);
    const total = dirBytes(tw.dataDir);
    log(
      `\ntrainwatch: replay ${(replay.elapsedMs / 1000).toFixed(1)} s, covered at +${((covered - started) / 1000).toFixed(1)} s after the drain; ` +
        `data dir ${(total / 2 ** 20).toFixed(1)} MiB = ${(total / ds.samples).toFixed(2)} B/sample`,
    );
    log('| part | bytes | B/sample |');
    log('|---|---:|---:|');
    for (const [k, v] of Object.entries(breakdown))
      log(`| ${k} | ${v.toLocaleString('en-US')} | ${(v / ds.samples).toFixed(3)} |`);
    log(`| **whole data dir** | ${total.toLocaleString('en-US')} | **${(total / ds.samples).toFixed(3)}** |`);
    results.trainwatch = { totalBytes: total, bytesPerSample: total / ds.samples, breakdown };
    // As the bench's storage scenario measures it: a graceful stop, a restart that cuts the head into blocks.
    const persisted = await tw.persistAndMeasureDisk('remote-write');
    log(
      `as \`npm run bench\` measures it (${persisted.how}): whole data dir ${(persisted.totalBytes / ds.samples).toFixed(3)} B/sample, ` +
        `storage ${(persisted.storageBytes / ds.samples).toFixed(3)} B/sample`,
    );
    for (const [k, v] of Object.entries(persisted.breakdown))
      log(`  ${k}: ${(v / ds.samples).toFixed(3)} B/sample`);
    Object.assign(results.trainwatch as Record<string, unknown>, {
      persistedTotalBytes: persisted.totalBytes,
      persistedStorageBytes: persisted.storageBytes,
      persistedBreakdown: persisted.breakdown,
    });

    if (!args['no-vm']) {
      const vm = await startVictoriaMetrics({ workDir: work });
      systems.push(vm);
      await run(vm);
      const disk = await vm.persistAndMeasureDisk('remote-write');
      log(
        `\nVictoriaMetrics: storage (data + indexdb) ${(disk.storageBytes / ds.samples).toFixed(3)} B/sample, ` +
          `whole data dir ${(disk.totalBytes / ds.samples).toFixed(3)} B/sample (${disk.how})`,
      );
      log(
        `ratio, trainwatch whole data dir / VictoriaMetrics storage: ${(total / disk.storageBytes).toFixed(2)}×; ` +
          `/ VictoriaMetrics whole data dir: ${(total / disk.totalBytes).toFixed(2)}×`,
      );
      log(
        `as the bench measures: whole data dir ${(persisted.totalBytes / disk.totalBytes).toFixed(2)}× VictoriaMetrics's, ` +
          `storage ${(persisted.storageBytes / disk.storageBytes).toFixed(2)}×`,
      );
      results.victoriametrics = {
        storageBytes: disk.storageBytes,
        totalBytes: disk.totalBytes,
        storageBytesPerSample: disk.storageBytes / ds.samples,
        breakdown: disk.breakdown,
      };
    }
    if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2));
  } finally {
    for (const s of systems) await s.stop().catch(() => undefined);
    await generator.stop();
    if (args.keep) log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
