/** Pieces shared by the CLI's commands: argument parsers, server options, config loading, exits. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { type Config, ConfigError, loadConfig } from '../config/index.js';
import { parseDuration } from '../model/duration.js';

export function packageVersion(): string {
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

export function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function intArg(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

export interface ServerFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  roles?: string;
  logLevel?: string;
}

/** The options every command that runs the server shares. */
export function serverOptions(cmd: Command, dataDirDefault: string): Command {
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

/** Defaults ← file ← TRAINWATCH_* environment ← `overrides` ← flags. */
export function configFrom(flags: ServerFlags, overrides: Record<string, unknown> = {}): Config {
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

/**
 * Runs until SIGINT/SIGTERM, then stops cleanly; a second signal exits at once, and so does a stop that takes
 * longer than `deadlineMs` (`shutdown_timeout`): a stuck stop must not outlive its grace period.
 */
export function stopOnSignal(stop: () => Promise<void>, deadlineMs?: number): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`trainwatch: ${signal} received, stopping\n`);
    if (deadlineMs !== undefined)
      setTimeout(() => {
        process.stderr.write(`trainwatch: not stopped within ${deadlineMs} ms (shutdown_timeout); exiting\n`);
        process.exit(1);
      }, deadlineMs).unref();
    void stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`trainwatch: error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

/** Prints the error for a person and exits: 2 for configuration errors, 1 otherwise. */
export function fail(err: unknown): never {
  process.stderr.write(`trainwatch: ${(err as Error).message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

/** A command's action whose error ends the process as {@link fail} does (every command alike). */
export function orFail<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      fail(err);
    }
  };
}
