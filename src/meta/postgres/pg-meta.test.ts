import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort, waitFor } from '../../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import { PG_MIGRATIONS } from './migrations.js';
import { PgMeta } from './pg-meta.js';

describeWithPostgres('PgMeta on a real PostgreSQL', () => {
  let server: TestPostgres;
  const opened: PgMeta[] = [];
  const meta = (url: string, opts: { statementTimeoutMs?: number } = {}) => {
    const m = new PgMeta({ url, applicationName: 'tw-test', ...opts });
    opened.push(m);
    return m;
  };

  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await Promise.all(opened.map((m) => m.close().catch(() => {})));
    await server?.stop();
  });

  it('migrates exactly once when several processes migrate the same database at once', async () => {
    const url = await server.createDatabase('concurrent_migrations');
    const stores = [meta(url), meta(url), meta(url), meta(url)];
    const applied = await Promise.all(stores.map((s) => s.migrate()));
    const all = applied.flat().sort((a, b) => a - b);
    // Every migration was applied by exactly one of them.
    expect(all).toEqual(PG_MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
    const rows = await stores[0]!.query<{ version: number; n: number }>(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
    );
    expect(rows.rows.every((r) => r.n === 1)).toBe(true);
    expect(await stores[1]!.migrate()).toEqual([]);
    const tables = await stores[0]!.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      'audit_log',
      'auth_sessions',
      'auth_tokens',
      'auth_user_roles',
      'auth_users',
      'job_facets',
      'job_summaries',
      'jobs',
      'metric_metadata',
      'partition_state',
      'schema_migrations',
    ]);
  });

  it('rolls a failing migration back entirely and names it', async () => {
    const url = await server.createDatabase('failing_migration');
    const m = meta(url);
    const broken = [
      { version: 1, description: 'good', sql: 'CREATE TABLE good (a INTEGER)' },
      { version: 2, description: 'half', sql: 'CREATE TABLE half (a INTEGER); SELEC 1' },
    ];
    await expect(m.migrate(broken)).rejects.toThrow(/migration 2 \(half\) failed: .*syntax error/);
    expect(await m.appliedVersions()).toEqual([1]);
    const half = await m.query("SELECT to_regclass('half') AS t");
    expect(half.rows[0]!.t).toBeNull();
  });

  it('reports an unreachable server by host and port, without the password', async () => {
    const port = await freePort();
    await expect(
      PgMeta.open({ url: `postgres://tw:hunter2@127.0.0.1:${port}/meta`, connectTimeoutMs: 2000 }),
    ).rejects.toThrow(
      new RegExp(`^PostgreSQL at tw@127\\.0\\.0\\.1:${port}/meta: connect: connection refused`),
    );
    const err = await PgMeta.open({ url: `postgres://tw:hunter2@127.0.0.1:${port}/meta` }).catch((e) => e);
    expect(String(err.message)).not.toContain('hunter2');
  });

  it('names a missing database', async () => {
    const url = server.url.replace(/\/[^/]+$/, '/no_such_db');
    await expect(PgMeta.open({ url })).rejects.toThrow(/no_such_db: connect: the database does not exist/);
  });

  it('enforces the statement timeout, and cancels a statement on the server when its signal aborts', async () => {
    const m = meta(server.url, { statementTimeoutMs: 200 });
    await expect(m.query('SELECT pg_sleep(30)')).rejects.toThrow(/statement was cancelled/);

    const patient = meta(server.url, { statementTimeoutMs: 60_000 });
    const ac = new AbortController();
    const sleeping = patient.query("SELECT pg_sleep(30), 'cancel-me'", [], ac.signal);
    const running = () =>
      patient
        .query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%cancel-me%' AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .then((r) => r.rows[0]!.n);
    await waitFor('the statement to run', async () => (await running()) === 1);
    ac.abort(new Error('user went away'));
    await expect(sleeping).rejects.toThrow('user went away');
    await waitFor('the server to stop the statement', async () => (await running()) === 0);
  });

  it('runs a transaction atomically', async () => {
    const url = await server.createDatabase('transactions');
    const m = meta(url);
    await m.migrate();
    await expect(
      m.transaction(async (tx) => {
        await tx.query("INSERT INTO jobs (tenant, job_id) VALUES ('t', 'j')");
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect((await m.query('SELECT * FROM jobs')).rowCount).toBe(0);
  });
});
