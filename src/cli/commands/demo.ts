import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { createLogger, startTrainwatch, type Trainwatch } from '../../server/index.js';
import { runSimulation } from '../../simulator/index.js';
import { configFrom, fail, type ServerFlags, serverOptions, stopOnSignal } from '../common.js';
import { type SimFlags, simulationConfig, simulatorOptions } from './simulation-options.js';

export function registerDemo(program: Command): void {
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
}
