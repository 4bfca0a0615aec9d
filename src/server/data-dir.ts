/**
 * One process owns a data directory at a time: two processes appending to the same bus would interleave
 * records. The lock is a file holding the owner's PID; a lock left by a process that no longer runs (kill -9)
 * is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export interface DataDirLock {
  readonly dir: string;
  release(): void;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockDataDir(dir: string): DataDirLock {
  const abs = path.resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create data directory ${abs}: ${(err as Error).message}`);
  }
  const lockFile = path.join(abs, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return { dir: abs, release: () => rmSync(lockFile, { force: true }) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new Error(`cannot lock data directory ${abs}: ${(err as Error).message}`);
      const owner = Number(readFileSync(lockFile, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new Error(
          `data directory ${abs} is in use by process ${owner}; stop it or choose another --data-dir`,
        );
      }
      rmSync(lockFile, { force: true });
    }
  }
  throw new Error(`cannot lock data directory ${abs}`);
}
