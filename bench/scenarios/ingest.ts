/**
 * Ingest: replays a pre-encoded data set against one system as fast as it accepts it (or at the target
 * rate), then waits until everything is queryable. Figures: accepted samples/s, samples per CPU-second of the
 * server process, the lag from the last acknowledgement to all data being queryable, the CPU of server and
 * generator, and the server's resident memory per active series afterwards.
 */
import type { BenchContext } from '../harness/context.js';
import { type DatasetSummary, DRAIN_MARKER } from '../harness/dataset.js';
import { CpuMeter, procSample, waitFor } from '../harness/proc.js';
import type { PayloadFormat, ReplayResult } from '../harness/replay.js';
import type { Better } from '../harness/results.js';
import type { System } from '../harness/systems.js';

export interface IngestOutcome {
  readonly replay: ReplayResult;
  readonly serverCpuSeconds: number;
  readonly generatorCpuSeconds: number;
  readonly wallSeconds: number;
  /** From the last acknowledgement to every job's last drain marker being queryable; undefined: unknown. */
  readonly drainLagMs: number | undefined;
  readonly drainNote: string | undefined;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
  /** Resident memory just before the replay started. */
  readonly rssBeforeBytes: number;
}

/** Polls until every job's request of chunk `chunk` (default: the last) is queryable. */
export async function waitDrained(
  sys: System,
  ds: DatasetSummary,
  timeoutMs: number,
  chunk = ds.chunks,
): Promise<void> {
  const query = `count(${DRAIN_MARKER} >= ${chunk})`;
  const jobs = ds.jobsPerChunk[chunk - 1] ?? ds.lastChunkJobs;
  await waitFor(
    `${sys.name} to make the samples of chunks 1–${chunk} queryable (${query} = ${jobs})`,
    async () => {
      if (!sys.process.alive()) throw new Error(`${sys.name} exited:\n${sys.process.tail()}`);
      const r = await sys.query.instant(query, ds.lastMs / 1000, 10_000);
      return Number(r[0]?.value?.[1] ?? 0) >= jobs;
    },
    timeoutMs,
    100,
  );
}

export async function runIngest(
  ctx: BenchContext,
  sys: System,
  datasetName: string,
  ds: DatasetSummary,
  format: PayloadFormat,
): Promise<IngestOutcome> {
  const rssBeforeBytes = procSample(sys.process.pid)?.rssBytes ?? 0;
  const meter = new CpuMeter({ server: sys.process.pid, generator: ctx.generator.pid }).start();
  const replay = await ctx.generator.replay(
    datasetName,
    {
      baseUrl: sys.baseUrl,
      format,
      concurrency: ctx.sizes.concurrency,
      targetSamplesPerSec: ctx.sizes.rate,
      maxSeconds: ctx.sizes.replaySeconds,
    },
    (p) =>
      ctx.log(
        `  ${sys.name} ${format}: ${(p.samplesAccepted / 1e6).toFixed(2)} M samples accepted in ${(p.elapsedMs / 1000).toFixed(0)} s (${p.requestsDone}/${p.requestsTotal} requests)`,
      ),
  );
  const ackedAt = performance.now();
  let drainLagMs: number | undefined;
  let drainNote: string | undefined;
  const queryable = await sys.query.available();
  if (queryable !== true) {
    drainNote = `not available (${queryable}): cannot tell when the data became queryable`;
  } else if (replay.samplesAccepted < replay.samplesTotal) {
    drainNote = 'not measured: not every sample was accepted';
  } else {
    try {
      await waitDrained(sys, ds, ctx.sizes.drainSeconds * 1000);
      drainLagMs = performance.now() - ackedAt;
    } catch (err) {
      drainNote = `not measured: ${(err as Error).message}`;
    }
  }
  const usage = meter.stop();
  const mem = procSample(sys.process.pid);
  return {
    replay,
    serverCpuSeconds: usage.cpu.server!.cpuSeconds,
    generatorCpuSeconds: usage.cpu.generator!.cpuSeconds,
    wallSeconds: usage.wallSeconds,
    drainLagMs,
    drainNote,
    rssBytes: mem?.rssBytes ?? 0,
    peakRssBytes: mem?.peakRssBytes ?? 0,
    rssBeforeBytes,
  };
}

