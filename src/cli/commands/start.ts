import type { Command } from 'commander';
import type { Trainwatch } from '../../server/index.js';
import { configFrom, fail, type ServerFlags, serverOptions, stopOnSignal } from '../common.js';

export function registerStart(program: Command): void {
  serverOptions(
    program.command('start').description('run trainwatch: every role in one process on embedded defaults'),
    './data',
  ).action(async (flags: ServerFlags) => {
    let tw: Trainwatch;
    try {
      const config = configFrom(flags);
      // Loaded here, not at the top: every other command (the agent above all) stays light.
      const { createLogger, startTrainwatch } = await import('../../server/index.js');
      tw = await startTrainwatch(config, createLogger(config.log.level));
    } catch (err) {
      fail(err);
    }
    stopOnSignal(() => tw.stop(), tw.config.shutdown_timeout);
  });
}
