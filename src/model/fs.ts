/**
 * File-system steps that durability rests on, written once.
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';

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
