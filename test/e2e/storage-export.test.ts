/**
 * Cold export: `trainwatch export --format parquet` writes files that DuckDB reads directly, with labels as
 * columns, TIMESTAMP_MILLIS timestamps and exact float64 values; rollup tiers export their aggregates.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../../src/model/batch.js';
import { Tsdb } from '../../src/storage/index.js';
import { startCli, tempDir } from '../support/helpers.js';

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowObjectsJS() as Record<string, unknown>[];
}

describe('trainwatch export --format parquet', () => {
  it('writes Parquet that DuckDB reads: labels as columns, one row per sample or rollup window', async () => {
    const dataDir = tempDir('tw-export-');
    const db = await Tsdb.open({
      dir: path.join(dataDir, 'tsdb'),
      blockDurationMs: 60_000,
      outOfOrderWindowMs: 3_600_000,
      retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
      fsync: false,
      blockCacheBytes: 1 << 20,
      logger: pino({ level: 'silent' }),
    });
    const T0 = 1_699_999_980_000; // on a minute boundary: the 1m windows hold 60 samples each
    const b = new SeriesBatchBuilder();
    for (const gpu of ['0', '1']) {
      b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'j1', gpu });
      for (let i = 0; i < 600; i++) b.add(T0 + i * 1000, gpu === '0' ? i / 1000 : 0.5);
    }
    b.addSeries({ __name__: 'train_loss', job_id: 'j1' });
    for (let i = 0; i < 600; i++) b.add(T0 + i * 1000, i === 599 ? STALE_NAN : 2 - i / 600);
    db.appender.append('acme', b.build());
    // A late sample far enough to force the cut of everything above.
    const later = new SeriesBatchBuilder();
    later.addSeries({ __name__: 'train_loss', job_id: 'j1' }).add(T0 + 3_600_000, 1);
    db.appender.append('acme', later.build());
    await db.checkpoint(new Map([[0, 1]]));
    await db.close();

    const out = path.join(dataDir, 'out');
    const run = async (...args: string[]) => {
      const child = startCli(['export', '--data-dir', dataDir, '--out', out, ...args]);
      const code = await child.exited;
      expect(code, child.output()).toBe(0);
      return child.output();
    };
    const printed = await run('--from', String(T0), '--to', String(T0 + 599_999), '--format', 'parquet');
    expect(printed).toMatch(/exported 1799 rows/); // the staleness marker is not data
    const files = readdirSync(out).filter((f) => f.startsWith('raw-') && f.endsWith('.parquet'));
    expect(files.length).toBeGreaterThan(0);
    const glob = path.join(out, 'raw-*.parquet');
    const rows = await query(
      `select __name__, gpu, tenant, count(*)::INT as n, min(timestamp)::VARCHAR as first, sum(value) as total
       from read_parquet('${glob}') group by all order by __name__, gpu`,
    );
    expect(rows).toEqual([
      {
        __name__: 'gpu_utilization_ratio',
        gpu: '0',
        tenant: 'acme',
        n: 600,
        first: '2023-11-14 22:13:00',
        total: expect.closeTo(179.7, 9),
      },
      {
        __name__: 'gpu_utilization_ratio',
        gpu: '1',
        tenant: 'acme',
        n: 600,
        first: '2023-11-14 22:13:00',
        total: 300,
      },
      {
        __name__: 'train_loss',
        gpu: null,
        tenant: 'acme',
        n: 599,
        first: '2023-11-14 22:13:00',
        total: expect.any(Number),
      },
    ]);
    const schema = await query(`describe select * from read_parquet('${glob}')`);
    expect(Object.fromEntries(schema.map((r) => [r.column_name, r.column_type]))).toMatchObject({
      timestamp: 'TIMESTAMP',
      value: 'DOUBLE',
      job_id: 'VARCHAR',
    });

    await run(
      '--from',
      String(T0),
      '--to',
      String(T0 + 599_999),
      '--tier',
      '1m',
      '--metric',
      'gpu_utilization_ratio',
    );
    const agg = await query(
      `select gpu, count(*)::INT as windows, sum("count")::INT as samples, max("max") as mx
       from read_parquet('${path.join(out, '1m-*.parquet')}') group by gpu order by gpu`,
    );
    expect(agg).toEqual([
      { gpu: '0', windows: 10, samples: 600, mx: 0.599 },
      { gpu: '1', windows: 10, samples: 600, mx: 0.5 },
    ]);
  }, 60_000);

  it('refuses a format it does not write, with a message', async () => {
    const child = startCli([
      'export',
      '--from',
      '0',
      '--to',
      'now',
      '--format',
      'csv',
      '--data-dir',
      tempDir(),
    ]);
    expect(await child.exited).toBe(1);
    expect(child.output()).toMatch(/only parquet/);
  });
});
