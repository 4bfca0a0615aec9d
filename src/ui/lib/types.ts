/**
 * Shapes of trainwatch's APIs as the dashboard reads them. They mirror src/query (REST and dashboard
 * endpoints) and the alerting contract (src/alerting); DOM-free so that pure modules and tests can use them.
 */

export type JobStatus = 'queued' | 'running' | 'stalled' | 'completed' | 'failed' | 'unknown';
export type JsonSpecial = 'NaN' | '+Inf' | '-Inf';
export type JsonSample = number | JsonSpecial;

export interface JobSummary {
  tenant: string;
  jobId: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  worldSize: number | null;
  config: Record<string, unknown>;
  tags: string[];
  status: JobStatus;
  startMs: number | null;
  endMs: number | null;
  lastSampleMs: number | null;
  metricKeys: Record<string, string>;
  gpus: number;
  meanGpuUtilization: number | null;
  step: number | null;
  loss: JsonSample | null;
  samplesPerSecond: number | null;
  tokensPerSecond: number | null;
}

export interface FleetJob extends JobSummary {
  busyGpus: number;
  idleGpus: number;
}

export interface Series {
  labels: Record<string, string>;
  t: number[];
  v: JsonSample[];
}

export interface Curve extends Series {
  metric: string;
  /** The training step at each point; null without a train_step series. */
  step: (number | null)[] | null;
}

export interface SpreadResponse {
  metric: string;
  start: number;
  step: number;
  cols: number;
  series: number;
  t: number[];
  min: (number | null)[];
  max: (number | null)[];
  mean: (number | null)[];
  sum: (number | null)[];
  count: number[];
  /** With `stragglers=1`: the series scored on their recent level. */
  stragglers?: StragglerResponse;
}

export interface RankStepTime {
  labels: Record<string, string>;
  mean: number | null;
  z: number | null;
}

export interface StragglerResponse {
  metric: string;
  window: { start: number; end: number };
  medianSeconds: number | null;
  ranks: RankStepTime[];
  straggler: (RankStepTime & { slowdown: number | null }) | null;
}

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
