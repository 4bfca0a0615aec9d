/**
 * The scenarios of `npm run bench` (bench/run.ts) that start each system on its own: alert latency, native ingest,
 * query isolation, processor cores and the large ingest run, and how a system is started with the benchmark's
 * alerting set-up. The shared data set's scenarios run inline in run.ts's main().
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import type { BenchContext } from './harness/context.js';
import { fleetForSeries } from './harness/dataset.js';
import { waitFor } from './harness/proc.js';
import type { PayloadFormat } from './harness/replay.js';
import { formatNumber } from './harness/results.js';
import {
  missingBinary,
  type PrometheusSystem,
  prometheusConfig,
  SYSTEM_TITLES,
  type System,
  type SystemName,
  startPrometheus,
  startTrainwatch,
  startVictoriaMetrics,
  type TrainwatchSystem,
} from './harness/systems.js';
import { measureAlertLatency, recordAlertUnavailable } from './scenarios/alert.js';
import type { Ceiling } from './scenarios/ceiling.js';
import { recordCores, runCores } from './scenarios/cores.js';
import { INGEST_FIGURES, type IngestOutcome, recordIngest, runIngest } from './scenarios/ingest.js';
import {
  ISOLATION_FIGURES,
  ISOLATION_SCENARIO,
  recordIsolation,
  runIsolation,
} from './scenarios/isolation.js';

export interface SystemOptions {
  readonly alertmanagerUrl: string | undefined;
  readonly webhookUrl: string;
  readonly rulesFile: string;
  /** Names the data directory, configuration and log (default: the system's name). */
  readonly dirName?: string;
}

export async function startSystem(name: SystemName, workDir: string, opts: SystemOptions): Promise<System> {
  const dir = opts.dirName ? { dirName: opts.dirName } : {};
  if (name === 'victoriametrics') return startVictoriaMetrics({ workDir, ...dir });
  if (name === 'prometheus') {
    return startPrometheus({
      workDir,
      ...dir,
      ...(opts.alertmanagerUrl ? { alertmanagerUrl: opts.alertmanagerUrl } : {}),
    });
  }
  return startTrainwatch({
    workDir,
    ...dir,
    extraConfig: trainwatchAlertingConfig(opts.rulesFile, opts.webhookUrl),
  });
}

/**
 * Alerting configuration for trainwatch: the benchmark's rule file, 1 s evaluation, and a webhook receiver.
 * Keys its build does not know are left out (and listed in the settings); the alert scenario then reports
 * trainwatch as not available.
 */
export function trainwatchAlertingConfig(rulesFile: string, webhookUrl: string): Record<string, unknown> {
  return {
    alerting: {
      rule_files: [rulesFile],
      evaluation_interval: '1s',
      receivers: [{ name: 'bench', webhook_configs: [{ url: webhookUrl, send_resolved: false }] }],
      // As fast as Alertmanager is configured for Prometheus.
      route: { receiver: 'bench', group_by: ['alertname', 'job_id'], group_wait: '0s', group_interval: '1s' },
    },
  };
}

