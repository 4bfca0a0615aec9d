/**
 * `npm run bench`: trainwatch side by side with VictoriaMetrics and Prometheus (+ Alertmanager, node
 * exporter) on this machine, in one run, with the same payloads. See bench/README.md.
 *
 *   npm run bench                      full run (≈200K active series, plus a ≥1M-series ingest run)
 *   npm run bench -- --quick           a few minutes, small loads
 *   npm run bench -- --scenario ingest --quick
 *   npm run bench -- --systems trainwatch,prometheus --series 50000 --ticks 20
 *
 * Every server runs on 127.0.0.1 on a free port with a temporary data directory and is stopped by its PID.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchContext, FULL, QUICK, type Sizes } from './harness/context.js';
import { type DatasetSummary, fleetForSeries } from './harness/dataset.js';
import { GeneratorProcess, REPO_ROOT } from './harness/generator.js';
import { stopAllStarted, waitFor } from './harness/proc.js';
import type { PayloadFormat } from './harness/replay.js';
import { formatNumber, Results } from './harness/results.js';
import {
  INSTALL_HINT,
  missingBinary,
  type PrometheusSystem,
  prometheusConfig,
  SYSTEM_NAMES,
  SYSTEM_TITLES,
  type System,
  type SystemName,
  startAlertmanager,
  startPrometheus,
  startTrainwatch,
  startVictoriaMetrics,
  type TrainwatchSystem,
} from './harness/systems.js';
import { WebhookReceiver } from './harness/webhook.js';
import { runAgentFootprint } from './scenarios/agent.js';
import { measureAlertLatency, recordAlertUnavailable, writeRulesFile } from './scenarios/alert.js';
import { type Ceiling, runCeiling, startNullSinkProcess } from './scenarios/ceiling.js';
import { recordCores, runCores, workerCounts } from './scenarios/cores.js';
import { runDetectorsScenario } from './scenarios/detectors.js';
import { INGEST_FIGURES, type IngestOutcome, recordIngest, runIngest } from './scenarios/ingest.js';
import {
  ISOLATION_FIGURES,
  ISOLATION_SCENARIO,
  QUERY_CLIENTS,
  recordIsolation,
  runIsolation,
} from './scenarios/isolation.js';
import { type QueryResults, recordAgreement, runQueries } from './scenarios/query.js';
import { runVisibility } from './scenarios/visibility.js';

export const SCENARIOS = [
  'ceiling',
  'ingest',
  'native',
  'storage',
  'query',
  'visibility',
  'alert',
  'isolation',
  'cores',
  'large',
  'agent',
  'detectors',
] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `usage: npm run bench -- [options]

  --quick                  small loads, a few minutes (default: the full run)
  --scenario a,b           only these: ${SCENARIOS.join(', ')}
                           (storage, query, visibility and alert load the data set first, as ingest does;
                           isolation ingests its own data set in two phases, alone and beside ${QUERY_CLIENTS} heavy
                           query clients; cores runs trainwatch's ingest with ${workerCounts(os.availableParallelism()).join(', ')} processor workers here)
                           (detectors runs only when named: detection quality on the scenario
                           library and the fleet simulator, in-process, to bench/results/<date>-detection.md)
  --systems a,b            only these: ${SYSTEM_NAMES.join(', ')}
  --series N               active series of the main data set (quick ${QUICK.series}, full ${FULL.series})
  --ticks N                samples per series (quick ${QUICK.ticks}, full ${FULL.ticks})
  --ticks-per-request N    samples per series in one request (default 1, as Prometheus sends)
  --concurrency N          requests in flight (default ${QUICK.concurrency})
  --rate N                 target samples/s (default: as fast as the server accepts; for the
                           isolation scenario's pace: the fleet in real time)
  --large-series N         series of the large ingest run (full ${FULL.large?.series}; 0 skips it)
  --out DIR                where results go (default bench/results)
  --keep                   keep the temporary data directories and logs
`;

/** A mistake on the command line: reported with the usage, without a stack trace. */
class UsageError extends Error {}

