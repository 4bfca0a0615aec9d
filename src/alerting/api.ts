/**
 * Alerting's HTTP API, every read and write scoped to the caller's tenant:
 *
 * - Prometheus-compatible: `GET /api/v1/alerts`, `GET /api/v1/rules` (Grafana and other Prometheus clients).
 * - trainwatch's own: `GET /api/tw/v1/alerts?state=&job_id=&since=&limit=` (open alerts and history),
 *   `GET /api/tw/v1/detectors` (each detector, its state and last evaluation), `GET /api/tw/v1/notifications`
 *   (delivery status of the outbox, for admins), and the routing API of `notifications-api.ts` (routes, route
 *   tester, receivers, delivery history).
 * - Alertmanager v2-shaped: `GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/<id>`, `GET /api/v2/alerts`.
 */
import type { FastifyInstance } from 'fastify';
import { requestPrincipal, setAuditTarget } from '../auth/index.js';
import { Errors, twError } from '../model/errors.js';
import { enumListParam, optionalTimeParam } from '../model/query-params.js';
import type { DetectorStatus } from './contract.js';
import type { AlertView } from './hub.js';
import { registerNotificationsApi } from './notifications-api.js';
import type { AlertState } from './notifier.js';
import { iso } from './notifiers/http.js';
import { parseMatcherList } from './parse.js';
import { scrubSecrets, secretStrings } from './receivers-view.js';
import { promFloatString } from './rules/format.js';
import type { AlertingService } from './service.js';
import { validateSilence } from './silences.js';

/** What the rule evaluator exposes to the API (src/alerting/rules). */
export interface RuleGroupsSource {
  groups(tenant: string): unknown[];
}

export interface AlertingApiDeps {
  readonly alerting: AlertingService;
  /** The processor's detector engine; undefined while (or when) this process runs no processor. */
  readonly detectors?: (tenant: string) => Promise<DetectorStatus[]> | DetectorStatus[] | undefined;
  readonly rules?: RuleGroupsSource;
}

/** In the order the 400 lists them. */
const STATES: readonly AlertState[] = ['firing', 'pending', 'resolved'];

export { promFloatString as promFloat } from './rules/format.js';

/** The contract's alert shape for `/api/tw/v1/alerts`. */
function twAlert(a: AlertView) {
  return {
    fingerprint: a.fingerprint,
    name: a.name,
    labels: a.labels,
    annotations: a.annotations,
    state: a.state,
    activeAtMs: a.activeAtMs,
    firingAtMs: a.firingAtMs,
    resolvedAtMs: a.resolvedAtMs,
    value: Number.isFinite(a.value) ? a.value : null,
    source: a.source,
    origin: a.origin,
    url: a.url,
    silencedBy: a.silencedBy,
  };
}

