import type { Command } from 'commander';
import { createLogger, startTrainwatch, type Trainwatch } from '../../server/index.js';
import { configFrom, fail, type ServerFlags, serverOptions, stopOnSignal } from '../common.js';

export function registerStart(program: Command): void {
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
}
