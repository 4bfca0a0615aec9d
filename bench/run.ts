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
import {
  count,
  parseCommandLine,
  parseList,
  positive,
  SCENARIOS,
  type Scenario,
  USAGE,
  UsageError,
} from './command-line.js';
import { type BenchContext, FULL, QUICK, type Sizes } from './harness/context.js';
import { type DatasetSummary, fleetForSeries } from './harness/dataset.js';
import { GeneratorProcess, REPO_ROOT } from './harness/generator.js';
import { stopAllStarted } from './harness/proc.js';
import type { PayloadFormat } from './harness/replay.js';
import { formatNumber, Results } from './harness/results.js';
import {
  INSTALL_HINT,
  missingBinary,
  SYSTEM_NAMES,
  SYSTEM_TITLES,
  type System,
  type SystemName,
  startAlertmanager,
} from './harness/systems.js';
import { WebhookReceiver } from './harness/webhook.js';
import { runAgentFootprint } from './scenarios/agent.js';
import { writeRulesFile } from './scenarios/alert.js';
import { type Ceiling, runCeiling, startNullSinkProcess } from './scenarios/ceiling.js';
import { runDetectorsScenario } from './scenarios/detectors.js';
import { INGEST_FIGURES, type IngestOutcome, recordIngest, runIngest } from './scenarios/ingest.js';
import { type QueryResults, recordAgreement, runQueries } from './scenarios/query.js';
import { runVisibility } from './scenarios/visibility.js';
import {
  runAlert,
  runCoresScenario,
  runIsolationScenario,
  runLarge,
  runNativeIngest,
  startSystem,
} from './server-scenarios.js';

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
