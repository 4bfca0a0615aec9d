import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import { PG_MIGRATIONS, PgMeta } from '../../meta/postgres/index.js';
import { alertUrl } from '../alert.js';
import type { Alert, AlertGroup } from '../notifier.js';
import type { StoredSilence } from '../records.js';
import { PgAlertRepository } from './alerts.js';
import { ALERTING_PG_MIGRATIONS } from './migrations.js';
import { PgNotificationLog } from './notification-log.js';
import { PgOutbox } from './outbox.js';
import { PgSilenceRepository } from './silences.js';

function alert(
  tenant: string,
  fingerprint: string,
  { labels: extraLabels, ...fields }: Partial<Alert> = {},
): Alert {
  const labels = { alertname: 'LossSpike', severity: 'warning', tenant, job_id: 'bert', ...extraLabels };
  const activeAtMs = fields.activeAtMs ?? 1000;
  return {
    labels,
    annotations: { summary: 'loss spiked' },
    state: 'pending',
    activeAtMs,
    firingAtMs: null,
    resolvedAtMs: null,
    fingerprint,
    url: alertUrl(labels, activeAtMs),
    value: 4.5,
    source: 'detector',
    name: 'LossSpike',
    origin: 'loss_spike',
    ...fields,
  };
}

function group(groupKey: string, alerts: Alert[] = []): AlertGroup {
  return {
    receiver: 'team',
    groupKey,
    groupLabels: { alertname: 'LossSpike' },
    commonLabels: { alertname: 'LossSpike' },
    commonAnnotations: {},
    externalUrl: 'http://tw.example',
    alerts,
  };
}

