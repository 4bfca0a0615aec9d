/**
 * The processor's own checkpoint: the detector engine's state (per-series and per-job state, open alerts,
 * derived-series buckets) and the bus positions it covers, in `<data-dir>/processor/state.json`.
 *
 * Written atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves either the
 * previous checkpoint or the new one. After a restart the processor restores it and re-applies to the
 * detectors only the records at or after these positions; records before them (which storage may still need
 * replayed) go to storage only. So detector state sees every record exactly once, and the alert changes that
 * follow the checkpoint are re-derived with their original timestamps, which the alert hub recognises.
 *
 * Format (version 1): `{"version":1,"savedAtMs":…,"positions":[[partition, nextOffset],…],"engine":{…}}`.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { EngineSnapshot } from './detectors/engine.js';

export const STATE_FILE = 'state.json';

export interface ProcessorState {
  readonly version: 1;
  readonly savedAtMs: number;
  readonly positions: [number, number][];
  readonly engine: EngineSnapshot;
}

/** The saved state, or undefined when there is none; a damaged file is reported, never silently ignored. */
export function readState(dir: string): ProcessorState | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const state = JSON.parse(text) as ProcessorState;
  if (state.version !== 1 || !Array.isArray(state.positions) || typeof state.engine !== 'object')
    throw new Error(`${path.join(dir, STATE_FILE)} is not a processor state file of version 1`);
  return state;
}

export function writeState(dir: string, state: ProcessorState): number {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, STATE_FILE);
  const tmp = `${file}.tmp`;
  const text = JSON.stringify(state);
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return text.length;
}
