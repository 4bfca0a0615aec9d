/**
 * One process owns a data directory at a time: two processes appending to the same bus would interleave
 * records. The lock is a file holding the owner's PID; a lock left by a process that no longer runs (kill -9)
 * is taken over.
 *
 * The directory holds every tenant's data, tokens' hashes and the outbox: it is made private to the user
 * running trainwatch (0700), and the process creates files 0600 and directories 0700 from then on (umask
 * 077), whatever the umask it was started with (issue 16, item 8: it used to be world-readable).
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
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
    mkdirSync(abs, { recursive: true, mode: 0o700 });
    chmodSync(abs, 0o700);
  } catch (err) {
    throw new Error(`cannot create data directory ${abs}: ${(err as Error).message}`);
  }
  restrictUmask();
  const lockFile = path.join(abs, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx', 0o600);
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

/** Files and directories this process creates from now on are its user's only. */
function restrictUmask(): void {
  try {
    process.umask(process.umask() | 0o077);
  } catch {
    // Worker threads cannot change the umask; the data directory's own 0700 still keeps others out.
  }
}