describeWithPostgres('PostgreSQL alerting repositories', () => {
  let server: TestPostgres;
  let meta: PgMeta;
  const extra: PgMeta[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    meta = await PgMeta.open({ url: server.url }, [...PG_MIGRATIONS, ...ALERTING_PG_MIGRATIONS]);
  });
  afterAll(async () => {
    await Promise.all(extra.map((m) => m.close()));
    await meta?.close();
    await server?.stop();
  });

  describe('alerts', () => {
    it('records an episode monotonically: replays and downgrades change nothing', async () => {
      const alerts = new PgAlertRepository(meta);
      const pending = alert('a', 'f1');
      expect(await alerts.record(pending, 1000)).toBe(true);
      expect(await alerts.record(pending, 1001)).toBe(false);
      const firing = { ...pending, state: 'firing' as const, firingAtMs: 1500, value: 7 };
      expect(await alerts.record(firing, 1500)).toBe(true);
      expect(await alerts.record(pending, 1600)).toBe(false);
      expect(await alerts.episodeState(pending)).toBe('firing');
      const resolved = { ...firing, state: 'resolved' as const, firingAtMs: null, resolvedAtMs: 2000 };
      expect(await alerts.record(resolved, 2000)).toBe(true);
      // A resolution that does not carry firingAt keeps the stored one.
      expect(await alerts.query({ tenant: 'a' })).toEqual([{ ...resolved, firingAtMs: 1500 }]);
    });

    it('numbers state changes for a follower: changesSince returns each change once, in order', async () => {
      const url = await server.createDatabase('change_feed');
      const own = await PgMeta.open({ url }, [...PG_MIGRATIONS, ...ALERTING_PG_MIGRATIONS]);
      extra.push(own);
      const writers = [own, new PgMeta({ url })];
      extra.push(writers[1]!);
      const repos = writers.map((w) => new PgAlertRepository(w));
      const start = await repos[0]!.latestChange();
      expect(start).toBe(0);
      const p = alert('a', 'feed', { activeAtMs: 10 });
      const f = { ...p, state: 'firing' as const, firingAtMs: 20 };
      // Two writers report the same episode (a replay after a partition moved): one change each state.
      expect(await repos[0]!.persist([{ alert: p, drop: false }], [], 10)).toEqual([true]);
      expect(
        await repos[1]!.persist(
          [
            { alert: p, drop: false },
            { alert: f, drop: false },
          ],
          [],
          20,
        ),
      ).toEqual([false, true]);
      expect(await repos[0]!.persist([{ alert: f, drop: false }], [], 21)).toEqual([false]);
      // Value updates do not renumber.
      await repos[0]!.updateValues([{ ...f, value: 9 }], 22);
      const first = await repos[0]!.changesSince(start, 100);
      expect(first.alerts.map((a) => a.state)).toEqual(['firing']);
      expect(await repos[0]!.changesSince(first.cursor, 100)).toEqual({ alerts: [], cursor: first.cursor });
      // Many concurrent batches: the follower, reading as they commit, misses none.
      const seen = new Set<string>();
      let cursor = first.cursor;
      const writes = Array.from({ length: 40 }, (_, i) =>
        repos[i % 2]!.persist([{ alert: { ...f, fingerprint: `c${i}` }, drop: false }], [], 30),
      );
      const all = Promise.all(writes);
      let done = false;
      void all.then(() => {
        done = true;
      });
      while (!done || seen.size < 40) {
        const next = await repos[0]!.changesSince(cursor, 7);
        for (const a of next.alerts) {
          expect(seen.has(a.fingerprint)).toBe(false);
          seen.add(a.fingerprint);
        }
        cursor = next.cursor;
        if (done && next.alerts.length === 0) break;
      }
      expect(seen.size).toBe(40);
    });

    it('persists a batch in one transaction and answers open, query, resolvedSince and prune', async () => {
      const alerts = new PgAlertRepository(meta);
      const p1 = alert('b', 'p1', { activeAtMs: 100 });
      const p2 = alert('b', 'p2', { activeAtMs: 200, labels: { job_id: 'gpt' } });
      const gone = alert('b', 'gone', { activeAtMs: 300 });
      await alerts.persist(
        [
          { alert: p1, drop: false },
          { alert: p2, drop: false },
          { alert: gone, drop: false },
          { alert: gone, drop: true },
          { alert: { ...p1, state: 'firing', firingAtMs: 150 }, drop: false },
        ],
        [{ ...p2, value: Number.NaN }],
        400,
      );
      const open = (await alerts.open()).filter((a) => a.labels.tenant === 'b');
      expect(open.map((a) => [a.fingerprint, a.state])).toEqual([
        ['p1', 'firing'],
        ['p2', 'pending'],
      ]);
      expect(Number.isNaN(open[1]!.value)).toBe(true);
      await alerts.updateValues([{ ...p2, value: 3.25 }], 450);
      expect((await alerts.query({ tenant: 'b', jobId: 'gpt' }))[0]!.value).toBe(3.25);
      expect((await alerts.query({ tenant: 'b', states: ['firing'] })).map((a) => a.fingerprint)).toEqual([
        'p1',
      ]);
      expect((await alerts.query({ tenant: 'b', limit: 1 })).map((a) => a.fingerprint)).toEqual(['p2']);
      expect(await alerts.query({ tenant: 'nobody' })).toEqual([]);

      await alerts.record({ ...p1, state: 'resolved', firingAtMs: 150, resolvedAtMs: 5000 }, 5000);
      expect((await alerts.resolvedSince(4000)).map((a) => a.fingerprint)).toContain('p1');
      expect((await alerts.query({ tenant: 'b', sinceMs: 4500 })).map((a) => a.fingerprint).sort()).toEqual([
        'p1',
        'p2',
      ]);
      expect(await alerts.pruneResolved(5001)).toBeGreaterThanOrEqual(1);
      expect((await alerts.query({ tenant: 'b' })).map((a) => a.fingerprint)).toEqual(['p2']);
    });
  });

  describe('silences', () => {
    it('saves, replaces, lists and prunes; one tenant cannot overwrite another tenant’s silence', async () => {
      const silences = new PgSilenceRepository(meta);
      const s: StoredSilence = {
        id: 'sil-1',
        tenant: 'a',
        matchers: [{ name: 'job_id', value: 'bert.*', isRegex: true, isEqual: true }],
        startsAtMs: 0,
        endsAtMs: 10_000,
        createdBy: 'ana',
        comment: 'maintenance',
        updatedAtMs: 1,
      };
      expect(await silences.save(s)).toBe(true);
      expect(await silences.save({ ...s, comment: 'longer', endsAtMs: 20_000, updatedAtMs: 2 })).toBe(true);
      expect(await silences.save({ ...s, tenant: 'evil', comment: 'hijacked' })).toBe(false);
      expect(await silences.save({ ...s, id: 'sil-2', endsAtMs: 50 })).toBe(true);
      expect(await silences.list()).toEqual([
        { ...s, comment: 'longer', endsAtMs: 20_000, updatedAtMs: 2 },
        { ...s, id: 'sil-2', endsAtMs: 50 },
      ]);
      expect(await silences.prune(100)).toBe(1);
      expect((await silences.list()).map((x) => x.id)).toEqual(['sil-1']);
    });
  });

  describe('notification log', () => {
    it('remembers what was last sent per receiver, integration and group; an empty set forgets', async () => {
      const log = new PgNotificationLog(meta);
      expect(await log.lastNotified('r', 'slack', 'g')).toBeUndefined();
      await log.setNotified('r', 'slack', 'g', ['f1', 'f2'], 10);
      await log.setNotified('r', 'slack', 'g', ['f2'], 20);
      expect(await log.lastNotified('r', 'slack', 'g')).toEqual({ firing: new Set(['f2']), sentAtMs: 20 });
      expect(await log.lastNotified('r', 'email', 'g')).toBeUndefined();
      await log.setNotified('r', 'slack', 'g', [], 30);
      expect(await log.lastNotified('r', 'slack', 'g')).toBeUndefined();
    });
  });

  describe('outbox', () => {
    it('enqueues, supersedes older waiting entries of a group, and enqueues a dedup key once', async () => {
      const outbox = new PgOutbox(meta);
      const a = alert('a', 'f');
      const first = (await outbox.enqueue('team', 'slack', group('g-sup', [a]), 'first', 10))!;
      const second = (await outbox.enqueue('team', 'slack', group('g-sup', [a]), 'second', 20))!;
      expect(second).toBeGreaterThan(first);
      const action = await outbox.enqueue('team', 'slack', group('g-sup'), 'action', 30, 'once');
      expect(action).toBeTypeOf('number');
      expect(await outbox.enqueue('team', 'slack', group('g-sup'), 'action', 40, 'once')).toBeUndefined();
      const byId = new Map((await outbox.list(100)).map((n) => [n.id, n]));
      expect(byId.get(first)!.status).toBe('superseded');
      expect(byId.get(second)!.status).toBe('pending');
      expect(byId.get(action!)!.status).toBe('pending');

      const due = await outbox.due(1000, 10);
      expect(due.map((d) => d.id)).toEqual([second, action]);
      expect(due[0]).toMatchObject({ summary: 'second', nextAttemptMs: 20, attempts: 0, groupKey: 'g-sup' });
      expect(due[0]!.group).toEqual(group('g-sup', [a]));
    });

    it('never hands the same notification to two senders claiming at once', async () => {
      const senders = [meta, ...[1, 2, 3].map(() => new PgMeta({ url: server.url }))];
      extra.push(...senders.slice(1));
      const outboxes = senders.map((m) => new PgOutbox(m, { claimLeaseMs: 60_000 }));
      const ids: number[] = [];
      for (let i = 0; i < 200; i++)
        ids.push((await outboxes[0]!.enqueue('team', 'webhook', group(`race-${i}`), `n${i}`, 5000))!);
      const taken: number[] = [];
      // Every sender claims small batches concurrently until nothing is due.
      await Promise.all(
        outboxes.map(async (o) => {
          for (;;) {
            const batch = await o.due(6000, 7);
            if (batch.length === 0) return;
            taken.push(...batch.map((n) => n.id));
          }
        }),
      );
      const raced = taken.filter((id) => ids.includes(id));
      expect(raced.length).toBe(ids.length);
      expect(new Set(raced).size).toBe(ids.length);
      // Claimed rows are due again only when their lease ends (a sender died without reporting).
      expect(await outboxes[1]!.due(6000 + 59_999, 1000)).toEqual([]);
      expect((await outboxes[1]!.due(6000 + 60_000, 1000)).length).toBeGreaterThanOrEqual(ids.length);
    });

    it('records delivery, retries and failures, lists newest first and prunes finished entries', async () => {
      const url = await server.createDatabase('outbox_marks');
      const own = await PgMeta.open({ url }, [...PG_MIGRATIONS, ...ALERTING_PG_MIGRATIONS]);
      extra.push(own);
      const outbox = new PgOutbox(own);
      const ok = (await outbox.enqueue('r', 'slack', group('m1'), 'ok', 100))!;
      const retry = (await outbox.enqueue('r', 'slack', group('m2'), 'retry', 100))!;
      const fail = (await outbox.enqueue('r', 'slack', group('m3'), 'fail', 100))!;
      expect(await outbox.nextDueMs()).toBe(100);
      expect((await outbox.due(200, 10)).map((n) => n.id)).toEqual([ok, retry, fail]);
      await outbox.markDelivered(ok, 210);
      await outbox.markRetry(retry, 5000, 'HTTP 503', 220);
      await outbox.markFailed(fail, `HTTP 400 ${'x'.repeat(5000)}`, 230);
      const list = await outbox.list(10);
      expect(list.map((n) => n.id)).toEqual([fail, retry, ok]);
      expect(list[2]).toMatchObject({ status: 'delivered', attempts: 1, deliveredMs: 210, lastError: '' });
      expect(list[1]).toMatchObject({
        status: 'pending',
        attempts: 1,
        nextAttemptMs: 5000,
        lastError: 'HTTP 503',
      });
      expect(list[0]).toMatchObject({ status: 'failed', attempts: 1 });
      expect(list[0]!.lastError).toHaveLength(1000);
      expect(await outbox.nextDueMs()).toBe(5000);
      expect(await outbox.due(4999, 10)).toEqual([]);
      expect((await outbox.due(5000, 10)).map((n) => n.id)).toEqual([retry]);
      expect(await outbox.prune(225)).toBe(1); // the delivered one; the failed one is newer, pending stays
      expect((await outbox.list(10)).map((n) => n.id)).toEqual([fail, retry]);
    });
  });
});
