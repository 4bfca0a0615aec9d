import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import { JobInfoCache } from './job-cache.js';
import { type MetaConfig, openMeta, openTokenAdmin, postgresUrlOf } from './open.js';

const dir = () => mkdtempSync(path.join(os.tmpdir(), 'tw-open-meta-'));

function config(meta: MetaConfig['meta'], dataDir = dir()): MetaConfig {
  return { data_dir: dataDir, meta, jobs: { silent_after_ms: 60_000 } };
}

describe('postgresUrlOf', () => {
  it('takes the url, or the trimmed content of url_file, and names the key when that fails', () => {
    expect(postgresUrlOf({ url: 'postgres://a@h/db', pool_size: 1 })).toBe('postgres://a@h/db');
    const file = path.join(dir(), 'url');
    writeFileSync(file, '  postgres://b@h/db\n');
    expect(postgresUrlOf({ url_file: file, pool_size: 1 })).toBe('postgres://b@h/db');
    writeFileSync(file, '\n');
    expect(() => postgresUrlOf({ url_file: file, pool_size: 1 })).toThrow(
      /meta\.postgres\.url_file: .* is empty/,
    );
    expect(() => postgresUrlOf({ url_file: path.join(dir(), 'missing'), pool_size: 1 })).toThrow(
      /meta\.postgres\.url_file: cannot read .*missing/,
    );
    expect(() => postgresUrlOf({ pool_size: 1 })).toThrow(/meta\.postgres\.url or meta\.postgres\.url_file/);
  });
});

describe('openMeta (sqlite)', () => {
  it('opens jobs and tokens in <data_dir>/meta.db, and the token admin sees the same tokens', async () => {
    const c = config({ kind: 'sqlite', postgres: { pool_size: 10 } });
    const meta = await openMeta(c);
    expect(meta.kind).toBe('sqlite');
    const admin = await openTokenAdmin(c);
    const { token } = await admin.create({ tenant: 'acme', scope: 'read' });
    await admin.close();
    expect(meta.tokens.verify(token)).toMatchObject({ ok: true, token: { tenant: 'acme' } });
    meta.jobs.applyEvent('acme', { kind: 'start', jobId: 'j', timeMs: 1, name: 'n' });
    await meta.jobs.flush();
    expect((await meta.jobs.get('acme', 'j', 2))!.name).toBe('n');
    await meta.close();
  });
});

describe('JobInfoCache', () => {
  it('answers from memory, loads on a miss or when older than ttl, and keeps the copy when a load fails', async () => {
    let now = 0;
    let calls = 0;
    let fail = false;
    let loadFailed = () => {};
    const cache = new JobInfoCache(
      {
        get: async (tenant, jobId) => {
          calls++;
          if (fail) throw new Error('down');
          return { jobId, tenant, name: `v${calls}` } as never;
        },
      },
      { ttlMs: 100, now: () => now, onError: () => loadFailed() },
    );
    expect(cache.peek('t', 'j')).toBeUndefined();
    await Promise.resolve();
    await Promise.resolve();
    expect(cache.peek('t', 'j')).toMatchObject({ name: 'v1' });
    expect(calls).toBe(1);
    now = 150;
    fail = true;
    const failedLoadReported = new Promise<void>((resolve) => {
      loadFailed = resolve;
    });
    cache.peek('t', 'j');
    await failedLoadReported;
    expect(cache.peek('t', 'j')).toMatchObject({ name: 'v1' });
    fail = false;
    expect(await cache.load('t', 'j')).toMatchObject({ name: 'v4' });
    expect(cache.peek('t', 'j')).toMatchObject({ name: 'v4' });
  });
});

describeWithPostgres('openMeta (postgres)', () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('migrates at open and serves jobs and tokens from PostgreSQL, the url read from url_file', async () => {
    const urlFile = path.join(dir(), 'pg-url');
    writeFileSync(urlFile, `${server.url}\n`);
    const c = config({ kind: 'postgres', postgres: { url_file: urlFile, pool_size: 2 } });
    const [a, b] = await Promise.all([openMeta(c, { tokenRefreshIntervalMs: 200 }), openMeta(c)]);
    expect(a.kind).toBe('postgres');
    expect(a.sqlite).toBeUndefined();
    expect(await a.postgres!.appliedVersions()).toContain(100);
    a.jobs.applyEvent('acme', { kind: 'start', jobId: 'j', timeMs: 1, name: 'n' });
    await a.jobs.flush();
    expect((await b.jobs.get('acme', 'j', 2))!.name).toBe('n');
    const { token, info } = await b.tokenAdmin.create({ tenant: 'acme', scope: 'ingest' });
    await b.tokenAdmin.revoke(info.id);
    // `a` never saw the token: a miss refresh, then the revocation shows.
    a.tokens.verify(token);
    await waitFor(
      'the revoked token to be seen as revoked',
      () => {
        const check = a.tokens.verify(token);
        return (!check.ok && check.reason === 'revoked') || undefined;
      },
      5000,
      50,
    );
    await Promise.all([a.close(), b.close()]);
  });

  it('fails with a message naming the server when PostgreSQL cannot be reached', async () => {
    const c = config({ kind: 'postgres', postgres: { url: 'postgres://x@127.0.0.1:1/db', pool_size: 1 } });
    await expect(openMeta(c)).rejects.toThrow(/PostgreSQL at x@127\.0\.0\.1:1\/db: .*connection refused/);
  });
});
