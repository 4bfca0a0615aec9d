/**
 * Cores: trainwatch's ingest throughput with 1, 2, 4 … up to as many processor workers as the machine has
 * cores (`processor.workers`), each on a fresh instance with a fresh data directory, replaying the main data
 * set as the ingest scenario does. Figures per worker count: accepted samples/s, samples per server
 * CPU-second, server CPU, and the speed-up over one worker: the scaling curve. VictoriaMetrics's figure of the
 * same run (all cores, it has no such setting) stands beside each, so the ratio column reads as the ingest
 * ratio at that worker count.
 *
 * A build whose configuration has no `processor.workers` gets the key left out (systems.ts
 * fitTrainwatchConfig): it runs once, with the build's own processing, and the table says so.
 */
import { rmSync } from 'node:fs';
import type { BenchContext } from '../harness/context.js';
import type { PayloadFormat } from '../harness/replay.js';
import type { Better, Results } from '../harness/results.js';
import { startTrainwatch, type TrainwatchSystem } from '../harness/systems.js';
import { type IngestOutcome, runIngest } from './ingest.js';

export const CORES_SCENARIO = 'cores (ingest by processor workers)';

/** 1, 2, then powers of two below `cores`, then `cores` itself. */
export function workerCounts(cores: number): number[] {
  const counts = new Set<number>([1, 2]);
  for (let n = 4; n < cores; n *= 2) counts.add(n);
  counts.add(Math.max(1, cores));
  return [...counts].sort((a, b) => a - b);
}

const workersLabel = (n: number) => `${n} processor worker${n === 1 ? '' : 's'}`;

/** The figures for one worker count, in table order. */
export function coresFigures(workers: number): [string, string, Better][] {
  const w = workersLabel(workers);
  return [
    [`accepted samples/s — ${w}`, 'samples/s', 'higher'],
    [`samples per server CPU-second — ${w}`, 'samples/CPU-s', 'higher'],
    [`server CPU — ${w}`, 'cores', 'info'],
    [`speed-up over 1 worker — ${w}`, '×', 'info'],
  ];
}

export interface CoresRun {
  readonly workers: number;
  /** Undefined when not run (see `note`). */
  readonly outcome: IngestOutcome | undefined;
  /** Why the run is missing or what it really measured (e.g. the key was left out). */
  readonly note: string | undefined;
}

/**
 * Records the curve. `reference` is VictoriaMetrics's ingest of the same data set in this run (and why it is
 * missing otherwise).
 */
export function recordCores(
  results: Results,
  runs: readonly CoresRun[],
  reference: { outcome: IngestOutcome; note: string } | { unavailable: string } | undefined,
): void {
  const one = runs.find((r) => r.workers === 1)?.outcome;
  for (const run of runs) {
    const [accepted, perCpu, cpu, speedup] = coresFigures(run.workers);
    const o = run.outcome;
    const set = (f: [string, string, Better], value: number | undefined, note?: string) =>
      results.set(CORES_SCENARIO, f[0], f[1], f[2], 'trainwatch', value, note);
    set(accepted!, o?.replay.samplesPerSec, run.note);
    set(perCpu!, o && o.serverCpuSeconds > 0 ? o.replay.samplesAccepted / o.serverCpuSeconds : undefined);
    set(cpu!, o ? o.serverCpuSeconds / o.wallSeconds : undefined);
    set(speedup!, o && one ? o.replay.samplesPerSec / one.replay.samplesPerSec : undefined);
    if (!reference) continue;
    if ('unavailable' in reference) {
      results.set(
        CORES_SCENARIO,
        accepted![0],
        accepted![1],
        accepted![2],
        'victoriametrics',
        undefined,
        reference.unavailable,
      );
      continue;
    }
    const r = reference.outcome;
    results.set(
      CORES_SCENARIO,
      accepted![0],
      accepted![1],
      accepted![2],
      'victoriametrics',
      r.replay.samplesPerSec,
      reference.note,
    );
    results.set(
      CORES_SCENARIO,
      perCpu![0],
      perCpu![1],
      perCpu![2],
      'victoriametrics',
      r.serverCpuSeconds > 0 ? r.replay.samplesAccepted / r.serverCpuSeconds : undefined,
    );
    results.set(
      CORES_SCENARIO,
      cpu![0],
      cpu![1],
      cpu![2],
      'victoriametrics',
      r.serverCpuSeconds / r.wallSeconds,
    );
  }
  results.details.cores = runs.map((r) => ({ workers: r.workers, note: r.note, replay: r.outcome?.replay }));
}

/**
 * Runs trainwatch's ingest once per worker count, each on a fresh instance. A build without the key runs once
 * (the other counts would measure the same thing).
 */
export async function runCores(ctx: BenchContext, cores: number): Promise<CoresRun[]> {
  const runs: CoresRun[] = [];
  let missingKey: string | undefined;
  for (const workers of workerCounts(cores)) {
    if (missingKey) {
      runs.push({ workers, outcome: undefined, note: `not measured: ${missingKey}` });
      continue;
    }
    let tw: TrainwatchSystem | undefined;
    try {
      tw = await startTrainwatch({
        workDir: ctx.workDir,
        dirName: `trainwatch-workers-${workers}`,
        extraConfig: { processor: { workers } },
      });
      ctx.results.settings[`trainwatch, ${workersLabel(workers)}`] = tw.settings;
      const support = await tw.ingestSupport();
      const format: PayloadFormat | undefined =
        support['remote-write'] === true ? 'remote-write' : support.native === true ? 'native' : undefined;
      if (!format) throw new Error(`no ingest protocol: ${support['remote-write']}; ${support.native}`);
      const notes: string[] = [];
      if (format === 'native') notes.push('sent with the native protocol: remote-write not available');
      const dropped = tw.droppedConfig.filter((k) => k.startsWith('processor'));
      if (dropped.length) {
        missingKey = `this build's configuration has no processor.workers (left out: ${dropped.join(', ')})`;
        notes.push(`${missingKey}: ran with the build's own processing, not ${workersLabel(workers)}`);
      }
      const note = notes.join('; ') || undefined;
      ctx.log(`trainwatch: ingest with ${workersLabel(workers)}${dropped.length ? ' (key left out)' : ''} …`);
      const outcome = await runIngest(ctx, tw, 'main', ctx.dataset, format);
      runs.push({ workers, outcome, note });
      ctx.log(`  ${Math.round(outcome.replay.samplesPerSec)} samples/s accepted`);
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0]!.slice(0, 300);
      ctx.log(`trainwatch with ${workersLabel(workers)}: failed: ${msg}`);
      runs.push({ workers, outcome: undefined, note: `failed: ${msg}` });
    } finally {
      await tw?.stop();
      // Each instance's data directory goes before the next starts: disk is limited.
      if (tw) rmSync(tw.dataDir, { recursive: true, force: true });
    }
  }
  return runs;
}
