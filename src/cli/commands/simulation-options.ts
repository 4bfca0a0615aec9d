import type { Command } from 'commander';
import { parseDuration } from '../../model/duration.js';
import { defaultFleetOptions } from '../../simulator/fleet.js';
import type { SimulationOptions } from '../../simulator/index.js';
import { durationArg, intArg } from '../common.js';

export interface SimFlags {
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

/** The fleet simulator's options, shared by `demo` and `simulate`. */
export function simulatorOptions(cmd: Command, backfillDefault: string): Command {
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

export function simulationConfig(flags: SimFlags, url: string, signal: AbortSignal): SimulationOptions {
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
