import type { Command } from 'commander';
import { packageVersion } from '../common.js';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`trainwatch ${packageVersion()} (node ${process.version})\n`);
    });
}
