/**
 * The notification page's data (the shapes of `/api/tw/v1/notifications/*`) and the pure logic it needs:
 * reading the label set a user types into the route tester, and judging an integration's delivery health.
 */

export interface RouteNode {
  id: string;
  receiver: string;
  matchers: string[];
  continue: boolean;
  groupBy: string[];
  groupWaitMs: number;
  groupIntervalMs: number;
  repeatIntervalMs: number;
  routes: RouteNode[];
}

export interface IntegrationHealth {
  delivered: number;
  failed: number;
  pending: number;
  retrying: number;
  lastDeliveredMs: number | null;
  lastFailureMs: number | null;
  lastError: string | null;
  meanLatencyMs: number | null;
  maxLatencyMs: number | null;
}

export interface ReceiverInfo {
  name: string;
  note?: string;
  integrations: {
    name: string;
    type: string;
    target: string;
    sendResolved: boolean;
    settings: Record<string, unknown>;
    health: IntegrationHealth | null;
  }[];
}

export interface RouteTestResult {
  labels: Record<string, string>;
  receivers: string[];
  routes: {
    receiver: string;
    routeId: string;
    path: { id: string; matchers: string[]; receiver: string }[];
    groupBy: string[];
    groupKey: string;
    groupWaitMs: number;
    groupIntervalMs: number;
    repeatIntervalMs: number;
    integrations: string[];
  }[];
  silencedBy: string[];
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'superseded';

export interface Delivery {
  id: number;
  receiver: string;
  integration: string;
  groupKey: string;
  summary: string;
  status: DeliveryStatus;
  attempts: number;
  lastError: string;
  createdMs: number;
  updatedMs: number;
  deliveredMs: number | null;
  nextAttemptMs: number | null;
  latencyMs: number | null;
  lastAttemptDurationMs: number | null;
}

export interface DeliveryPage {
  notifications: Delivery[];
  total: number;
  offset: number;
  limit: number;
}

/**
 * Labels as typed in the route tester, as amtool takes them: `severity=critical alertname="GPU Hot"`, or a
 * selector `{severity="critical", alertname=~...}` without regexes. Returns the labels or what is wrong.
 */
export function parseLabelInput(text: string): { labels: Record<string, string> } | { error: string } {
  let rest = text.trim();
  if (rest.startsWith('{')) {
    if (!rest.endsWith('}')) return { error: 'a selector must end with }' };
    rest = rest.slice(1, -1);
  }
  const labels: Record<string, string> = {};
  const pair = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?/;
  while (rest.trim() !== '') {
    const m = pair.exec(rest);
    if (!m) return { error: `cannot read ${JSON.stringify(rest.trim())}: expected name=value` };
    labels[m[1]!] = m[2] !== undefined ? (JSON.parse(`"${m[2]}"`) as string) : (m[3] ?? '');
    rest = rest.slice(m[0].length);
  }
  if (Object.keys(labels).length === 0) return { error: 'type at least one label, e.g. severity=critical' };
  return { labels };
}

export type HealthState = 'ok' | 'failing' | 'retrying' | 'idle';

/**
 * An integration's state: failing when its newest outcome is a failure (given up, or an attempt waiting for a
 * retry after the last success), retrying while attempts fail but none was given up since the last success.
 */
export function healthState(h: IntegrationHealth | null): HealthState {
  if (!h || (h.lastDeliveredMs === null && h.lastFailureMs === null)) return 'idle';
  if (h.lastFailureMs !== null && (h.lastDeliveredMs === null || h.lastFailureMs > h.lastDeliveredMs))
    return h.retrying > 0 && h.failed === 0 ? 'retrying' : 'failing';
  return 'ok';
}

/** `250ms`, `1.2s`, `4m 10s`, `4h`. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(s / 60);
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
