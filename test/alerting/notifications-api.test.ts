/**
 * The notification routing API against a running trainwatch with two tenants whose alerts share a routing
 * tree: each tenant sees its own part of the tree, its own receivers (secrets removed), its own delivery
 * history (one shared receiver's deliveries split by tenant), and route tests of its own labels only.
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';
import type { Alert } from '../../src/alerting/notifier.js';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

const SHARED_TOKEN = 'shared-bearer-7f3a9c1e5b';
const A_PATH_SECRET = 'a-path-secret-0d9e8f7a6b';
const B_SLACK_SECRET = 'b-slack-secret-5c4b3a2918';

let tw: Trainwatch;
let ok: HttpReceiver;
let down: HttpReceiver;
let meta: MetaStore;
const token: Record<'a' | 'b', string> = { a: '', b: '' };

function alert(tenant: string, jobId: string, t: number): Alert {
  const labels = { alertname: 'TrainingStalled', severity: 'critical', tenant, job_id: jobId };
  return {
    labels,
    annotations: { summary: 'stalled' },
    state: 'firing',
    activeAtMs: t,
    firingAtMs: t,
    resolvedAtMs: null,
    fingerprint: fingerprint(labels),
    url: `/jobs/${jobId}?t=${t}`,
    value: 75,
    source: 'detector',
    name: 'TrainingStalled',
    origin: 'stall',
  };
}

beforeAll(async () => {
  ok = await startHttpReceiver();
  down = await startHttpReceiver();
  down.status = 503;
  const dir = tempDir('tw-notify-api-');
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: dir,
        auth: { anonymous_tenant: null },
        alerting: {
          route: {
            receiver: 'shared-hook',
            group_wait: '20ms',
            group_interval: '1s',
            routes: [
              { matchers: ['tenant="a"'], receiver: 'a-hook', continue: true },
              { matchers: ['tenant="b"'], receiver: 'b-slack', continue: true },
              { matchers: ['severity="critical"'], receiver: 'shared-hook' },
            ],
          },
          receivers: [
            {
              name: 'shared-hook',
              webhook_configs: [
                { url: `${ok.url}/shared`, http_headers: { Authorization: `Bearer ${SHARED_TOKEN}` } },
              ],
            },
            { name: 'a-hook', webhook_configs: [{ url: `${ok.url}/hooks/${A_PATH_SECRET}` }] },
            {
              name: 'b-slack',
              slack_configs: [{ api_url: `${down.url}/services/T0/B0/${B_SLACK_SECRET}`, channel: '#b' }],
            },
          ],
          outbox: { backoff_base: '200ms', backoff_max: '1s' },
        },
      },
    }),
    pino({ level: 'silent' }),
  );
  meta = new MetaStore(path.join(dir, 'meta.db'));
  const tokens = new TokenStore(meta);
  for (const t of ['a', 'b'] as const) token[t] = tokens.create({ tenant: t, scope: 'read' }).token;

  const t = Date.now() - 2000;
  tw.alerting!.hub.transition(alert('a', 'job-of-a', t), 'firing');
  tw.alerting!.hub.transition(alert('b', 'job-of-b', t), 'firing');
  await waitFor('both deliveries of tenant a', async () => {
    const h = (await get('/api/tw/v1/notifications/history?status=delivered', 'a')).json();
    return h.data?.total === 2 || undefined;
  });
  await waitFor("tenant b's delivery to the shared hook", async () => {
    const h = (await get('/api/tw/v1/notifications/history?status=delivered', 'b')).json();
    return h.data?.total === 1 || undefined;
  });
  await waitFor('a failed attempt of tenant b', async () => {
    const h = (await get('/api/tw/v1/notifications/history?receiver=b-slack', 'b')).json();
    return (h.data?.notifications[0]?.attempts ?? 0) >= 1 || undefined;
  });
});

afterAll(async () => {
  meta?.close();
  await tw?.stop();
  await ok?.close();
  await down?.close();
});

const get = (url: string, who: 'a' | 'b') =>
  tw.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token[who]}` } });
const testRoute = (who: 'a' | 'b', body: unknown) =>
  tw.app.inject({
    method: 'POST',
    url: '/api/tw/v1/notifications/routes/test',
    headers: { authorization: `Bearer ${token[who]}` },
    payload: body as Record<string, unknown>,
  });

const SECRETS = [SHARED_TOKEN, A_PATH_SECRET, B_SLACK_SECRET];

describe('notification routing API, per tenant', () => {
  it('shows each tenant only the routes and receivers its alerts can reach, secrets removed', async () => {
    const routesA = (await get('/api/tw/v1/notifications/routes', 'a')).json().data;
    expect(routesA.route.receiver).toBe('shared-hook');
    expect(routesA.route.routes.map((r: { receiver: string }) => r.receiver)).toEqual([
      'a-hook',
      'shared-hook',
    ]);
    expect(routesA.receivers).toEqual(['shared-hook', 'a-hook']);
    expect(JSON.stringify(routesA)).not.toContain('b-slack');
    const routesB = (await get('/api/tw/v1/notifications/routes', 'b')).json().data;
    expect(routesB.receivers).toEqual(['shared-hook', 'b-slack']);

    const recA = (await get('/api/tw/v1/notifications/receivers', 'a')).json().data.receivers;
    const recB = (await get('/api/tw/v1/notifications/receivers', 'b')).json().data.receivers;
    expect(recA.map((r: { name: string }) => r.name)).toEqual(['shared-hook', 'a-hook']);
    expect(recB.map((r: { name: string }) => r.name)).toEqual(['shared-hook', 'b-slack']);
    for (const body of [JSON.stringify(recA), JSON.stringify(recB)])
      for (const s of SECRETS) expect(body).not.toContain(s);
    const aHook = recA[1].integrations[0];
    expect(aHook).toMatchObject({ name: 'webhook[0]', type: 'webhook', target: `${ok.url}/<secret>` });
    expect(aHook.health).toMatchObject({ delivered: 1, failed: 0, pending: 0 });
    expect(aHook.health.lastDeliveredMs).toBeGreaterThan(0);
    expect(recA[0].integrations[0].settings.http_headers).toEqual({ Authorization: '<secret>' });
    // The shared receiver's health counts each tenant's own deliveries only.
    expect(recA[0].integrations[0].health.delivered).toBe(1);
    expect(recB[0].integrations[0].health.delivered).toBe(1);
    const slack = recB[1].integrations[0];
    expect(slack.target).toBe(`#b via ${down.url}/<secret>`);
    expect(slack.health).toMatchObject({ delivered: 0, pending: 1, retrying: 1 });
    expect(slack.health.lastError).toMatch(/HTTP 503/);
  });

  it("keeps each tenant's delivery history to itself, filtered and paged", async () => {
    const a = (await get('/api/tw/v1/notifications/history', 'a')).json().data;
    expect(a.total).toBe(2);
    expect(a.notifications.map((n: { receiver: string }) => n.receiver).sort()).toEqual([
      'a-hook',
      'shared-hook',
    ]);
    expect(JSON.stringify(a)).toContain('job-of-a');
    expect(JSON.stringify(a)).not.toContain('job-of-b');
    for (const n of a.notifications) {
      expect(n).toMatchObject({ status: 'delivered', attempts: 1, lastError: '' });
      expect(n.latencyMs).toBeGreaterThanOrEqual(0);
      expect(n.lastAttemptDurationMs).toBeGreaterThanOrEqual(0);
    }
    const b = (await get('/api/tw/v1/notifications/history', 'b')).json().data;
    expect(JSON.stringify(b)).not.toContain('job-of-a');
    expect(b.notifications.map((n: { receiver: string }) => n.receiver).sort()).toEqual([
      'b-slack',
      'shared-hook',
    ]);
    const failing = b.notifications.find((n: { receiver: string }) => n.receiver === 'b-slack');
    expect(failing).toMatchObject({ status: 'pending', deliveredMs: null, latencyMs: null });
    expect(failing.lastError).toMatch(/HTTP 503/);
    for (const s of SECRETS) expect(JSON.stringify(b)).not.toContain(s);

    // Filters and paging.
    const onlyA = (await get('/api/tw/v1/notifications/history?receiver=a-hook', 'a')).json().data;
    expect(onlyA.notifications.map((n: { receiver: string }) => n.receiver)).toEqual(['a-hook']);
    expect((await get('/api/tw/v1/notifications/history?receiver=b-slack', 'a')).json().data.total).toBe(0);
    expect((await get('/api/tw/v1/notifications/history?status=failed', 'a')).json().data.total).toBe(0);
    expect((await get('/api/tw/v1/notifications/history?status=pending,failed', 'b')).json().data.total).toBe(
      1,
    );
    const p1 = (await get('/api/tw/v1/notifications/history?limit=1', 'a')).json().data;
    const p2 = (await get('/api/tw/v1/notifications/history?limit=1&offset=1', 'a')).json().data;
    expect([p1.total, p1.notifications.length, p2.notifications.length]).toEqual([2, 1, 1]);
    expect(p1.notifications[0].id).toBeGreaterThan(p2.notifications[0].id);
    const future = Date.now() + 60_000;
    expect((await get(`/api/tw/v1/notifications/history?since=${future}`, 'a')).json().data.total).toBe(0);
    expect((await get(`/api/tw/v1/notifications/history?until=${future}`, 'a')).json().data.total).toBe(2);

    for (const [q, msg] of [
      ['status=lost', /status="lost" must be pending, delivered, failed or superseded/],
      ['limit=0', /limit must be an integer from 1 to 1000/],
      ['since=yesterday', /since="yesterday" is not a time/],
    ] as const) {
      const r = await get(`/api/tw/v1/notifications/history?${q}`, 'a');
      expect(r.statusCode, q).toBe(400);
      expect(r.json().error).toMatch(msg);
    }
  });

  it('tests routes with the caller’s tenant, as delivery routes them', async () => {
    const a = (await testRoute('a', { labels: { alertname: 'X', severity: 'critical' } })).json().data;
    expect(a.labels.tenant).toBe('a');
    expect(a.receivers).toEqual(['a-hook', 'shared-hook']);
    expect(a.routes[0].path.map((p: { receiver: string }) => p.receiver)).toEqual(['shared-hook', 'a-hook']);
    expect(a.routes[0].path[1].matchers).toEqual(['tenant="a"']);
    expect(a.routes[0].groupKey).toBe(a.routes[0].routeId + ':{alertname="X", tenant="a"}');
    expect(a.routes[0].integrations).toEqual(['webhook[0]']);
    const b = (await testRoute('b', { labels: { severity: 'warning' } })).json().data;
    expect(b.receivers).toEqual(['b-slack']);

    const other = await testRoute('a', { labels: { tenant: 'b' } });
    expect(other.statusCode).toBe(400);
    expect(other.json().error).toMatch(/labels.tenant is "b", but your alerts carry tenant "a"/);
    for (const [body, msg] of [
      [{ labels: { severity: 3 } }, /labels.severity must be a string/],
      [{ labels: { 'bad-name': 'x' } }, /"bad-name" is not a valid label name/],
      [{}, /body must be \{"labels"/],
    ] as const) {
      const r = await testRoute('a', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error).toMatch(msg);
    }
  });
});
