/**
 * Notification routing, unit level:
 * - redaction: no secret of any receiver setting ever appears in what the API shows, whatever the values
 *   (property-based over the schema's secret fields), and every field of the schema is classified;
 * - the route tester agrees with delivery: the same alerts are routed by the tester and sent through the real
 *   alerting service (hub → dispatcher → outbox → webhooks), and each alert reaches exactly the receivers the
 *   tester named, in groups with the keys it named.
 */
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';
import { alertingConfigSchema, receiverSchema } from '../../src/alerting/config.js';
import { testRoute } from '../../src/alerting/notifications-api.js';
import type { Alert } from '../../src/alerting/notifier.js';
import {
  INTEGRATION_KINDS,
  RECEIVER_FIELDS,
  receiverView,
  SECRET,
  scrubSecrets,
  secretStrings,
} from '../../src/alerting/receivers-view.js';
import { buildRoute, explainRoutes, matchRoutes, routesOfTenant } from '../../src/alerting/routing.js';
import { createAlerting } from '../../src/alerting/service.js';
import { MetaStore } from '../../src/meta/index.js';
import { tempDir } from '../support/helpers.js';
import { startHttpReceiver } from '../support/receivers.js';

/** The zod schema inside defaults, optionals and arrays. */
function unwrap(schema: unknown): { shape?: Record<string, unknown>; element?: unknown } {
  let s = schema as { def?: { innerType?: unknown; type?: string; element?: unknown }; shape?: unknown };
  for (;;) {
    if (s.def?.innerType) s = s.def.innerType as typeof s;
    else if (s.def?.type === 'array') s = s.def.element as typeof s;
    else return s as { shape?: Record<string, unknown> };
  }
}