export async function runAlert(
  ctx: BenchContext,
  sys: System,
  format: PayloadFormat | undefined,
  formatOrWhy: PayloadFormat | { unavailable: string },
  rulesFile: string,
  alertmanagerUrl: string | undefined,
): Promise<void> {
  if (!format)
    return recordAlertUnavailable(
      ctx,
      sys.name,
      `not available (${(formatOrWhy as { unavailable: string }).unavailable})`,
    );
  if (sys.name === 'victoriametrics') {
    return recordAlertUnavailable(
      ctx,
      sys.name,
      'not measured: alerting in VictoriaMetrics needs vmalert, which Debian does not package',
    );
  }
  if (sys.name === 'prometheus') {
    if (!alertmanagerUrl)
      return recordAlertUnavailable(ctx, sys.name, `not available (${missingBinary('alertmanager')})`);
    await (sys as PrometheusSystem).reload(prometheusConfig({ alertmanagerUrl, ruleFiles: [rulesFile] }));
    // Prometheus drops alerts while its notifier knows no Alertmanager (discovery updates come every 5 s),
    // and the rule group must have been evaluated once: wait for both before the first probe.
    await waitFor(
      'Prometheus to know its Alertmanager and evaluate the rule group',
      async () => {
        const am = (await (await fetch(new URL('/api/v1/alertmanagers', sys.baseUrl))).json()) as {
          data?: { activeAlertmanagers?: unknown[] };
        };
        const rules = (await (await fetch(new URL('/api/v1/rules', sys.baseUrl))).json()) as {
          data?: { groups?: { lastEvaluation?: string }[] };
        };
        const evaluated = rules.data?.groups?.some(
          (g) => g.lastEvaluation && !g.lastEvaluation.startsWith('0001'),
        );
        return (am.data?.activeAlertmanagers?.length ?? 0) > 0 && evaluated;
      },
      30_000,
      200,
    );
    return measureAlertLatency(ctx, sys, format);
  }
  const tw = sys as TrainwatchSystem;
  const rules = await fetch(new URL('/api/v1/rules', tw.baseUrl));
  await rules.arrayBuffer();
  if (rules.status === 404)
    return recordAlertUnavailable(ctx, sys.name, 'not available (endpoint GET /api/v1/rules missing)');
  const droppedAlerting = tw.droppedConfig.filter((k) => k.startsWith('alerting'));
  if (droppedAlerting.length) {
    return recordAlertUnavailable(
      ctx,
      sys.name,
      `not available (this build's configuration has no ${droppedAlerting.join(', ')}: cannot load the rule file or point a webhook at the harness)`,
    );
  }
  // The shared rule counts only if trainwatch loaded the rule file.
  let ruleUnavailable: string | undefined;
  try {
    await waitFor(
      'trainwatch to list the rule group "bench"',
      async () => {
        const body = (await (await fetch(new URL('/api/v1/rules', tw.baseUrl))).json()) as {
          data?: { groups?: { name?: string }[] };
        };
        return body.data?.groups?.some((g) => g.name === 'bench');
      },
      10_000,
      200,
    );
  } catch {
    ruleUnavailable =
      'not available (the rule file was configured, but GET /api/v1/rules lists no group "bench")';
  }
  return measureAlertLatency(ctx, sys, format, ruleUnavailable);
}

export async function runNativeIngest(
  ctx: BenchContext,
  rw: Partial<Record<SystemName, IngestOutcome>>,
  ceiling: Record<PayloadFormat, Ceiling> | undefined,
): Promise<void> {
  const { results, log, workDir, dataset } = ctx;
  const suffix = ' — trainwatch via its native protocol, references via remote-write';
  log('trainwatch: ingest with the native protocol (a fresh instance) …');
  let tw: TrainwatchSystem | undefined;
  let cleanupDir: string | undefined;
  try {
    tw = await startTrainwatch({ workDir, dirName: 'trainwatch-native' });
    cleanupDir = tw.dataDir;
    const support = await tw.ingestSupport();
    if (support.native !== true) {
      results.unavailable(
        'ingest (native protocol)',
        INGEST_FIGURES(suffix),
        'trainwatch',
        `not available (${support.native})`,
      );
      return;
    }
    const o = await runIngest(ctx, tw, 'main', dataset, 'native');
    recordIngest(ctx, 'ingest (native protocol)', suffix, tw, dataset, o, ceiling?.native.samplesPerSec);
    log(`trainwatch native: ${formatNumber(o.replay.samplesPerSec)} samples/s accepted`);
    // The references' remote-write figures, for the ratios.
    for (const ref of ['victoriametrics', 'prometheus'] as const) {
      const r = rw[ref];
      if (!r) continue;
      const sys = { name: ref } as System;
      recordIngest(ctx, 'ingest (native protocol)', suffix, sys, dataset, r, undefined);
    }
  } catch (err) {
    log(`trainwatch native ingest failed: ${(err as Error).message}`);
    results.set(
      'ingest (native protocol)',
      'run',
      '',
      'info',
      'trainwatch',
      undefined,
      `failed: ${(err as Error).message.slice(0, 400)}`,
    );
  } finally {
    await tw?.stop();
    if (cleanupDir) rmSync(cleanupDir, { recursive: true, force: true });
  }
}

/**
 * The isolation scenario: its own data set (the main one's fleet over two phases of `isolationSeconds`), then
 * per system a fresh instance (trainwatch configured as for the ingest scenario). Prometheus is left out: the
 * issue compares trainwatch with VictoriaMetrics here.
 */