export const INGEST_FIGURES = (suffix: string): [string, string, Better][] => [
  [`accepted samples/s${suffix}`, 'samples/s', 'higher'],
  [`samples per server CPU-second${suffix}`, 'samples/CPU-s', 'higher'],
  [`last ack → all queryable${suffix}`, 's', 'lower'],
  [`server CPU during ingest${suffix}`, 'cores', 'info'],
  [`load generator CPU during ingest${suffix}`, 'cores', 'info'],
];

export const MEMORY_FIGURES = (suffix: string): [string, string, Better][] => [
  [`resident memory ÷ active series${suffix}`, 'bytes', 'lower'],
  [`resident memory growth during ingest ÷ active series${suffix}`, 'bytes', 'lower'],
  [`peak resident memory ÷ active series${suffix}`, 'bytes', 'lower'],
];

/** Records an ingest outcome as figures under `scenario`. */
export function recordIngest(
  ctx: BenchContext,
  scenario: string,
  suffix: string,
  sys: System,
  ds: DatasetSummary,
  o: IngestOutcome,
  ceilingSamplesPerSec: number | undefined,
  remark?: string,
): void {
  const r = ctx.results;
  const name = sys.name;
  // The replay's own account (status codes, retries, bytes), for diagnosis.
  const replays = (r.details.replays ?? {}) as Record<string, unknown>;
  replays[`${scenario}${suffix} / ${name}`] = {
    ...o.replay,
    serverCpuSeconds: o.serverCpuSeconds,
    generatorCpuSeconds: o.generatorCpuSeconds,
    wallSeconds: o.wallSeconds,
    rssBeforeBytes: o.rssBeforeBytes,
    rssBytes: o.rssBytes,
    peakRssBytes: o.peakRssBytes,
  };
  r.details.replays = replays;
  const [accepted, perCpu, lag, serverCpu, genCpu] = INGEST_FIGURES(suffix);
  let note: string | undefined;
  if (o.replay.samplesRefused > 0 || o.replay.stoppedByTimeLimit) {
    const parts = [
      `${o.replay.samplesAccepted} of ${o.replay.samplesTotal} samples accepted`,
      o.replay.stoppedByTimeLimit ? `stopped at the time limit of ${ctx.sizes.replaySeconds} s` : '',
      o.replay.firstError,
    ];
    note = parts.filter(Boolean).join('; ');
  } else if (ceilingSamplesPerSec && o.replay.samplesPerSec > 0.7 * ceilingSamplesPerSec) {
    note = `within 30% of the load generator's ceiling (${Math.round(ceilingSamplesPerSec)} samples/s): the generator may be the limit`;
  }
  const notes = [remark, note].filter(Boolean).join('; ') || undefined;
  r.set(scenario, accepted![0], accepted![1], accepted![2], name, o.replay.samplesPerSec, notes);
  r.set(
    scenario,
    perCpu![0],
    perCpu![1],
    perCpu![2],
    name,
    o.serverCpuSeconds > 0 ? o.replay.samplesAccepted / o.serverCpuSeconds : undefined,
  );
  r.set(
    scenario,
    lag![0],
    lag![1],
    lag![2],
    name,
    o.drainLagMs === undefined ? undefined : o.drainLagMs / 1000,
    o.drainNote,
  );
  r.set(scenario, serverCpu![0], serverCpu![1], serverCpu![2], name, o.serverCpuSeconds / o.wallSeconds);
  r.set(scenario, genCpu![0], genCpu![1], genCpu![2], name, o.generatorCpuSeconds / o.wallSeconds);
  const [rss, growth, peak] = MEMORY_FIGURES(suffix);
  const memScenario = scenario.replace('ingest', 'memory');
  r.set(memScenario, rss![0], rss![1], rss![2], name, o.rssBytes / ds.activeSeries);
  r.set(
    memScenario,
    growth![0],
    growth![1],
    growth![2],
    name,
    (o.rssBytes - o.rssBeforeBytes) / ds.activeSeries,
  );
  r.set(memScenario, peak![0], peak![1], peak![2], name, o.peakRssBytes / ds.activeSeries);
}
