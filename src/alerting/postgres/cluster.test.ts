/**
 * The alerting stage as a cluster on one real PostgreSQL: "processor" services that only persist what their
 * detectors report, "query" services that write silences, and dispatcher candidates contending through
 * `LeaderElection`. Every service has its own pool, as separate processes would. Deliveries are counted by a
 * webhook receiver on 127.0.0.1; the outbox table is the second witness (one notification per group).
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import { type HttpReceiver, startHttpReceiver } from '../../../test/support/receivers.js';
import { LeaderElection, PG_MIGRATIONS, PgMeta } from '../../meta/postgres/index.js';
import { fingerprint } from '../alert.js';
import { alertingConfigSchema } from '../config.js';
import type { Alert } from '../notifier.js';
import { type AlertingService, createAlerting } from '../service.js';
import { PgAlertStore } from './store.js';

const LEADER_KEY = 7355608300999;
const ELECTION_INTERVAL_MS = 200;

function alert(jobId: string, state: Alert['state'], activeAtMs: number): Alert {
  const labels = { alertname: 'TrainingStalled', severity: 'critical', tenant: 'default', job_id: jobId };
  return {
    labels,
    annotations: { summary: `${jobId} stalled` },
    state,
    activeAtMs,
    firingAtMs: state === 'pending' ? null : activeAtMs + 1000,
    resolvedAtMs: state === 'resolved' ? activeAtMs + 60_000 : null,
    fingerprint: fingerprint(labels),
    url: `/jobs/${jobId}`,
    value: 1,
    source: 'detector',
    name: 'TrainingStalled',
    origin: 'stall',
  };
}

/** Job ids of the alerts each delivery carried (firing ones). */
function deliveredJobs(hook: HttpReceiver): string[] {
  return hook.received.flatMap((r) =>
    (r.body as { alerts: { status: string; labels: Record<string, string> }[] }).alerts
      .filter((a) => a.status === 'firing')
      .map((a) => a.labels.job_id!),
  );
}