export async function runIsolationScenario(
  ctx: BenchContext,
  systems: readonly SystemName[],
  opts: SystemOptions,
  series: number,
): Promise<void> {
  const { results, log, generator, workDir, sizes } = ctx;
  if (systems.includes('prometheus')) {
    const [name, unit, better] = ISOLATION_FIGURES[0]!;
    results.set(
      ISOLATION_SCENARIO,
      name,
      unit,
      better,
      'prometheus',
      undefined,
      'not run: VictoriaMetrics is the reference here',
    );
  }
  const targets = systems.filter((n) => n !== 'prometheus');
  if (!targets.length) return;
  const fleet = fleetForSeries(series);
  const ticks = 2 * sizes.isolationSeconds;
  log(
    `building the isolation data set: ${fleet.jobs} jobs × ${ticks} ticks of 1 s (two phases of ${sizes.isolationSeconds} s) …`,
  );
  const ds = await generator.build('isolation', {
    seed: 44,
    ...fleet,
    ticks,
    ticksPerRequest: sizes.ticksPerRequest,
    intervalMs: 1000,
    endMs: Date.now(),
    tenant: 'bench',
  });
  const { jobIds: _ids, jobsPerChunk: _perChunk, ...dsDetails } = ds;
  results.details.isolationDataset = dsDetails;
  log(
    `isolation data set ready: ${formatNumber(ds.activeSeries)} series, ${formatNumber(ds.samples)} samples`,
  );
  try {
    for (const name of targets) {
      const title = SYSTEM_TITLES[name];
      const missing = name === 'victoriametrics' ? missingBinary('victoriametrics') : undefined;
      if (missing) {
        results.unavailable(ISOLATION_SCENARIO, ISOLATION_FIGURES, name, `not available (${missing})`);
        continue;
      }
      let sys: System | undefined;
      try {
        log(`${title}: isolation (a fresh instance) …`);
        sys = await startSystem(name, workDir, { ...opts, dirName: `${name}-isolation` });
        results.settings[title] ??= sys.settings;
        results.versions[title] ??= sys.version;
        const support = await sys.ingestSupport();
        const format: PayloadFormat | undefined =
          support['remote-write'] === true ? 'remote-write' : support.native === true ? 'native' : undefined;
        if (!format) {
          const why = `not available (${support['remote-write']}; ${support.native})`;
          results.unavailable(ISOLATION_SCENARIO, ISOLATION_FIGURES, name, why);
          continue;
        }
        const o = await runIsolation(ctx, sys, 'isolation', ds, format);
        recordIsolation(results, name, o);
        const p99 = (ms: number) => (ms === null || Number.isNaN(ms) ? '?' : `${ms.toFixed(1)} ms`);
        log(
          `${title}: ack p99 ${p99(o.without.replay.ackLatencyMs.p99)} alone, ${p99(o.withQueries.replay.ackLatencyMs.p99)} with queries; ${formatNumber(o.without.replay.samplesPerSec)} → ${formatNumber(o.withQueries.replay.samplesPerSec)} samples/s; ${o.queries.heavyAnswered} heavy queries answered, ${o.queries.adversarialRefused}/${o.queries.adversarialSent} adversarial refused`,
        );
      } catch (err) {
        const msg = (err as Error).message.split('\n')[0]!.slice(0, 400);
        log(`${title} isolation: failed: ${msg}`);
        results.set(ISOLATION_SCENARIO, 'run', '', 'info', name, undefined, `failed: ${msg}`);
      } finally {
        await sys?.stop();
        if (sys) rmSync(sys.dataDir, { recursive: true, force: true });
      }
    }
  } finally {
    await generator.drop('isolation');
  }
}

/**
 * The cores scenario: trainwatch's ingest of the main data set per processor-worker count, and
 * VictoriaMetrics's ingest of the same data set for reference (from the ingest scenario when it ran, else
 * measured here on a fresh instance).
 */
