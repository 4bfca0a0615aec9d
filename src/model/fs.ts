/**
 * File-system steps that durability rests on, written once.
 */
import { closeSync, promises as fsp, fsyncSync, openSync } from 'node:fs';

/**
 * Makes a directory's entries durable (a file created, renamed into place or removed in it): without it, a
 * crash may bring back the old name even though the file's own data was synced.
 */
export function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** {@link syncDirSync} without blocking the event loop (the fsync runs on libuv's thread pool). */
export async function syncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