function parseList<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  what: string,
): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i as T))
      throw new Error(`unknown ${what} "${i}": expected one of ${allowed.join(', ')}`);
  }
  return items as T[];
}

function positive(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`--${what} must be a non-negative number, got "${value}"`);
  return n;
}

function count(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${what} must be a whole number >= 1, got "${value}"`);
  return n;
}

function parseCommandLine() {
  return parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string' },
      systems: { type: 'string' },
      series: { type: 'string' },
      ticks: { type: 'string' },
      'ticks-per-request': { type: 'string' },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      'large-series': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const mode = values.quick ? 'quick' : 'full';
  const base = values.quick ? QUICK : FULL;
  const largeSeries = positive(values['large-series'], 'large-series');
  let sizes: Sizes = {
    ...base,
    series: count(values.series, 'series') ?? base.series,
    ticks: count(values.ticks, 'ticks') ?? base.ticks,
    ticksPerRequest: count(values['ticks-per-request'], 'ticks-per-request') ?? base.ticksPerRequest,
    concurrency: count(values.concurrency, 'concurrency') ?? base.concurrency,
    rate: positive(values.rate, 'rate') ?? base.rate,
    large:
      largeSeries === 0
        ? null
        : largeSeries !== undefined
          ? { series: largeSeries, ticks: base.large?.ticks ?? 12 }
          : base.large,
  };
  const scenarios = new Set<Scenario>(
    parseList(values.scenario, SCENARIOS, 'scenario') ??
      SCENARIOS.filter((s) => (s !== 'large' || sizes.large !== null) && s !== 'detectors'),
  );
  // Asked for by name in quick mode: the full mode's size.
  if (scenarios.has('large') && !sizes.large) sizes = { ...sizes, large: FULL.large };
  const systems = parseList(values.systems, SYSTEM_NAMES, 'system') ?? [...SYSTEM_NAMES];
  const outDir = path.resolve(values.out ?? path.join(REPO_ROOT, 'bench', 'results'));
  const command = `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`;

  const results = new Results(mode, command, REPO_ROOT);
  const startedAt = performance.now();
  const log = (msg: string) => {
    const s = Math.round((performance.now() - startedAt) / 1000);
    const line = `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${msg}`;
    process.stdout.write(`${line}\n`);
    results.log.push(line);
  };
  // --- detectors: in-process, no servers; alone it needs nothing else ---------------------------------------
  if (scenarios.has('detectors')) {
    log(`trainwatch benchmark, ${mode} mode: detection quality (in-process, no servers)`);
    const det = runDetectorsScenario({ quick: values.quick ?? false, outDir, command, log });
    log(`detectors: results in ${path.relative(process.cwd(), det.file)}`);
    results.remarks.push(
      `Detection quality: ${path.relative(outDir, det.file)} (scenario library and fleet simulator).`,
    );
    scenarios.delete('detectors');
    if (scenarios.size === 0) return 0;
  }

  const workDir = mkdtempSync(path.join(os.tmpdir(), 'trainwatch-bench-'));
  log(
    `trainwatch benchmark, ${mode} mode; scenarios: ${[...scenarios].join(', ')}; systems: ${systems.join(', ')}`,
  );
  log(`work directory ${workDir}`);
  results.details.sizes = sizes;
  results.details.scenarios = [...scenarios];
  if (os.loadavg()[0]! > 1.5) {
    log(
      `warning: load average is ${os.loadavg()[0]!.toFixed(2)}: other work on this machine will skew the figures`,
    );
  }

  const missingRefs = (['victoriametrics', 'prometheus', 'alertmanager', 'nodeExporter'] as const)
    .map((b) => missingBinary(b))
    .filter(Boolean);
  if (missingRefs.length) {
    log(
      `reference systems missing (their figures will say "not available"): install them with: ${INSTALL_HINT}`,
    );
  }
  const webhook = await new WebhookReceiver().start();
  const generator = new GeneratorProcess();
  const cleanups: (() => Promise<void>)[] = [async () => generator.stop(), async () => webhook.stop()];
  const onSignal = () => {
    log('interrupted: stopping everything started');
    void Promise.allSettled([...cleanups.map((c) => c()), stopAllStarted()]).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // --- the main data set -----------------------------------------------------------------------------
    // The large and agent scenarios do not use it: a run of only those builds a token one (1 job, 1 tick).
    const perSystem = (['ingest', 'storage', 'query', 'visibility', 'alert'] as const).some((s) =>
      scenarios.has(s),
    );
    const needMain =
      perSystem || scenarios.has('ceiling') || scenarios.has('native') || scenarios.has('cores');
    // The isolation scenario's own data set has the main one's fleet, even when the main one is a token.
    const fleetSeries = sizes.series;
    if (!needMain) sizes = { ...sizes, series: 1, ticks: 1 };
    const fleet = fleetForSeries(sizes.series);
    log(
      `building the data set: ${fleet.jobs} jobs × ${fleet.nodesPerJob} nodes × ${fleet.gpusPerNode} GPUs, ${sizes.ticks} ticks of 1 s …`,
    );
    const dataset = await generator.build('main', {
      seed: 42,
      ...fleet,
      ticks: sizes.ticks,
      ticksPerRequest: sizes.ticksPerRequest,
      intervalMs: 1000,
      endMs: Date.now(),
      tenant: 'bench',
    });
    const describe = (d: DatasetSummary) =>
      `${d.options.jobs} jobs × ${d.options.nodesPerJob} nodes × ${d.options.gpusPerNode} GPUs: ${formatNumber(d.activeSeries)} active series, ${d.options.ticks} samples each at 1 s (${formatNumber(d.samples)} samples), ${d.requests} requests of ${d.options.ticksPerRequest} tick(s) × one job (remote-write ${(d.remoteWriteBytes / d.samples).toFixed(1)} bytes/sample snappy, ${(d.remoteWriteUncompressedBytes / d.samples).toFixed(0)} raw; native ${(d.nativeBytes / d.samples).toFixed(1)} bytes/sample zlib)`;
    log(`data set ready in ${(dataset.buildMs / 1000).toFixed(1)} s: ${describe(dataset)}`);
    const { jobIds: _ids, jobsPerChunk: _perChunk, ...datasetDetails } = dataset;
    results.details.dataset = { ...datasetDetails, description: describe(dataset) };
    const ctx: BenchContext = { results, generator, workDir, sizes, webhook, dataset, log };

    // --- the generator's ceiling -------------------------------------------------------------------------
    let ceiling: Record<PayloadFormat, Ceiling> | undefined;
    const sink = await startNullSinkProcess();
    cleanups.push(() => sink.stop());
    if (scenarios.has('ceiling')) {
      log('load generator ceiling (null sink) …');
      ceiling = await runCeiling(ctx, sink);
      for (const [f, c] of Object.entries(ceiling)) {
        results.remarks.push(
          `Load generator ceiling (${f}, against a null sink, concurrency ${sizes.concurrency}): ${formatNumber(c.samplesPerSec)} samples/s, using ${c.generatorCores.toFixed(2)} cores (the sink ${c.sinkCores.toFixed(2)}).`,
        );
      }
    }

    // --- per system: ingest, memory, query, visibility, alert, storage ----------------------------------
    const needsData = ['ingest', 'storage', 'query'].some((s) => scenarios.has(s as Scenario));
    const rulesFile = writeRulesFile(workDir);
    let alertmanager: Awaited<ReturnType<typeof startAlertmanager>> | undefined;
    if (scenarios.has('alert') && systems.includes('prometheus') && !missingBinary('alertmanager')) {
      alertmanager = await startAlertmanager({ workDir, webhookUrl: webhook.url('/alertmanager') });
      cleanups.push(() => alertmanager!.process.stop());
      results.settings.alertmanager = alertmanager.settings;
      results.versions.alertmanager = alertmanager.version;
    }
    const queryResults: Partial<Record<SystemName, QueryResults>> = {};
    const rwOutcomes: Partial<Record<SystemName, IngestOutcome>> = {};

    for (const name of perSystem ? systems : []) {
      const missing =
        name === 'victoriametrics'
          ? missingBinary('victoriametrics')
          : name === 'prometheus'
            ? missingBinary('prometheus')
            : undefined;
      if (missing) {
        log(`${SYSTEM_TITLES[name]}: ${missing}`);
        results.set(
          'ingest',
          INGEST_FIGURES('')[0]![0],
          'samples/s',
          'higher',
          name,
          undefined,
          `not available (${missing})`,
        );
        continue;
      }
      log(`${SYSTEM_TITLES[name]}: starting …`);
      let sys: System;
      try {
        sys = await startSystem(name, workDir, {
          alertmanagerUrl: alertmanager?.url,
          webhookUrl: webhook.url('/trainwatch'),
          rulesFile,
        });
      } catch (err) {
        log(`${SYSTEM_TITLES[name]}: could not start: ${(err as Error).message}`);
        results.set(
          'ingest',
          INGEST_FIGURES('')[0]![0],
          'samples/s',
          'higher',
          name,
          undefined,
          `could not start: ${(err as Error).message}`,
        );
        continue;
      }
      cleanups.push(() => sys.stop());
      results.settings[SYSTEM_TITLES[name]] = sys.settings;
      results.versions[SYSTEM_TITLES[name]] = sys.version;
      const attempt = async (scenario: string, fn: () => Promise<void>) => {
        try {
          await fn();
        } catch (err) {
          const msg = (err as Error).message.split('\n')[0]!.slice(0, 400);
          log(`${SYSTEM_TITLES[name]} ${scenario}: failed: ${msg}`);
          results.set(scenario, 'run', '', 'info', name, undefined, `failed: ${msg}`);
        }
      };
      try {
        const support = await sys.ingestSupport();
        const format: PayloadFormat | undefined =
          support['remote-write'] === true ? 'remote-write' : support.native === true ? 'native' : undefined;
        const formatOrWhy = format ?? { unavailable: `${support['remote-write']}; ${support.native}` };
        const fallbackNote =
          name === 'trainwatch' && format === 'native'
            ? `sent with the native protocol: remote-write not available (${support['remote-write']})`
            : undefined;
        if (name === 'trainwatch' && support['remote-write'] !== true) {
          results.remarks.push(
            `trainwatch: remote-write not available (${support['remote-write']})${format ? `; its data was loaded with the native protocol instead, so its ingest figures are for the native protocol` : ''}.`,
          );
        }

        if (needsData && format) {
          await attempt('ingest', async () => {
            log(`${SYSTEM_TITLES[name]}: ingest (${format}) …`);
            const o = await runIngest(ctx, sys, 'main', dataset, format);
            rwOutcomes[name] = o;
            recordIngest(ctx, 'ingest', '', sys, dataset, o, ceiling?.[format]?.samplesPerSec, fallbackNote);
            log(
              `${SYSTEM_TITLES[name]}: ${formatNumber(o.replay.samplesPerSec)} samples/s accepted, ${formatNumber(o.replay.samplesAccepted / Math.max(o.serverCpuSeconds, 1e-9))} per CPU-s, queryable ${o.drainLagMs === undefined ? `? (${o.drainNote})` : `${(o.drainLagMs / 1000).toFixed(2)} s`} after the last ack`,
            );
          });
        } else if (needsData) {
          results.unavailable(
            'ingest',
            INGEST_FIGURES(''),
            name,
            `not available (${typeof formatOrWhy === 'object' ? formatOrWhy.unavailable : ''})`,
          );
        }
        if (scenarios.has('query')) {
          await attempt('query', async () => {
            log(`${SYSTEM_TITLES[name]}: dashboard queries …`);
            queryResults[name] = await runQueries(ctx, sys);
          });
        }
        if (scenarios.has('visibility')) {
          await attempt('visibility', async () => {
            log(`${SYSTEM_TITLES[name]}: visibility probes …`);
            await runVisibility(ctx, sys, format ?? formatOrWhy);
          });
        }
        if (scenarios.has('alert')) {
          await attempt('alert latency', async () => {
            log(`${SYSTEM_TITLES[name]}: alert latency …`);
            await runAlert(ctx, sys, format, formatOrWhy, rulesFile, alertmanager?.url);
          });
        }
        if (scenarios.has('storage') && format) {
          await attempt('storage', async () => {
            log(`${SYSTEM_TITLES[name]}: persisting and measuring the data directory …`);
            const disk = await sys.persistAndMeasureDisk(format);
            const samples = rwOutcomes[name]?.replay.samplesAccepted ?? dataset.samples;
            results.set(
              'storage',
              'bytes per sample on disk (storage)',
              'bytes',
              'lower',
              name,
              disk.storageBytes / samples,
              disk.how,
            );
            results.set(
              'storage',
              'bytes per sample on disk (whole data dir)',
              'bytes',
              'lower',
              name,
              disk.totalBytes / samples,
            );
            const diskDetails = (results.details.disk ?? {}) as Record<string, unknown>;
            diskDetails[name] = disk;
            results.details.disk = diskDetails;
            log(
              `${SYSTEM_TITLES[name]}: ${(disk.storageBytes / samples).toFixed(2)} bytes/sample (storage), ${(disk.totalBytes / samples).toFixed(2)} (whole dir)`,
            );
          });
        }
      } finally {
        await sys.stop();
        // Disk is limited: each system's data directory goes once measured.
        if (!values.keep) rmSync(sys.dataDir, { recursive: true, force: true });
        log(`${SYSTEM_TITLES[name]}: stopped`);
      }
    }
    if (scenarios.has('query')) {
      const incomplete: Partial<Record<SystemName, string>> = {};
      for (const [n, o] of Object.entries(rwOutcomes) as [SystemName, IngestOutcome][]) {
        if (o.replay.samplesAccepted < o.replay.samplesTotal)
          incomplete[n] = `accepted only ${o.replay.samplesAccepted} of ${o.replay.samplesTotal} samples`;
      }
      recordAgreement(ctx, queryResults, incomplete);
    }

    // --- trainwatch with its native protocol ------------------------------------------------------------
    if (scenarios.has('native') && systems.includes('trainwatch')) {
      await runNativeIngest(ctx, rwOutcomes, ceiling);
    }

    // --- isolation: ingest alone and beside heavy queries ----------------------------------------------------
    const startOpts = { alertmanagerUrl: undefined, webhookUrl: webhook.url('/trainwatch'), rulesFile };
    if (scenarios.has('isolation')) await runIsolationScenario(ctx, systems, startOpts, fleetSeries);

    // --- cores: trainwatch's ingest by processor workers -----------------------------------------------------
    if (scenarios.has('cores') && systems.includes('trainwatch'))
      await runCoresScenario(ctx, systems, rwOutcomes);

    // --- the large run -----------------------------------------------------------------------------------
    if (scenarios.has('large') && sizes.large) {
      await generator.drop('main');
      await runLarge(ctx, systems, sizes.large, ceiling);
    }

    // --- agent footprint ---------------------------------------------------------------------------------
    if (scenarios.has('agent')) {
      log('agent footprint …');
      await runAgentFootprint(ctx, sink.url);
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const files = results.write(outDir);
  log(
    `results: ${path.relative(process.cwd(), files.markdown)} and ${path.relative(process.cwd(), files.json)}`,
  );
  if (values.keep) log(`kept ${workDir}`);
  else rmSync(workDir, { recursive: true, force: true });
  process.stdout.write(`\n${results.toMarkdown()}\n`);
  return 0;
}

interface SystemOptions {
  readonly alertmanagerUrl: string | undefined;
  readonly webhookUrl: string;
  readonly rulesFile: string;
  /** Names the data directory, configuration and log (default: the system's name). */
  readonly dirName?: string;
}

async function startSystem(name: SystemName, workDir: string, opts: SystemOptions): Promise<System> {
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

async function runAlert(
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

async function runNativeIngest(
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
async function runIsolationScenario(
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
async function runCoresScenario(
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

async function runLarge(
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

main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
