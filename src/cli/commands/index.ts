/**
 * Every `trainwatch` subcommand, one file each. A new command is a file here with a `register` function,
 * added to this list.
 */
import type { Command } from 'commander';
import { registerAgent } from './agent.js';
import { registerDemo } from './demo.js';
import { registerExport } from './export.js';
import { registerPromqlTest } from './promql-test.js';
import { registerRules } from './rules.js';
import { registerSilence } from './silence.js';
import { registerSimulate } from './simulate.js';
import { registerStart } from './start.js';
import { registerSync } from './sync.js';
import { registerToken } from './token.js';
import { registerUser } from './user.js';
import { registerVersion } from './version.js';

export const COMMANDS: readonly ((program: Command) => void)[] = [
  registerStart,
  registerDemo,
  registerSimulate,
  registerSync,
  registerToken,
  registerUser,
  registerAgent,
  registerPromqlTest,
  registerRules,
  registerSilence,
  registerExport,
  registerVersion,
];
