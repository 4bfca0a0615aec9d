/**
 * The alerts page's pure logic: counts per state, the state filter and sort, groups of related alerts in
 * the order of their causes, which silence mutes an alert, silences in list order, the silence form's
 * checks, and detectors' last evaluation. DOM-free, so unit tests run it in Node.
 */
import { type AlertGroup, groupAlerts } from './alert-groups.js';
import { alertStart, isSilenced, matchersMatch, severityLevel } from './alerts.js';
import type { Alert, Matcher, Silence } from './types.js';

/** The alert-state filter of the list: `active` is firing and pending. */
export type StateFilter = 'active' | 'firing' | 'pending' | 'resolved' | 'all';

export interface AlertCounts {
  firing: number;
  pending: number;
  resolved: number;
  /** Firing or pending, and silenced: counted apart, as a silence says "known, leave it". */
  silenced: number;
}

export function alertCounts(alerts: readonly Alert[]): AlertCounts {
  const c: AlertCounts = { firing: 0, pending: 0, resolved: 0, silenced: 0 };
  for (const a of alerts) {
    if (a.state !== 'resolved' && isSilenced(a)) c.silenced++;
    else c[a.state]++;
  }
  return c;
}

/** The alerts the filter keeps: active ones first, then by severity, then the newest. */
export function shownAlerts(alerts: readonly Alert[], filter: string): Alert[] {
  return alerts
    .filter((a) =>
      filter === 'all' ? true : filter === 'active' ? a.state !== 'resolved' : a.state === filter,
    )
    .sort(
      (a, b) =>
        Number(a.state === 'resolved') - Number(b.state === 'resolved') ||
        severityLevel(b.labels.severity) - severityLevel(a.labels.severity) ||
        alertStart(b) - alertStart(a),
    );
}

/** Related alerts under their likely cause (alert-groups.ts); groups in the order of their causes in `shown`. */
export function groupsInOrder(shown: readonly Alert[]): AlertGroup[] {
  const order = new Map(shown.map((a, i) => [a, i]));
  return groupAlerts(shown).sort((a, b) => order.get(a.cause)! - order.get(b.cause)!);
}

/** A group's identity across refreshes (its cause's episode and state). */
export function groupKey(g: AlertGroup): string {
  return `${g.cause.fingerprint}/${g.cause.activeAtMs}/${g.cause.state}`;
}

/** An alert the server says is silenced by a silence this page has not loaded (yet). */
export const SILENCED_ELSEWHERE: Silence = {
  id: '',
  matchers: [],
  startsAt: '',
  endsAt: '',
  createdBy: '',
  comment: '',
  status: { state: 'active' },
};

/** The loaded active silence that mutes the alert, SILENCED_ELSEWHERE when only the server knows it, or none. */
export function silenceOf(a: Alert, silences: readonly Silence[]): Silence | undefined {
  return (
    silences.find((s) => s.status.state === 'active' && matchersMatch(s.matchers, a.labels)) ??
    (isSilenced(a) ? SILENCED_ELSEWHERE : undefined)
  );
}

export function matcherOp(m: Pick<Matcher, 'isEqual' | 'isRegex'>): '=' | '!=' | '=~' | '!~' {
  return m.isEqual === false ? (m.isRegex ? '!~' : '!=') : m.isRegex ? '=~' : '=';
}

export function matcherText(m: Matcher): string {
  return `${m.name}${matcherOp(m)}"${m.value}"`;
}

/** Silences as listed: active, pending, expired, then the rest; the latest end first. */
export function sortSilences(silences: readonly Silence[]): Silence[] {
  const order: Record<string, number> = { active: 0, pending: 1, expired: 2 };
  return [...silences].sort(
    (a, b) =>
      (order[a.status.state] ?? 3) - (order[b.status.state] ?? 3) ||
      Date.parse(b.endsAt) - Date.parse(a.endsAt),
  );
}

/**
 * Whether the silence form can be sent: at least one matcher, every one named, one that matches something
 * (a value or a regex: an all-empty silence would mute everything), a comment and an author.
 */
export function silenceFormValid(matchers: readonly Matcher[], comment: string, createdBy: string): boolean {
  return (
    matchers.length > 0 &&
    matchers.every((m) => m.name.trim() !== '') &&
    matchers.some((m) => m.value !== '' || m.isRegex) &&
    comment.trim() !== '' &&
    createdBy.trim() !== ''
  );
}

/** A detector's last evaluation (ms), from `lastEvaluationMs` or an RFC 3339 `lastEvaluation`; null: never. */
export function detectorLastEvaluation(d: Readonly<Record<string, unknown>>): number | null {
  const v = d.lastEvaluationMs ?? d.lastEvaluation;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Date.parse(v) || null;
  return null;
}

const DETECTOR_MAIN = new Set([
  'name',
  'state',
  'lastEvaluation',
  'lastEvaluationMs',
  'description',
  'enabled',
]);

/** The detector's other fields, one line: what its own columns do not show. */
export function detectorDetails(d: Readonly<Record<string, unknown>>): string {
  return Object.entries(d)
    .filter(([k]) => !DETECTOR_MAIN.has(k))
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' · ');
}
