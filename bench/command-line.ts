/**
 * The command line of `npm run bench` (bench/run.ts): the scenario names, the usage text and the option
 * parsing. A mistake is a UsageError, reported with the usage and without a stack trace.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { FULL, QUICK } from './harness/context.js';
import { SYSTEM_NAMES } from './harness/systems.js';
import { workerCounts } from './scenarios/cores.js';
import { QUERY_CLIENTS } from './scenarios/isolation.js';

export const SCENARIOS = [
  'ceiling',
  'ingest',
  'native',
  'storage',
  'query',
  'visibility',
  'alert',
  'isolation',
  'cores',
  'large',
  'agent',
  'detectors',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const USAGE = `usage: npm run bench -- [options]

  --quick                  small loads, a few minutes (default: the full run)
  --scenario a,b           only these: ${SCENARIOS.join(', ')}
                           (storage, query, visibility and alert load the data set first, as ingest does;
                           isolation ingests its own data set in two phases, alone and beside ${QUERY_CLIENTS} heavy
                           query clients; cores runs trainwatch's ingest with ${workerCounts(os.availableParallelism()).join(', ')} processor workers here)
                           (detectors runs only when named: detection quality on the scenario
                           library and the fleet simulator, in-process, to bench/results/<date>-detection.md)
  --systems a,b            only these: ${SYSTEM_NAMES.join(', ')}
  --series N               active series of the main data set (quick ${QUICK.series}, full ${FULL.series})
  --ticks N                samples per series (quick ${QUICK.ticks}, full ${FULL.ticks})
  --ticks-per-request N    samples per series in one request (default 1, as Prometheus sends)
  --concurrency N          requests in flight (default ${QUICK.concurrency})
  --rate N                 target samples/s (default: as fast as the server accepts; for the
                           isolation scenario's pace: the fleet in real time)
  --large-series N         series of the large ingest run (full ${FULL.large?.series}; 0 skips it)
  --out DIR                where results go (default bench/results)
  --keep                   keep the temporary data directories and logs
`;

/** A mistake on the command line: reported with the usage, without a stack trace. */
export class UsageError extends Error {}

export function parseList<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  what: string,
): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i as T))
      throw new Error(`unknown ${what} "${i}": expected one of ${allowed.join(', ')}`);
  }
  return items as T[];
}

export function positive(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`--${what} must be a non-negative number, got "${value}"`);
  return n;
}

export function count(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${what} must be a whole number >= 1, got "${value}"`);
  return n;
}

export function parseCommandLine() {
  return parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string' },
      systems: { type: 'string' },
      series: { type: 'string' },
      ticks: { type: 'string' },
      'ticks-per-request': { type: 'string' },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      'large-series': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
}
