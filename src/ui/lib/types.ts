/**
 * Shapes of trainwatch's APIs as the dashboard reads them. The query API's answers are written once, in
 * src/model/api-types.ts, which the server's query stage produces; the alerting answers, in
 * src/model/alerting-api.ts, which src/alerting produces. DOM-free, so that pure modules and tests can use them.
 */
import type { ApiSilence, ListedAlert, SilenceMatcher, SilenceState } from '../../model/alerting-api.js';
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

export type { AlertState, Severity } from '../../model/alerting-api.js';
/** An alert of trainwatch's list with history (GET /api/tw/v1/alerts). */
export type Alert = ListedAlert;
/** Alertmanager v2 matcher. */
export type Matcher = SilenceMatcher;
/**
 * Alertmanager v2 silence (GET /api/v2/silences), read leniently: an Alertmanager-compatible server may omit
 * `updatedAt` or add states; the list shows an unknown state as it comes.
 */
export type Silence = Omit<ApiSilence, 'status' | 'updatedAt'> & {
  readonly updatedAt?: string;
  readonly status: { readonly state: SilenceState | string };
};

export function toNumber(v: JsonSample | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  return v === 'NaN' ? Number.NaN : v === '+Inf' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
}
