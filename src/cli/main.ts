/**
 * The `trainwatch` command. Every subcommand has --help; configuration errors print what is wrong and exit 2.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Config, ConfigError, loadConfig } from '../config/index.js';
import { parseDuration } from '../model/duration.js';
import { createLogger, startTrainwatch, type Trainwatch } from '../server/index.js';
import { defaultFleetOptions, runSimulation, type SimulationOptions } from '../simulator/index.js';

function packageVersion(): string {
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function intArg(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

interface ServerFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  roles?: string;
  logLevel?: string;
}

function serverOptions(cmd: Command, dataDirDefault: string): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file')
    .option('--data-dir <dir>', `where the bus, storage and metadata live (default: ${dataDirDefault})`)
    .option('--listen <host:port>', 'address for the UI, the APIs and ingest (default: 127.0.0.1:9470)')
    .option(
      '--roles <list>',
      'comma-separated roles to run: all, collector, processor, query, ui (default: all)',
    )
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent');
}

function configFrom(flags: ServerFlags, overrides: Record<string, unknown> = {}): Config {
  return loadConfig({
    file: flags.config,
    env: process.env,
    flags: {
      ...overrides,
      listen: flags.listen,
      data_dir: flags.dataDir ?? overrides.data_dir,
      roles: flags.roles?.split(',').map((r) => r.trim()),
      ...(flags.logLevel ? { log: { level: flags.logLevel } } : {}),
    },
  });
}

/** Runs until SIGINT/SIGTERM, then stops cleanly; a second signal exits at once. */
function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`trainwatch: ${signal} received, stopping\n`);
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`trainwatch: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`trainwatch: ${(err as Error).message}\n`);
  process.exit(1);
}

interface SimFlags {
  jobs: number;
  nodes: number;
  gpus: number;
  seed: number;
  interval: number;
  incidents: boolean;
  backfill: number;
  duration: number;
  token?: string;
  incidentsFile?: string;
}

function simulatorOptions(cmd: Command, backfillDefault: string): Command {
  return cmd
    .option('--jobs <n>', 'jobs running at once', intArg(1, 100_000), defaultFleetOptions.jobs)
    .option('--nodes <n>', 'nodes per job', intArg(1, 4096), defaultFleetOptions.nodesPerJob)
    .option('--gpus <n>', 'GPUs per node', intArg(1, 16), defaultFleetOptions.gpusPerNode)
    .option(
      '--seed <n>',
      'random seed: the same seed gives the same fleet',
      intArg(0, 2 ** 31),
      defaultFleetOptions.seed,
    )
    .option('--interval <duration>', 'sampling interval', durationArg, defaultFleetOptions.intervalMs)
    .option('--no-incidents', 'do not inject incidents')
    .option(
      '--backfill <duration>',
      'history to generate before going live',
      durationArg,
      parseDuration(backfillDefault),
    )
    .option('--incidents-file <file>', 'write the injected incidents (ground truth) as JSON lines');
}

function simulationConfig(flags: SimFlags, url: string, signal: AbortSignal): SimulationOptions {
  return {
    ...defaultFleetOptions,
    seed: flags.seed,
    jobs: flags.jobs,
    nodesPerJob: flags.nodes,
    gpusPerNode: flags.gpus,
    intervalMs: flags.interval,
    incidents: flags.incidents,
    startMs: Date.now() - flags.backfill,
    url,
    token: flags.token ?? process.env.TRAINWATCH_TOKEN,
    backfillMs: flags.backfill,
    durationMs: flags.duration ?? 0,
    incidentsFile: flags.incidentsFile,
    signal,
  };
}

export function buildCli(): Command {
  const program = new Command('trainwatch')
    .description('Monitoring for distributed AI/ML training jobs: metrics, live dashboards and alerts.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError();

  serverOptions(
    program.command('start').description('run trainwatch: every role in one process on embedded defaults'),
    './data',
  ).action(async (flags: ServerFlags) => {
    let tw: Trainwatch;
    try {
      const config = configFrom(flags);
      tw = await startTrainwatch(config, createLogger(config.log.level));
    } catch (err) {
      fail(err);
    }
    stopOnSignal(() => tw.stop());
  });

  simulatorOptions(
    serverOptions(
      program
        .command('demo')
        .description('start trainwatch with a simulated fleet feeding it, and print the dashboard URL'),
      'a new temporary directory, removed at exit',
    ),
    '30m',
  ).action(async (flags: ServerFlags & SimFlags) => {
    let tw: Trainwatch;
    let tempDir: string | undefined;
    try {
      if (!flags.dataDir && !process.env.TRAINWATCH_DATA_DIR)
        tempDir = mkdtempSync(path.join(os.tmpdir(), 'trainwatch-demo-'));
      const config = configFrom(flags, { data_dir: tempDir, log: { level: 'warn' } });
      tw = await startTrainwatch(config, createLogger(config.log.level));
    } catch (err) {
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      fail(err);
    }
    const abort = new AbortController();
    const { jobs, nodes, gpus } = flags;
    process.stdout.write(
      `trainwatch demo: dashboard at ${tw.url}/\n` +
        `  simulating ${jobs} jobs × ${nodes} nodes × ${gpus} GPUs (${flags.incidents ? 'with' : 'without'} injected incidents), ` +
        `backfilling ${flags.backfill / 60_000} min of history; press Ctrl-C to stop\n`,
    );
    const sim = runSimulation({
      ...simulationConfig({ ...flags, duration: 0 }, tw.url, abort.signal),
      onIncident: (inc) =>
        process.stdout.write(
          `  incident scheduled: ${inc.type} in ${inc.jobId} at ${new Date(inc.startMs).toLocaleTimeString()}: ${inc.description}\n`,
        ),
    }).catch((err) => tw.logger.error({ err }, 'simulator stopped'));
    stopOnSignal(async () => {
      abort.abort();
      await sim;
      await tw.stop();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    });
  });

  simulatorOptions(
    program
      .command('simulate')
      .description('run the fleet simulator against a running trainwatch (or any native-protocol collector)')
      .requiredOption('--url <url>', 'collector base URL, e.g. http://127.0.0.1:9470')
      .option('--token <token>', 'ingest token (default: $TRAINWATCH_TOKEN)')
      .option(
        '--duration <duration>',
        'how long to run live after the backfill (0 = until interrupted)',
        durationArg,
        0,
      ),
    '0s',
  ).action(async (flags: SimFlags & { url: string }) => {
    const abort = new AbortController();
    process.on('SIGINT', () => abort.abort());
    process.on('SIGTERM', () => abort.abort());
    let lastPrint = 0;
    const report = await runSimulation({
      ...simulationConfig(flags, flags.url, abort.signal),
      onIncident: (inc) => process.stdout.write(`${JSON.stringify({ incident: inc })}\n`),
      onProgress: (r) => {
        if (Date.now() - lastPrint < 5000) return;
        lastPrint = Date.now();
        process.stdout.write(`${JSON.stringify({ progress: { ...r, incidents: r.incidents.length } })}\n`);
      },
    });
    process.stdout.write(`${JSON.stringify({ done: { ...report, incidents: report.incidents.length } })}\n`);
    process.exit(report.failedBatches > 0 ? 1 : 0);
  });

  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`trainwatch ${packageVersion()} (node ${process.version})\n`);
    });

  program.addOption(new Option('--no-color').hideHelp());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildCli().parseAsync(argv);
}
