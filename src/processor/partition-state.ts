/**
 * Where the processor keeps the detector state of each bus partition, with the bus offset that state covers,
 * so that whichever processor owns a partition next (after a rebalance, or after its previous owner died)
 * continues its detectors: a straggler's baseline, a stall timer, an open alert's episode.
 *
 * Two implementations: {@link FilePartitionStateStore} (embedded: one file per partition in the processor's
 * state directory) and PostgreSQL's `PgPartitionState` (src/meta/postgres/partition-state.ts), which has this
 * shape already and is passed as is.
 *
 * Invariant (both): the stored offset never goes backwards. A save below the stored offset changes nothing and
 * answers false: it can only come from a previous owner that has not noticed it lost the partition, and must
 * not overwrite the new owner's newer state.
 */

import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { syncDirSync } from '../model/fs.js';
import { checkPartitionPosition } from '../model/partition-state.js';
import { readPartitionFileHeader, writePartitionFileHeader } from './state.js';

export interface SavedPartitionState {
  /** The first bus offset the state has not seen: the new owner's detectors read from here. */
  readonly offset: number;
  /** The engine's state of the partition (`DetectorEngine.encodePartitions`). */
  readonly state: Uint8Array;
  readonly savedAtMs: number;
}

export interface PartitionStateStore {
  /** Durably stores the state of (group, partition); false when a newer offset is stored (see above). */
  save(group: string, partition: number, offset: number, state: Uint8Array, nowMs?: number): Promise<boolean>;
  load(group: string, partition: number): Promise<SavedPartitionState | undefined>;
}

/**
 * One file per partition, `<dir>/partitions/<group>/<partition>.bin`, in the state file format (state.ts)
 * with a single position: written atomically (temporary file, fsync, rename, fsync of the directory), so a
 * crash leaves the previous state or the new one.
 */
export class FilePartitionStateStore implements PartitionStateStore {
  constructor(private readonly dir: string) {}

  private fileOf(group: string, partition: number): string {
    return path.join(this.dir, 'partitions', group, `${partition}.bin`);
  }

  async save(
    group: string,
    partition: number,
    offset: number,
    state: Uint8Array,
    nowMs = Date.now(),
  ): Promise<boolean> {
    checkPartitionPosition(partition, offset);
    const file = this.fileOf(group, partition);
    const stored = storedOffset(file);
    if (stored !== undefined && stored > offset) return false;
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.write(writePartitionFileHeader(nowMs, partition, offset));
      await handle.write(state);
      await handle.sync();
    } finally {
      await handle.close();
    }
    renameSync(tmp, file);
    syncDirSync(dir);
    return true;
  }

  async load(group: string, partition: number): Promise<SavedPartitionState | undefined> {
    const file = this.fileOf(group, partition);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const h = readPartitionFileHeader(bytes, file);
    if (h.partition !== partition)
      throw new Error(`${file} holds the state of partition ${h.partition}, not ${partition}`);
    return { offset: h.offset, savedAtMs: h.savedAtMs, state: bytes.subarray(h.headerBytes) };
  }
}

/** The offset a partition file covers (its header only), undefined when there is none. */
function storedOffset(file: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const head = new Uint8Array(64);
    const n = readSync(fd, head, 0, head.length, 0);
    return readPartitionFileHeader(head.subarray(0, n), file).offset;
  } catch {
    // A damaged file is no reason to refuse a good state: it is replaced.
    return undefined;
  } finally {
    closeSync(fd);
  }
}