describe('receiver redaction', () => {
  it('classifies every field of every integration kind in the configuration schema', () => {
    const shape = unwrap(receiverSchema).shape!;
    expect(Object.keys(shape).sort()).toEqual(
      ['name', ...INTEGRATION_KINDS.map((k) => `${k}_configs`)].sort(),
    );
    for (const kind of INTEGRATION_KINDS) {
      const fields = Object.keys(unwrap(shape[`${kind}_configs`]).shape!).sort();
      expect(fields, `${kind}_configs: a field without a class in RECEIVER_FIELDS`).toEqual(
        Object.keys(RECEIVER_FIELDS[kind]).sort(),
      );
    }
  });

  /** A secret nobody could mistake for anything else the view shows. */
  const secret = fc.stringMatching(/^[A-Za-z0-9]{10,24}$/).map((s) => `Zq${s}`);
  const word = fc.stringMatching(/^[a-z]{1,8}$/);
  const receiverArb = fc.record({
    name: word.map((w) => `team-${w}`),
    hookUser: secret,
    hookPass: secret,
    hookPath: fc.array(secret, { minLength: 1, maxLength: 3 }),
    hookQuery: secret,
    headerValue: secret,
    headerName: fc.constantFrom('Authorization', 'X-Api-Key', 'X-Token'),
    slackTokens: fc.tuple(secret, secret, secret),
    routingKey: secret,
    pdUser: secret,
    pdQuery: secret,
    password: secret,
    amPass: secret,
    amQuery: secret,
    endpointPath: fc.array(word, { maxLength: 2 }),
  });

  /** Which config fields the generator fills with secrets: it must cover every non-public field. */
  const SECRET_FIELDS_FILLED = {
    webhook: ['url', 'http_headers'],
    slack: ['api_url'],
    pagerduty: ['routing_key', 'url'],
    email: ['auth_password'],
    alertmanager: ['url'],
  };

  it('fills every secret field of the schema (so the property below covers them all)', () => {
    for (const kind of INTEGRATION_KINDS)
      expect(
        Object.entries(RECEIVER_FIELDS[kind])
          .filter(([, c]) => c !== 'public')
          .map(([f]) => f)
          .sort(),
        kind,
      ).toEqual([...SECRET_FIELDS_FILLED[kind]].sort());
  });

  it('never shows a secret: not in settings, targets, nor texts scrubbed of them', () => {
    fc.assert(
      fc.property(receiverArb, (r) => {
        const ep = r.endpointPath.map((p) => `/${p}`).join('');
        const config = alertingConfigSchema.parse({
          route: { receiver: r.name },
          receivers: [
            {
              name: r.name,
              webhook_configs: [
                {
                  url: `https://${r.hookUser}:${r.hookPass}@hooks.example.com/${r.hookPath.join('/')}?token=${r.hookQuery}`,
                  http_headers: { [r.headerName]: `Bearer ${r.headerValue}` },
                },
              ],
              slack_configs: [
                {
                  api_url: `https://hooks.slack.com/services/${r.slackTokens.join('/')}`,
                  channel: '#training',
                },
              ],
              pagerduty_configs: [
                {
                  routing_key: r.routingKey,
                  url: `https://${r.pdUser}@events.example.com${ep}?key=${r.pdQuery}`,
                },
              ],
              email_configs: [
                {
                  to: 'oncall@example.com',
                  from: 'tw@example.com',
                  smarthost: 'smtp.example.com:587',
                  auth_username: 'tw',
                  auth_password: r.password,
                },
              ],
              alertmanager_configs: [
                { url: `http://admin:${r.amPass}@alertmanager.example.com:9093${ep}?auth=${r.amQuery}` },
              ],
            },
          ],
        });
        const secrets = [
          r.hookUser,
          r.hookPass,
          ...r.hookPath,
          r.hookQuery,
          r.headerValue,
          ...r.slackTokens,
          r.routingKey,
          r.pdUser,
          r.pdQuery,
          r.password,
          r.amPass,
          r.amQuery,
        ];
        const view = receiverView(config.receivers[0]!);
        const shown = JSON.stringify(view);
        for (const s of secrets) expect(shown).not.toContain(s);
        // What is not secret is still there: the reader learns where each integration sends.
        expect(view.integrations.map((i) => i.name)).toEqual([
          'webhook[0]',
          'slack[0]',
          'pagerduty[0]',
          'email[0]',
          'alertmanager[0]',
        ]);
        expect(view.integrations[0]!.target).toBe(`https://${SECRET}@hooks.example.com/${SECRET}`);
        expect(view.integrations[0]!.settings.http_headers).toEqual({ [r.headerName]: SECRET });
        expect(view.integrations[1]!.target).toBe(`#training via https://hooks.slack.com/${SECRET}`);
        expect(view.integrations[2]!.settings.url).toBe(
          `https://${SECRET}@events.example.com${ep || '/'}?key=${SECRET}`,
        );
        expect(view.integrations[3]!.settings).toMatchObject({
          to: 'oncall@example.com',
          auth_username: 'tw',
          auth_password: SECRET,
        });
        // A delivery error that quotes every secret (a receiver echoing the request) is scrubbed of all.
        const error = `POST failed: ${secrets.join(' ')} ${config.receivers[0]!.webhook_configs[0]!.url}`;
        const scrubbed = scrubSecrets(error, secretStrings(config.receivers));
        for (const s of secrets) expect(scrubbed).not.toContain(s);
        expect(scrubbed).toContain('POST failed:');
      }),
      { numRuns: 200 },
    );
  });
});

