/**
 * The delivery history and health queries of the outbox, the same scenario on both stores (SQLite embedded,
 * PostgreSQL when its binaries are installed): a notification belongs to the one tenant of its alerts (none
 * when they mix tenants), history pages and filters stay within the tenant, and health counts each receiver
 * integration's outcomes, last success, last failure with its error, and latency.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';
import type { Alert, AlertGroup } from '../../src/alerting/notifier.js';
import { PgAlertStore } from '../../src/alerting/postgres/index.js';
import { ALERTING_PG_MIGRATIONS } from '../../src/alerting/postgres/migrations.js';
import { notificationTenant } from '../../src/alerting/records.js';
import { type AlertRepository, SqliteAlertRepository } from '../../src/alerting/repository.js';
import { AlertStore } from '../../src/alerting/store.js';
import { MetaStore } from '../../src/meta/index.js';
import { PG_MIGRATIONS, PgMeta } from '../../src/meta/postgres/index.js';
import { tempDir } from '../support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../support/postgres.js';

function alert(tenant: string | undefined, job: string): Alert {
  const labels: Record<string, string> = { alertname: 'LossSpike', job_id: job };
  if (tenant !== undefined) labels.tenant = tenant;
  return {
    labels,
    annotations: {},
    state: 'firing',
    activeAtMs: 1,
    firingAtMs: 1,
    resolvedAtMs: null,
    fingerprint: fingerprint(labels),
    url: '/',
    value: 1,
    source: 'detector',
    name: 'LossSpike',
    origin: 'loss_spike',
  };
}

function group(key: string, alerts: Alert[]): AlertGroup {
  return {
    receiver: 'team',
    groupKey: key,
    groupLabels: { alertname: 'LossSpike' },
    commonLabels: {},
    commonAnnotations: {},
    externalUrl: 'http://tw.example',
    alerts,
  };
}

it('gives a notification the one tenant of its alerts, or none', () => {
  expect(notificationTenant(group('g', [alert('a', '1'), alert('a', '2')]))).toBe('a');
  expect(notificationTenant(group('g', [alert('a', '1'), alert('b', '2')]))).toBeNull();
  expect(notificationTenant(group('g', [alert('a', '1'), alert(undefined, '2')]))).toBeNull();
  expect(notificationTenant({ ...group('g', []), groupLabels: { tenant: 'c' } })).toBe('c');
  expect(notificationTenant(group('g', []))).toBeNull();
});

function scenario(repo: () => AlertRepository) {
  it('pages, filters and sums each tenant’s deliveries, and nobody sees a mixed-tenant group', async () => {
    const r = repo();
    const q = (extra: object = {}) => r.deliveries({ tenant: 'a', offset: 0, limit: 100, ...extra });
    const ids: number[] = [];
    // Tenant a: 3 to the hook (delivered, failed, retrying), 1 to slack (delivered); tenant b: 1; mixed: 1.
    for (let i = 0; i < 3; i++)
      ids.push(
        (await r.enqueue('hook', 'webhook[0]', group(`a${i}`, [alert('a', `j${i}`)]), `a${i}`, 1000 + i))!,
      );
    ids.push((await r.enqueue('slack', 'slack[0]', group('a3', [alert('a', 'j3')]), 'a3', 1003))!);
    ids.push((await r.enqueue('hook', 'webhook[0]', group('b0', [alert('b', 'jb')]), 'b0', 1004))!);
    ids.push(
      (await r.enqueue('hook', 'webhook[0]', group('m', [alert('a', 'x'), alert('b', 'y')]), 'mixed', 1005))!,
    );
    await r.markDelivered(ids[0]!, 1100, 40);
    await r.markFailed(ids[1]!, 'HTTP 400: bad payload', 1200, 15);
    await r.markRetry(ids[2]!, 9000, 'HTTP 503', 1300, 25);
    await r.markDelivered(ids[3]!, 1023, 12);
    await r.markDelivered(ids[4]!, 1504, 9);

    const all = await q();
    expect(all.total).toBe(4);
    expect(all.notifications.map((n) => n.summary)).toEqual(['a3', 'a2', 'a1', 'a0']);
    expect(all.notifications.every((n) => n.tenant === 'a')).toBe(true);
    expect(all.notifications[3]).toMatchObject({
      status: 'delivered',
      deliveredMs: 1100,
      lastAttemptDurationMs: 40,
    });
    expect((await q({ receiver: 'hook' })).total).toBe(3);
    expect((await q({ integration: 'slack[0]' })).notifications.map((n) => n.summary)).toEqual(['a3']);
    expect((await q({ statuses: ['failed', 'pending'] })).notifications.map((n) => n.summary)).toEqual([
      'a2',
      'a1',
    ]);
    expect((await q({ sinceMs: 1001, untilMs: 1003 })).notifications.map((n) => n.summary)).toEqual([
      'a2',
      'a1',
    ]);
    const page2 = await q({ offset: 2, limit: 1 });
    expect([page2.total, page2.notifications.map((n) => n.summary)]).toEqual([4, ['a1']]);
    const b = await r.deliveries({ tenant: 'b', offset: 0, limit: 100 });
    expect(b.notifications.map((n) => n.summary)).toEqual(['b0']);

    const health = await r.deliveryHealth('a');
    expect(health).toEqual([
      {
        receiver: 'hook',
        integration: 'webhook[0]',
        delivered: 1,
        failed: 1,
        pending: 1,
        retrying: 1,
        lastDeliveredMs: 1100,
        lastFailureMs: 1300,
        lastError: 'HTTP 503',
        meanLatencyMs: 100,
        maxLatencyMs: 100,
      },
      {
        receiver: 'slack',
        integration: 'slack[0]',
        delivered: 1,
        failed: 0,
        pending: 0,
        retrying: 0,
        lastDeliveredMs: 1023,
        lastFailureMs: null,
        lastError: null,
        meanLatencyMs: 20,
        maxLatencyMs: 20,
      },
    ]);
    expect((await r.deliveryHealth('b')).map((h) => [h.receiver, h.delivered])).toEqual([['hook', 1]]);
  });
}

describe('SQLite outbox history', () => {
  let meta: MetaStore;
  beforeAll(() => {
    meta = new MetaStore(path.join(tempDir('tw-history-'), 'meta.db'));
  });
  afterAll(() => meta.close());
  scenario(() => new SqliteAlertRepository(new AlertStore(meta)));
});

describeWithPostgres('PostgreSQL outbox history', () => {
  let server: TestPostgres;
  let meta: PgMeta;
  beforeAll(async () => {
    server = await startPostgres();
    meta = await PgMeta.open({ url: server.url }, [...PG_MIGRATIONS, ...ALERTING_PG_MIGRATIONS]);
  });
  afterAll(async () => {
    await meta?.close();
    await server?.stop();
  });
  scenario(() => new PgAlertStore(meta));
});
