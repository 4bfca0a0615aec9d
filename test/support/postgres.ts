/**
 * A throwaway PostgreSQL server for one test file: `initdb` into a temp dir, `postgres` on a free port of
 * 127.0.0.1 (unix socket in the same temp dir, so nothing outside it is touched), a fresh database, and a
 * `stop()` that shuts the server down by its PID and removes the dir.
 *
 * `initdb` and `postgres` refuse to run as root, so under root they run as the `postgres` user through
 * `runuser` and the temp dir is handed to that user. Durability is off (fsync, synchronous_commit): a test
 * server is thrown away, and this keeps it fast on a shared machine.
 *
 * Without the server binaries the tests that need them are skipped with a message saying what to install,
 * except under `CI=true`, where a missing server is a broken CI setup and fails the run.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';
import { freePort, tempDir, waitFor } from './helpers.js';

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/<database>`: trust authentication, no password. */
  readonly url: string;
  readonly port: number;
  /** The server's log so far (for failure messages). */
  readonly log: () => string;
  /** Creates another empty database on the same server and returns its URL (for tests needing a fresh schema). */
  createDatabase(name: string): Promise<string>;
  /** Shuts the server down (by its PID) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Where the server binaries are: `$TRAINWATCH_PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`. */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env.TRAINWATCH_PG_BIN;
  if (fromEnv) return existsSync(path.join(fromEnv, 'postgres')) ? fromEnv : undefined;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0]!, 'bin') : undefined;
}

export const POSTGRES_BIN_DIR = findPostgresBinDir();

const MISSING_MESSAGE =
  'PostgreSQL server binaries not found (looked in $TRAINWATCH_PG_BIN and /usr/lib/postgresql/<version>/bin): ' +
  'install them with `apt-get install postgresql`';

/**
 * `describe` for tests that need a real PostgreSQL. Without the binaries: skipped with a message, or under
 * `CI=true` replaced by one failing test that says what is missing.
 */
export function describeWithPostgres(name: string, body: () => void): void {
  if (POSTGRES_BIN_DIR) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs PostgreSQL installed', () => {
        throw new Error(`${MISSING_MESSAGE} (CI=true: required, not skipped)`);
      });
    });
  } else {
    console.warn(`skipping "${name}": ${MISSING_MESSAGE}`);
    describe.skip(name, body);
  }
}

const asRoot = process.getuid?.() === 0;

/** Runs a server binary as the postgres user when we are root (initdb and postgres refuse root). */
function command(bin: string, args: string[]): [string, string[]] {
  const file = path.join(POSTGRES_BIN_DIR!, bin);
  return asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Servers still running, killed if the test process exits without stopping them. */
const running = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    // SIGQUIT: immediate shutdown, the only kind that finishes without our event loop.
    for (const pid of running) if (isAlive(pid)) process.kill(pid, 'SIGQUIT');
  });
}

export async function startPostgres(opts: { database?: string } = {}): Promise<TestPostgres> {
  if (!POSTGRES_BIN_DIR) throw new Error(MISSING_MESSAGE);
  const database = opts.database ?? 'trainwatch_test';
  const dir = tempDir('tw-pg-');
  const dataDir = path.join(dir, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };

  const [initFile, initArgs] = command('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '--encoding=UTF8',
    '--locale=C',
  ]);
  try {
    execFileSync(initFile, initArgs, { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${e.stderr?.toString().trim() || e.message}`);
  }

  const port = await freePort();
  const [file, args] = command('postgres', [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=50',
    '-c',
    'shared_buffers=16MB',
  ]);
  const proc: ChildProcess = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) =>
    proc.on('exit', () => {
      exited = true;
      resolve();
    }),
  );

  // The postmaster's own PID (under root, `proc` is runuser, its parent): postgres writes it first thing.
  let postmasterPid: number | undefined;
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    postmasterPid ??= readPostmasterPid(dataDir);
    if (postmasterPid !== undefined && isAlive(postmasterPid)) {
      // SIGINT: fast shutdown (disconnects clients, no checkpoint wait worth speaking of with fsync off).
      process.kill(postmasterPid, 'SIGINT');
      try {
        await waitFor(
          `PostgreSQL (pid ${postmasterPid}) to exit`,
          () => !isAlive(postmasterPid!),
          15_000,
          50,
        );
      } catch {
        process.kill(postmasterPid, 'SIGKILL');
      }
      running.delete(postmasterPid);
    }
    if (!exited && proc.pid !== undefined) {
      // Only if the postmaster never started (runuser is still there, or postgres failed in between).
      proc.kill('SIGTERM');
    }
    await exitedPromise;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const ready = await waitFor(
      `PostgreSQL on 127.0.0.1:${port} to accept connections`,
      async () => {
        if (exited) return 'exited' as const;
        // A loaded machine (CI runs test files side by side) may take seconds to fork a backend: a short
        // connection timeout would fail every try although the server is up.
        const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
        client.on('error', () => {});
        try {
          await client.connect();
          await client.query('SELECT 1');
          return 'ready' as const;
        } finally {
          await client.end().catch(() => {});
        }
      },
      90_000,
      50,
    );
    if (ready === 'exited') throw new Error(`PostgreSQL exited while starting:\n${output}`);
    postmasterPid = readPostmasterPid(dataDir);
    if (postmasterPid !== undefined) {
      running.add(postmasterPid);
      installExitHook();
    }
    await createDatabase(adminUrl, database);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- server log ---\n${output}`);
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    log: () => output,
    createDatabase: async (name) => {
      await createDatabase(adminUrl, name);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  // Identifiers cannot be parameters; the name is checked to be a plain identifier instead.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name))
    throw new Error(`invalid test database name ${JSON.stringify(name)}`);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
}

function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
