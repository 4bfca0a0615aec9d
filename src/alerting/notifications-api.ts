/**
 * The notification routing API, per tenant, as a platform engineer coming from Alertmanager expects it:
 *
 * - `GET  /api/tw/v1/notifications/routes`: the routing tree (the part of it the tenant's alerts can reach);
 * - `POST /api/tw/v1/notifications/routes/test` `{"labels": {...}}`: which routes and receivers an alert with
 *   these labels would take, and the path through the tree (`amtool config routes test`);
 * - `GET  /api/tw/v1/notifications/receivers`: the receivers those routes name, each integration with its
 *   settings (secrets removed: `receivers-view.ts`) and its delivery health;
 * - `GET  /api/tw/v1/notifications/history?receiver=&integration=&status=&since=&until=&offset=&limit=`: the
 *   tenant's deliveries from the outbox, newest first, with attempts, status, last error and latency.
 *
 * Permission: `read`. Whoever can see a tenant's alerts needs to know where they go and whether they got
 * there ("why was I not paged?" is a question for the on-call engineer, not only for admins), as Alertmanager's
 * own UI shows its configuration to anyone who can see its alerts. What made the configuration admin-only
 * material is its secrets, and none leaves the server: settings are redacted field by field, and texts that
 * came back from receivers (errors) are scrubbed of every configured secret. The tenant comes from the
 * credentials: routes that refuse the tenant's label, receivers only they name, and deliveries of other
 * tenants' groups are never shown.
 */
import type { FastifyInstance } from 'fastify';
import { requestPrincipal } from '../auth/index.js';
import { Errors, twError } from '../model/errors.js';
import type { LabelSet } from '../model/labels.js';
import { enumListParam, optionalTimeParam } from '../model/query-params.js';
import { DEFAULT_RECEIVER } from './config.js';
import { type IntegrationView, receiverView, SECRET, scrubSecrets, secretStrings } from './receivers-view.js';
import type { IntegrationHealth, NotificationRecord, NotificationStatus } from './records.js';
import {
  explainRoutes,
  groupKeyOf,
  groupLabelsOf,
  type Route,
  receiversOf,
  routesOfTenant,
} from './routing.js';
import type { AlertingService } from './service.js';

const STATUSES: readonly NotificationStatus[] = ['pending', 'delivered', 'failed', 'superseded'];
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_TEST_LABELS = 100;

export interface RouteView {
  readonly id: string;
  readonly receiver: string;
  readonly matchers: string[];
  readonly continue: boolean;
  /** `['...']`: one group per alert. */
  readonly groupBy: string[];
  readonly groupWaitMs: number;
  readonly groupIntervalMs: number;
  readonly repeatIntervalMs: number;
  readonly routes: RouteView[];
}

export function routeView(r: Route): RouteView {
  return {
    id: r.id,
    receiver: r.receiver,
    matchers: r.matchers.map(String),
    continue: r.continue,
    groupBy: r.groupBy === 'all' ? ['...'] : [...r.groupBy],
    groupWaitMs: r.groupWaitMs,
    groupIntervalMs: r.groupIntervalMs,
    repeatIntervalMs: r.repeatIntervalMs,
    routes: r.routes.map(routeView),
  };
}

/** A delivery as the history shows it: texts scrubbed, latency (queued to delivered) computed. */
export function deliveryView(n: NotificationRecord, secrets: readonly string[]) {
  return {
    id: n.id,
    receiver: n.receiver,
    integration: n.integration,
    groupKey: scrubSecrets(n.groupKey, secrets),
    summary: scrubSecrets(n.summary, secrets),
    status: n.status,
    attempts: n.attempts,
    lastError: scrubSecrets(n.lastError, secrets),
    createdMs: n.createdMs,
    updatedMs: n.updatedMs,
    deliveredMs: n.deliveredMs,
    nextAttemptMs: n.status === 'pending' ? n.nextAttemptMs : null,
    latencyMs: n.deliveredMs === null ? null : n.deliveredMs - n.createdMs,
    lastAttemptDurationMs: n.lastAttemptDurationMs,
  };
}

