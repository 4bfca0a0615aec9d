/**
 * The data directory and what trainwatch writes in it are private to its user (issue 16, item 8: with the
 * usual umask 022 they were world-readable): the directory 0700, files 0600, directories 0700.
 */
import { chmodSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { loadConfig } from '../config/index.js';
import { lockDataDir } from './data-dir.js';
import { startTrainwatch } from './modules.js';

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe('data directory permissions', () => {
  it('makes a new or existing data directory 0700', () => {
    const fresh = path.join(tempDir('tw-perm-'), 'data');
    const lock = lockDataDir(fresh);
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(fresh, 'LOCK')).mode & 0o077).toBe(0);
    lock.release();
    const existing = tempDir('tw-perm-'); // mkdtemp: 0700 already; widen it as an old build would have
    chmodSync(existing, 0o755);
    lockDataDir(existing).release();
    expect(statSync(existing).mode & 0o777).toBe(0o700);
  });

  it('a running trainwatch writes nothing others can read', async () => {
    const dir = path.join(tempDir('tw-perm-'), 'data');
    const tw = await startTrainwatch(
      loadConfig({ flags: { listen: '127.0.0.1:0', data_dir: dir } }),
      pino({ level: 'silent' }),
    );
    await tw.stop();
    const entries = walk(dir);
    expect(entries.length).toBeGreaterThan(3);
    for (const p of entries) expect(statSync(p).mode & 0o077, p).toBe(0);
  });
});
