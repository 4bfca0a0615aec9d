/**
 * The metric metadata store on both backends (SQLite embedded, PostgreSQL scaled out): declarations are
 * queued and written in batches, the last declaration of a metric wins, reads are per tenant, and a write that
 * fails keeps its entries for the next flush.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import { type SqlRunner, sqliteRunner } from './access.js';
import { MetaStore } from './meta-store.js';
import { METRIC_METADATA_MIGRATIONS, MetricMetadataStore } from './metric-metadata.js';
import { pgRunner } from './postgres/access.js';
import { PgMeta } from './postgres/pg-meta.js';

function contract(open: () => Promise<SqlRunner>) {
  it('writes queued declarations in batches; the last wins; reads are per tenant', async () => {
    const store = new MetricMetadataStore(await open());
    store.noteDeclared('a', [
      ['jobs_total', 'counter', 'Jobs run.', ''],
      ['queue_depth', 'gauge', 'Jobs waiting.', ''],
    ]);
    store.noteDeclared('b', [['queue_depth', 'counter', 'Something else.', 'seconds']]);
    // Queued only: nothing is read before the flush.
    expect((await store.list('a', {})).size).toBe(0);
    await store.flush();
    expect([...(await store.list('a', {}))]).toEqual([
      ['jobs_total', { type: 'counter', help: 'Jobs run.', unit: '' }],
      ['queue_depth', { type: 'gauge', help: 'Jobs waiting.', unit: '' }],
    ]);
    expect([...(await store.list('b', { metric: 'queue_depth' }))]).toEqual([
      ['queue_depth', { type: 'counter', help: 'Something else.', unit: 'seconds' }],
    ]);
    expect((await store.list('b', { metric: 'jobs_total' })).size).toBe(0);
    // More rows than one statement holds, and a changed declaration.
    store.noteDeclared(
      'a',
      Array.from({ length: 450 }, (_, i) => [`m${i}`, 'gauge', `help ${i}`, 'bytes'] as const),
    );
    store.noteDeclared('a', [['jobs_total', 'counter', 'Jobs finished.', '']]);
    await store.close();
    const all = await store.list('a', {});
    expect(all.size).toBe(452);
    expect(all.get('jobs_total')).toEqual({ type: 'counter', help: 'Jobs finished.', unit: '' });
    expect(all.get('m449')).toEqual({ type: 'gauge', help: 'help 449', unit: 'bytes' });
  });
}

describe('metric metadata store on SQLite', () => {
  contract(async () => {
    const meta = new MetaStore(path.join(tempDir('tw-metric-md-'), 'meta.db'));
    meta.migrate(METRIC_METADATA_MIGRATIONS);
    return sqliteRunner(meta.db);
  });

  it('keeps the entries of a failed write for the next flush', async () => {
    const meta = new MetaStore(path.join(tempDir('tw-metric-md-'), 'meta.db'));
    const store = new MetricMetadataStore(sqliteRunner(meta.db));
    store.noteDeclared('a', [['jobs_total', 'counter', 'Jobs run.', '']]);
    // No table yet: the write fails.
    await expect(store.flush()).rejects.toThrow(/no such table/);
    meta.migrate(METRIC_METADATA_MIGRATIONS);
    await store.flush();
    expect((await store.list('a', {})).get('jobs_total')?.help).toBe('Jobs run.');
  });
});

describeWithPostgres('metric metadata store on PostgreSQL', () => {
  let server: TestPostgres;
  const opened: PgMeta[] = [];
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await Promise.all(opened.map((m) => m.close().catch(() => {})));
    await server?.stop();
  });
  contract(async () => {
    const db = new PgMeta({
      url: await server.createDatabase('metric_metadata'),
      applicationName: 'tw-test',
    });
    opened.push(db);
    await db.migrate();
    return pgRunner(db);
  });
});