function intParam(raw: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw twError(Errors.badRequest, `parameter ${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** The labels of a route test: an object of string values with valid names, the tenant's own. */
export function testLabels(body: unknown, tenant: string): LabelSet {
  const labels = (body as { labels?: unknown } | null)?.labels;
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels))
    throw twError(Errors.badRequest, 'body must be {"labels": {"name": "value", ...}}');
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > MAX_TEST_LABELS)
    throw twError(Errors.badRequest, `labels: at most ${MAX_TEST_LABELS} labels`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!LABEL_NAME.test(name))
      throw twError(Errors.badRequest, `labels: ${JSON.stringify(name)} is not a valid label name`);
    if (typeof value !== 'string')
      throw twError(Errors.badRequest, `labels.${name} must be a string, not ${JSON.stringify(value)}`);
    out[name] = value;
  }
  if (out.tenant !== undefined && out.tenant !== tenant)
    throw twError(
      Errors.badRequest,
      `labels.tenant is ${JSON.stringify(out.tenant)}, but your alerts carry tenant ${JSON.stringify(tenant)}: leave it out or set it to your tenant`,
    );
  // Every alert carries its tenant label (the hub sets it): so must the test alert, for tenant matchers.
  out.tenant = tenant;
  return out;
}

/**
 * Where an alert of `tenant` with `labels` would go: the routes it takes (each with its path from the root,
 * grouping and timings), the receivers in order, and the silences that would hold it back now. Routed by
 * `explainRoutes`, the walk the dispatcher routes with.
 */
export function testRoute(
  alerting: Pick<AlertingService, 'route' | 'integrations' | 'silences'>,
  tenant: string,
  labels: LabelSet,
  nowMs: number,
) {
  const matches = explainRoutes(routesOfTenant(alerting.route, tenant), labels).map((m) => {
    const groupLabels = groupLabelsOf(m.route, labels);
    return {
      receiver: m.route.receiver,
      routeId: m.route.id,
      path: m.path.map((r) => ({ id: r.id, matchers: r.matchers.map(String), receiver: r.receiver })),
      groupBy: m.route.groupBy === 'all' ? ['...'] : [...m.route.groupBy],
      groupLabels,
      groupKey: groupKeyOf(m.route, groupLabels),
      groupWaitMs: m.route.groupWaitMs,
      groupIntervalMs: m.route.groupIntervalMs,
      repeatIntervalMs: m.route.repeatIntervalMs,
      // The dispatcher sends nothing through a receiver without integrations (the default one).
      integrations: (alerting.integrations.get(m.route.receiver) ?? []).map((i) => i.name),
    };
  });
  return {
    labels,
    receivers: [...new Set(matches.map((m) => m.receiver))],
    routes: matches,
    // A firing alert with these labels would be held back by these silences now.
    silencedBy: alerting.silences.mutedBy(labels, nowMs),
  };
}

export function registerNotificationsApi(app: FastifyInstance, alerting: AlertingService): void {
  const secrets = secretStrings(alerting.config.receivers);
  const configured = new Map(alerting.config.receivers.map((r) => [r.name, r]));

  app.get('/api/tw/v1/notifications/routes', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const tree = routesOfTenant(alerting.route, p.tenant);
    return { status: 'success', data: { route: routeView(tree), receivers: receiversOf(tree) } };
  });

  app.post('/api/tw/v1/notifications/routes/test', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const labels = testLabels(req.body, p.tenant);
    return { status: 'success', data: testRoute(alerting, p.tenant, labels, Date.now()) };
  });

  app.get('/api/tw/v1/notifications/receivers', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const tree = routesOfTenant(alerting.route, p.tenant);
    const health = await alerting.repository.deliveryHealth(p.tenant);
    const healthOf = (receiver: string, integration: string): IntegrationHealth | null =>
      health.find((h) => h.receiver === receiver && h.integration === integration) ?? null;
    const receivers = receiversOf(tree).map((name) => {
      const cfg = configured.get(name);
      const integrations: (IntegrationView & { health: IntegrationHealth | null })[] = (
        cfg ? receiverView(cfg).integrations : []
      ).map((i) => {
        const h = healthOf(name, i.name);
        return { ...i, health: h && { ...h, lastError: h.lastError && scrubSecrets(h.lastError, secrets) } };
      });
      return {
        name,
        integrations,
        ...(name === DEFAULT_RECEIVER && !cfg
          ? {
              note: 'No receiver is configured (alerting.route.receiver): alerts are shown, nothing is sent.',
            }
          : {}),
      };
    });
    return { status: 'success', data: { receivers, secret: SECRET } };
  });

  app.get('/api/tw/v1/notifications/history', { config: { permission: 'read' } }, async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | undefined>;
    const statuses = enumListParam(q.status, 'status', STATUSES);
    const offset = intParam(q.offset, 'offset', 0, 0, 1_000_000);
    const limit = intParam(q.limit, 'limit', 50, 1, 1000);
    const sinceMs = optionalTimeParam(q.since, 'since');
    const untilMs = optionalTimeParam(q.until, 'until');
    const page = await alerting.repository.deliveries({
      tenant: p.tenant,
      ...(q.receiver ? { receiver: q.receiver } : {}),
      ...(q.integration ? { integration: q.integration } : {}),
      ...(statuses ? { statuses } : {}),
      ...(sinceMs !== undefined ? { sinceMs } : {}),
      ...(untilMs !== undefined ? { untilMs } : {}),
      offset,
      limit,
    });
    return {
      status: 'success',
      data: {
        notifications: page.notifications.map((n) => deliveryView(n, secrets)),
        total: page.total,
        offset,
        limit,
      },
    };
  });
}