export async function runCoresScenario(
  ctx: BenchContext,
  systems: readonly SystemName[],
  rw: Partial<Record<SystemName, IngestOutcome>>,
): Promise<void> {
  const { results, log, workDir, dataset } = ctx;
  const cores = os.availableParallelism();
  const runs = await runCores(ctx, cores);
  let reference: Parameters<typeof recordCores>[2];
  const vmNote = `VictoriaMetrics has no such setting: its ingest with all ${cores} cores`;
  if (rw.victoriametrics) {
    reference = { outcome: rw.victoriametrics, note: `${vmNote}, from the ingest scenario of this run` };
  } else if (systems.includes('victoriametrics')) {
    const missing = missingBinary('victoriametrics');
    if (missing) reference = { unavailable: `not available (${missing})` };
    else {
      let vm: System | undefined;
      try {
        log('VictoriaMetrics: ingest for the cores scenario (a fresh instance) …');
        vm = await startVictoriaMetrics({ workDir, dirName: 'victoriametrics-cores' });
        results.settings.VictoriaMetrics ??= vm.settings;
        results.versions.VictoriaMetrics ??= vm.version;
        reference = {
          outcome: await runIngest(ctx, vm, 'main', dataset, 'remote-write'),
          note: `${vmNote}, on a fresh instance`,
        };
      } catch (err) {
        reference = { unavailable: `failed: ${(err as Error).message.split('\n')[0]!.slice(0, 300)}` };
      } finally {
        await vm?.stop();
        if (vm) rmSync(vm.dataDir, { recursive: true, force: true });
      }
    }
  }
  recordCores(results, runs, reference);
  const curve = runs
    .map((r) => `${r.workers}: ${r.outcome ? formatNumber(r.outcome.replay.samplesPerSec) : '—'}`)
    .join(', ');
  log(`cores: samples/s by processor workers ${curve}`);
}

export async function runLarge(
  ctx: BenchContext,
  systems: SystemName[],
  large: { series: number; ticks: number },
  ceiling: Record<PayloadFormat, Ceiling> | undefined,
): Promise<void> {
  const { results, log, generator, workDir, sizes } = ctx;
  const fleet = fleetForSeries(large.series);
  log(
    `building the large data set: ${fleet.jobs} jobs (≈${formatNumber(large.series)} series) × ${large.ticks} ticks …`,
  );
  const ds = await generator.build('large', {
    seed: 43,
    ...fleet,
    ticks: large.ticks,
    ticksPerRequest: sizes.ticksPerRequest,
    intervalMs: 1000,
    endMs: Date.now(),
    tenant: 'bench',
  });
  results.details.largeDataset = { ...ds, jobIds: undefined };
  const scenario = `ingest (${formatNumber(ds.activeSeries)} series)`;
  log(`large data set ready: ${formatNumber(ds.activeSeries)} series, ${formatNumber(ds.samples)} samples`);
  const largeCtx: BenchContext = { ...ctx, dataset: ds };
  for (const name of systems) {
    let sys: System | undefined;
    try {
      if (name !== 'trainwatch' && missingBinary(name)) continue;
      const opts = { workDir, dirName: `${name}-large` };
      sys =
        name === 'trainwatch'
          ? await startTrainwatch(opts)
          : name === 'victoriametrics'
            ? await startVictoriaMetrics(opts)
            : await startPrometheus(opts);
      const support = await sys.ingestSupport();
      const format: PayloadFormat | undefined =
        support['remote-write'] === true ? 'remote-write' : support.native === true ? 'native' : undefined;
      if (!format) {
        results.unavailable(scenario, INGEST_FIGURES(''), name, `not available (${support['remote-write']})`);
        continue;
      }
      log(`${SYSTEM_TITLES[name]}: large ingest (${format}) …`);
      const o = await runIngest(largeCtx, sys, 'large', ds, format);
      recordIngest(
        largeCtx,
        scenario,
        '',
        sys,
        ds,
        o,
        // The ceiling was measured on the main data set: a guide only.
        ceiling?.[format]?.samplesPerSec,
        format === 'native' ? 'sent with the native protocol: remote-write not available' : undefined,
      );
      log(
        `${SYSTEM_TITLES[name]}: ${formatNumber(o.replay.samplesPerSec)} samples/s, ${formatNumber(o.rssBytes / ds.activeSeries)} bytes RSS per series`,
      );
    } catch (err) {
      log(`${SYSTEM_TITLES[name]} large ingest failed: ${(err as Error).message}`);
      results.set(
        scenario,
        'run',
        '',
        'info',
        name,
        undefined,
        `failed: ${(err as Error).message.slice(0, 400)}`,
      );
    } finally {
      await sys?.stop();
      // Each system's large data directory is gone before the next starts: disk is limited.
      if (sys) rmSync(sys.dataDir, { recursive: true, force: true });
    }
  }
}