describe('route tester', () => {
  const routing = {
    receiver: 'fallback',
    group_by: ['...'],
    group_wait: '10ms',
    group_interval: '10s',
    routes: [
      {
        matchers: ['severity="critical"'],
        receiver: 'oncall',
        continue: true,
        routes: [{ matchers: ['alertname=~"GPU.*|Xid.*"'], receiver: 'hw-oncall' }],
      },
      {
        matchers: ['team="ml"'],
        receiver: 'ml',
        routes: [{ matchers: ['tenant="b"'], receiver: 'b-only', group_by: ['alertname', 'tenant'] }],
      },
      { matchers: ['alertname="LossSpike"'], receiver: 'nowhere' },
      { matchers: ['team=~"infra|ml"'], receiver: 'infra' },
      { matchers: ['tenant!="a"', 'severity="info"'], receiver: 'not-a' },
    ],
  };
  const names = ['fallback', 'oncall', 'hw-oncall', 'ml', 'b-only', 'infra', 'not-a'];
  /** Each receiver a webhook to its own path of one local receiver; `nowhere` has no integration. */
  const receiversAt = (base: string) => [
    ...names.map((n) => ({ name: n, webhook_configs: [{ url: `${base}/${n}` }] })),
    { name: 'nowhere' },
  ];
  const labelsArb = fc.record({
    tenant: fc.constantFrom('a', 'b'),
    alertname: fc.constantFrom('TrainingStalled', 'GPUMemoryLeak', 'LossSpike', 'XidError'),
    severity: fc.constantFrom('critical', 'warning', 'info'),
    team: fc.constantFrom('ml', 'infra', 'data', undefined),
  });

  it("keeps a tenant's routing unchanged when the tree is cut to what the tenant can reach", () => {
    const root = buildRoute(
      alertingConfigSchema.parse({ route: routing, receivers: receiversAt('http://x') }).route,
    );
    expect(routesOfTenant(root, 'a').routes[1]!.routes).toEqual([]);
    expect(routesOfTenant(root, 'b').routes[1]!.routes).toHaveLength(1);
    fc.assert(
      fc.property(labelsArb, (l) => {
        const labels = Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) as Record<
          string,
          string
        >;
        const full = explainRoutes(root, labels).map((m) => m.path.map((r) => r.id));
        const cut = explainRoutes(routesOfTenant(root, labels.tenant!), labels).map((m) =>
          m.path.map((r) => r.id),
        );
        expect(cut).toEqual(full);
        expect(matchRoutes(root, labels).map((r) => r.id)).toEqual(full.map((p) => p.at(-1)));
      }),
    );
  });

  let stop: (() => Promise<void>) | undefined;
  afterAll(() => stop?.());

  it('names exactly the receivers and groups that real deliveries reach, for the same alerts', async () => {
    const hook = await startHttpReceiver();
    const meta = new MetaStore(path.join(tempDir('tw-route-test-'), 'meta.db'));
    const svc = createAlerting({
      config: alertingConfigSchema.parse({
        route: routing,
        receivers: receiversAt(hook.url),
      }),
      meta,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      listen: '127.0.0.1:9470',
    });
    await svc.start();
    stop = async () => {
      await svc.stop();
      meta.close();
      await hook.close();
    };

    const cases = fc.sample(labelsArb, { numRuns: 60, seed: 17 }).map((l, i) => {
      const labels = Object.fromEntries(
        Object.entries({ ...l, job_id: `job-${i}`, case: String(i) }).filter(([, v]) => v !== undefined),
      ) as Record<string, string>;
      return { labels, tested: testRoute(svc, labels.tenant!, labels, Date.now()) };
    });
    const expected = new Map<string, Set<string>>();
    for (const c of cases)
      for (const r of c.tested.routes)
        if (r.integrations.length > 0) expected.set(`${c.labels.case}@${r.receiver}`, new Set([r.groupKey]));
    // Some alerts reach several receivers, some only the default, some none (the receiver without integrations).
    expect(cases.some((c) => c.tested.receivers.length > 1)).toBe(true);
    expect(cases.some((c) => c.tested.receivers.includes('nowhere'))).toBe(true);

    const t = Date.now() - 1000;
    for (const c of cases) {
      const a: Alert = {
        labels: c.labels,
        annotations: { summary: 'route test' },
        state: 'firing',
        activeAtMs: t,
        firingAtMs: t,
        resolvedAtMs: null,
        fingerprint: fingerprint(c.labels),
        url: `/jobs/${c.labels.job_id}?t=${t}`,
        value: 1,
        source: 'detector',
        name: c.labels.alertname!,
        origin: 'test',
      };
      svc.hub.transition(a, 'firing');
    }
    const delivered = () => {
      const got = new Map<string, Set<string>>();
      for (const req of hook.received) {
        const body = req.body as { groupKey: string; alerts: { labels: Record<string, string> }[] };
        for (const a of body.alerts) {
          const key = `${a.labels.case}@${req.path.slice(1)}`;
          got.set(key, new Set([...(got.get(key) ?? []), body.groupKey]));
        }
      }
      return got;
    };
    await expect.poll(() => delivered().size, { timeout: 30_000 }).toBeGreaterThanOrEqual(expected.size);
    const got = delivered();
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, keys] of expected) expect(got.get(k), k).toEqual(keys);
  });
});