export function registerAlertingApi(app: FastifyInstance, deps: AlertingApiDeps): void {
  const { alerting } = deps;
  const secrets = secretStrings(alerting.config.receivers);
  registerNotificationsApi(app, alerting);

  app.get('/api/v1/alerts', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    return {
      status: 'success',
      data: {
        alerts: (await alerting.hub.listOpen(p.tenant)).map((a) => ({
          labels: a.labels,
          annotations: a.annotations,
          state: a.state,
          activeAt: new Date(a.activeAtMs).toISOString(),
          value: promFloatString(a.value),
        })),
      },
    };
  });

  app.get('/api/v1/rules', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | string[] | undefined>;
    let groups = (deps.rules?.groups(p.tenant) ?? []) as {
      rules: { type: string; name: string }[];
      name: string;
    }[];
    const type = typeof q.type === 'string' ? q.type : undefined;
    if (type !== undefined && type !== 'alert' && type !== 'record')
      throw twError(Errors.badRequest, `parameter type=${JSON.stringify(type)} must be alert or record`);
    const list = (v: string | string[] | undefined) =>
      v === undefined ? undefined : Array.isArray(v) ? v : [v];
    const names = list(q['rule_name[]'] ?? q.rule_name);
    const groupNames = list(q['rule_group[]'] ?? q.rule_group);
    groups = groups
      .filter((g) => !groupNames || groupNames.includes(g.name))
      .map((g) => ({
        ...g,
        rules: g.rules.filter(
          (r) =>
            (!type || (type === 'alert' ? r.type === 'alerting' : r.type === 'recording')) &&
            (!names || names.includes(r.name)),
        ),
      }))
      .filter((g) => g.rules.length > 0 || (!type && !names));
    return { status: 'success', data: { groups } };
  });

  app.get('/api/tw/v1/alerts', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | undefined>;
    const states = enumListParam(q.state, 'state', STATES);
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw twError(Errors.badRequest, 'parameter limit must be an integer from 1 to 10000');
    const alerts = await alerting.hub.query({
      tenant: p.tenant,
      ...(states ? { states } : {}),
      ...(q.job_id ? { jobId: q.job_id } : {}),
      ...(q.since !== undefined ? { sinceMs: optionalTimeParam(q.since, 'since') } : {}),
      limit,
    });
    return { status: 'success', data: { alerts: alerts.map(twAlert) } };
  });

  app.get('/api/tw/v1/detectors', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const open = (await alerting.hub.listOpen(p.tenant)).filter((a) => a.source === 'detector');
    // The engine's counts of this tenant only (issue 16, item 7: they used to span every tenant).
    const engine = await deps.detectors?.(p.tenant);
    const detectors = (engine ?? []).map((d) => {
      // Counts of this tenant's alerts; the engine's own alert counts span every tenant.
      const mine = open.filter((a) => a.origin === d.name);
      const firing = mine.filter((a) => a.state === 'firing').length;
      const pending = mine.length - firing;
      return {
        ...d,
        pending,
        firing,
        state: firing > 0 ? 'firing' : pending > 0 ? 'pending' : 'inactive',
        lastEvaluation: d.lastEvaluationMs === null ? null : new Date(d.lastEvaluationMs).toISOString(),
      };
    });
    return { status: 'success', data: { detectors, running: engine !== undefined } };
  });

  app.get('/api/tw/v1/notifications', { config: { permission: 'admin' } }, async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | undefined>;
    const limit = q.limit === undefined ? 200 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw twError(Errors.badRequest, 'parameter limit must be an integer from 1 to 10000');
    // The outbox is shared by every tenant: an admin sees the notifications of its own tenant only (issue
    // 16, item 7): those whose alerts all carry the tenant (`notificationTenant`). A group that mixes
    // tenants (a route grouping without `tenant`) is shown to nobody here.
    const { notifications } = await alerting.repository.deliveries({ tenant: p.tenant, offset: 0, limit });
    return {
      status: 'success',
      data: {
        notifications: notifications.map((n) => ({ ...n, lastError: scrubSecrets(n.lastError, secrets) })),
        groups: (alerting.dispatcher?.snapshot() ?? []).filter((g) => g.labels.tenant === p.tenant),
        receivers: [...alerting.integrations.entries()].map(([name, list]) => ({
          name,
          integrations: list.map((i) => i.name),
        })),
      },
    };
  });

  // ---- Alertmanager v2 -----------------------------------------------------------------------------------

  app.get('/api/v2/silences', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | string[] | undefined>;
    const filters = (Array.isArray(q.filter) ? q.filter : q.filter ? [q.filter] : []).flatMap((f) => {
      try {
        return parseMatcherList(f);
      } catch (err) {
        throw twError(Errors.badRequest, `filter: ${(err as Error).message}`);
      }
    });
    return alerting.silences.list(p.tenant, Date.now(), filters);
  });

  app.get('/api/v2/silence/:id', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    return alerting.silences.get(p.tenant, (req.params as { id: string }).id, Date.now());
  });

  app.post('/api/v2/silences', { config: { permission: 'edit', audit: 'silence.create' } }, async (req) => {
    const p = requestPrincipal(req);
    const input = validateSilence(req.body);
    const silenceID = await alerting.silences.upsert(p.tenant, input, Date.now());
    setAuditTarget(req, silenceID);
    return { silenceID };
  });

  app.delete(
    '/api/v2/silence/:id',
    { config: { permission: 'edit', audit: 'silence.expire' } },
    async (req) => {
      const p = requestPrincipal(req);
      await alerting.silences.expire(p.tenant, (req.params as { id: string }).id, Date.now());
      return {};
    },
  );

  app.get('/api/v2/alerts', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    return (await alerting.hub.listOpen(p.tenant))
      .filter((a) => a.state === 'firing')
      .map((a) => ({
        labels: a.labels,
        annotations: a.annotations,
        startsAt: iso(a.activeAtMs),
        endsAt: iso(a.resolvedAtMs),
        updatedAt: iso(Date.now()),
        fingerprint: a.fingerprint,
        generatorURL: `${alerting.externalUrl}${a.url}`,
        receivers: [],
        status: {
          state: a.silencedBy.length > 0 ? 'suppressed' : 'active',
          silencedBy: a.silencedBy,
          inhibitedBy: [],
        },
      }));
  });
}