describeWithPostgres('alerting cluster on PostgreSQL', () => {
  let server: TestPostgres;
  let hook: HttpReceiver;
  let db = 0;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    server = await startPostgres();
    hook = await startHttpReceiver();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await hook?.close();
    await server?.stop();
  });

  /** A fresh database per test, migrated once (as the first process of a cluster would). */
  async function database(): Promise<string> {
    const url = await server.createDatabase(`cluster_${++db}`);
    const m = await PgMeta.open({ url }, PG_MIGRATIONS);
    await PgAlertStore.open(m);
    await m.close();
    return url;
  }

  /** One process's alerting stage; `lead` makes it a dispatcher candidate with its own election. */
  async function startProcess(
    url: string,
    lead: boolean,
  ): Promise<{ svc: AlertingService; stop(): Promise<void> }> {
    const meta = new PgMeta({ url });
    const store = await PgAlertStore.open(meta, { claimLeaseMs: 30_000 });
    const election = lead
      ? new LeaderElection({ connection: { url }, key: LEADER_KEY, intervalMs: ELECTION_INTERVAL_MS })
      : undefined;
    const svc = createAlerting({
      config: alertingConfigSchema.parse({
        persist_interval: '1h',
        route: { receiver: 'hook', group_by: ['job_id'], group_wait: '10ms', group_interval: '1h' },
        receivers: [{ name: 'hook', webhook_configs: [{ url: `${hook.url}/hook`, send_resolved: false }] }],
        outbox: { backoff_base: '10ms', backoff_max: '50ms' },
      }),
      cluster: { store, ...(election ? { leadership: election } : {}), feedPollMs: 50 },
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      listen: '127.0.0.1:9470',
    });
    await svc.start();
    election?.start();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await election?.stop();
      await svc.stop();
      await meta.close();
    };
    cleanups.push(stop);
    return { svc, stop };
  }

  /** What a processor's detectors would do: report the changes, then write them before their state. */
  async function report(svc: AlertingService, ...alerts: Alert[]): Promise<void> {
    for (const a of alerts) svc.hub.transition(a, a.state === 'resolved' ? 'resolved' : a.state);
    expect(await svc.hub.flush()).toBe(true);
  }

  async function notificationsByGroup(svc: AlertingService): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const n of await svc.repository.notifications(1000))
      out.set(n.groupKey, (out.get(n.groupKey) ?? 0) + 1);
    return out;
  }

  it('stores an episode two processors report once and notifies it once', async () => {
    hook.received.length = 0;
    const url = await database();
    const leader = await startProcess(url, true);
    const [p1, p2] = [await startProcess(url, false), await startProcess(url, false)];
    await waitFor('a leader', () => leader.svc.leader?.dispatcher);

    const pending = alert('replayed', 'pending', 1000);
    await report(p1.svc, pending, alert('replayed', 'firing', 1000));
    // The partition moved: its new owner replays the same episode from the bus.
    await report(p2.svc, pending, alert('replayed', 'firing', 1000));
    expect(await p2.svc.repository.query({ tenant: 'default' })).toHaveLength(1);
    // A later alert through the second processor: once it is delivered, the first had every chance to be twice.
    await report(p2.svc, alert('later', 'firing', 2000));
    await waitFor('both deliveries', () => (deliveredJobs(hook).includes('later') ? true : undefined));
    expect(deliveredJobs(hook).sort()).toEqual(['later', 'replayed']);
    expect([...(await notificationsByGroup(p1.svc)).values()]).toEqual([1, 1]);
    // The query side reads open alerts from the store, not from its own memory.
    const q = await startProcess(url, false);
    expect((await q.svc.hub.listOpen('default')).map((a) => a.labels.job_id).sort()).toEqual([
      'later',
      'replayed',
    ]);
  });

  it('a standby takes over when the leader stops mid-stream: nothing sent twice, nothing lost', async () => {
    hook.received.length = 0;
    const url = await database();
    const a = await startProcess(url, true);
    const b = await startProcess(url, true);
    const proc = await startProcess(url, false);
    const first = await waitFor('a leader', () =>
      a.svc.leader?.dispatcher ? a : b.svc.leader?.dispatcher ? b : undefined,
    );
    const standby = first === a ? b : a;
    const jobs = Array.from({ length: 10 }, (_, i) => `job${i}`);
    await report(proc.svc, ...jobs.slice(0, 5).map((j, i) => alert(j, 'firing', 1000 + i)));
    await waitFor('the first half', () => (deliveredJobs(hook).length >= 5 ? true : undefined));
    // The second half is reported, and the leader stops while it may be grouping or sending it.
    await report(proc.svc, ...jobs.slice(5).map((j, i) => alert(j, 'firing', 2000 + i)));
    await first.stop();
    await waitFor('the standby to lead', () => standby.svc.leader?.dispatcher);
    await waitFor(
      'every alert delivered',
      async () => {
        const all = await standby.svc.repository.notifications(1000);
        return all.length === 10 && all.every((n) => n.status === 'delivered') ? true : undefined;
      },
      20_000,
    );
    expect(deliveredJobs(hook).sort()).toEqual(jobs);
    expect([...(await notificationsByGroup(standby.svc)).values()]).toEqual(Array(10).fill(1));
  });

  it('a silence written by a query process mutes what the leader sends', async () => {
    hook.received.length = 0;
    const url = await database();
    const leader = await startProcess(url, true);
    const query = await startProcess(url, false);
    const proc = await startProcess(url, false);
    await waitFor('a leader', () => leader.svc.leader?.dispatcher);
    const now = Date.now();
    await query.svc.silences.upsert(
      'default',
      {
        matchers: [{ name: 'job_id', value: 'muted', isRegex: false, isEqual: true }],
        startsAt: now - 1000,
        endsAt: now + 3_600_000,
        createdBy: 'test',
        comment: 'maintenance',
      },
      now,
    );
    const muted = alert('muted', 'firing', 1000);
    await waitFor('the leader to see the silence', () =>
      leader.svc.silences.mutedBy(muted.labels, Date.now()).length > 0 ? true : undefined,
    );
    // Reported first, so its group is decided before the loud one's.
    await report(proc.svc, muted);
    await report(proc.svc, alert('loud', 'firing', 2000));
    await waitFor('the loud alert', () => (deliveredJobs(hook).includes('loud') ? true : undefined));
    expect(deliveredJobs(hook)).toEqual(['loud']);
    expect([...(await notificationsByGroup(leader.svc)).keys()].some((k) => k.includes('muted'))).toBe(false);
    // The query process shows the alert as silenced.
    const open = await query.svc.hub.listOpen('default');
    expect(open.find((a) => a.labels.job_id === 'muted')?.silencedBy).toHaveLength(1);
  });
});
