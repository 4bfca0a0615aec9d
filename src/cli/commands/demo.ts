import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type { Trainwatch } from '../../server/index.js';
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
    // Loaded here, not at the top of the file: other commands (the agent above all) stay light.
    const [
      { anonymousPolicyFor },
      { MetaStore, TokenStore },
      { createLogger, startTrainwatch },
      { runSimulation },
    ] = await Promise.all([
      import('../../auth/index.js'),
      import('../../meta/index.js'),
      import('../../server/index.js'),
      import('../../simulator/index.js'),
    ]);
    let tw: Trainwatch;
    let tempDir: string | undefined;
    let authNote = '';
    let simToken: string | undefined;
    try {
      if (!flags.dataDir && !process.env.TRAINWATCH_DATA_DIR)
        tempDir = mkdtempSync(path.join(os.tmpdir(), 'trainwatch-demo-'));
      // The demo is for one person on this machine: requests without a token may do everything, as tenant
      // `default`, as long as trainwatch listens on a loopback address (auth.anonymous_from: loopback).
      const config = configFrom(flags, {
        data_dir: tempDir,
        log: { level: 'warn' },
        auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
      });
      tw = await startTrainwatch(config, createLogger(config.log.level));
      const policy = anonymousPolicyFor(config.auth, config.listen);
      if (policy.scopes.has('ingest')) {
        authNote = `  no token needed on this machine: anonymous requests may send and read data as tenant ${policy.tenant}\n`;
      } else {
        // Listening beyond loopback: the simulator gets an ingest token of its own, and so must anyone else.
        const meta = new MetaStore(path.join(path.resolve(config.data_dir), 'meta.db'));
        try {
          simToken = new TokenStore(meta).create({
            tenant: 'default',
            scope: 'ingest',
            name: 'demo simulator',
          }).token;
        } finally {
          meta.close();
        }
        authNote = `  listening beyond loopback: requests need a token (trainwatch token create --data-dir ${config.data_dir} ...)\n`;
      }
    } catch (err) {
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      fail(err);
    }
    const abort = new AbortController();
    const { jobs, nodes, gpus } = flags;
    process.stdout.write(
      `trainwatch demo: dashboard at ${tw.url}/\n` +
        `  simulating ${jobs} jobs × ${nodes} nodes × ${gpus} GPUs (${flags.incidents ? 'with' : 'without'} injected incidents), ` +
        `backfilling ${flags.backfill / 60_000} min of history; press Ctrl-C to stop\n` +
        authNote,
    );
    const sim = runSimulation({
      ...simulationConfig({ ...flags, duration: 0, token: flags.token ?? simToken }, tw.url, abort.signal),
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
    }, tw.config.shutdown_timeout);
  });
}
