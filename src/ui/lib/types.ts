/**
 * Shapes of trainwatch's APIs as the dashboard reads them. The query API's answers are written once, in
 * src/model/api-types.ts, which the server's query stage produces; the alerting answers below are the
 * Alertmanager-compatible views of src/alerting. DOM-free, so that pure modules and tests can use them.
 */
import type { ColumnarSeries, JsonSample } from '../../model/api-types.js';

export type {
  Curve,
  FleetJob,
  JobStatus,
  JobSummary,
  JsonSample,
  JsonSpecial,
  RankStepTime,
  SpreadResponse,
  StragglerResponse,
} from '../../model/api-types.js';

/** A series as parallel arrays of times and values (GET /api/tw/v1/series). */
export type Series = ColumnarSeries;

export type AlertState = 'firing' | 'pending' | 'resolved';
export type Severity = 'critical' | 'warning' | 'info';

/** An alert of trainwatch's list with history (GET /api/tw/v1/alerts). */
export interface Alert {
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: AlertState;
  activeAtMs: number;
  firingAtMs: number | null;
  resolvedAtMs: number | null;
  value: number | string | null;
  source: 'detector' | 'rule' | string;
  name: string;
  url: string;
  /** Ids of the active silences that mute the alert (empty or absent: not silenced). */
  silencedBy?: readonly string[];
}

/** Alertmanager v2 matcher. */
export interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

/** Alertmanager v2 silence (GET /api/v2/silences). */
export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  updatedAt?: string;
  status: { state: 'active' | 'pending' | 'expired' | string };
}

export function toNumber(v: JsonSample | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  return v === 'NaN' ? Number.NaN : v === '+Inf' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
}
