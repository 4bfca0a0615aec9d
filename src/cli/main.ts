/**
 * The `trainwatch` command. Every subcommand has --help; configuration errors print what is wrong and exit 2.
 */
import { Command } from 'commander';
import { COMMANDS } from './commands/index.js';
import { packageVersion } from './common.js';

export function buildCli(): Command {
  const program = new Command('trainwatch')
    .description('Monitoring for distributed AI/ML training jobs: metrics, live dashboards and alerts.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError();
  for (const register of COMMANDS) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildCli().parseAsync(argv);
}
