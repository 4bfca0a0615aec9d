/**
 * What a detector may ask of the engine: raise or clear alerts (directly, or as one member of a job-level
 * alert that fires while any member's condition holds), read a series' newest sample, find a sibling series
 * (memory used → memory total), and read the job's state.
 */
import type { AlertRule, Severity } from '../../alerting/contract.js';
import type { LabelSet } from '../../model/labels.js';
import type { DetectorName } from './config.js';
import type { SeriesInfo } from './types.js';

export interface AlertIdentity {
  readonly fingerprint: string;
  readonly labels: LabelSet;
  readonly rule: AlertRule;
}

export interface DetectorContext {
  /** The identity of an alert: labels `alertname`, `severity`, `tenant` plus `labels`. */
  identity(
    origin: DetectorName | 'threshold',
    alertname: string,
    severity: Severity,
    forMs: number,
    keepFiringForMs: number,
    labels: LabelSet,
  ): AlertIdentity;
  activate(
    id: AlertIdentity,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
  ): void;
  deactivate(id: AlertIdentity, t: number): void;
  /** Ends the alert now, whatever `keep_firing_for` says (its series went away). */
  end(id: AlertIdentity, t: number): void;
  /** Whether the alert is pending or firing. */
  isOpen(id: AlertIdentity): boolean;
  /**
   * One member (a series) of a job-level alert: the alert is active while at least `quorum` members (default
   * one) are; its value is the largest member value.
   */
  member(
    id: AlertIdentity,
    memberKey: string,
    active: boolean,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
    quorum?: number,
  ): void;
  /** The engine's series `dref`. */
  info(dref: number): SeriesInfo;
  /** The member key of a series in job-level alerts: its identity string (stable across restarts). */
  memberKey(dref: number): string;
  /** Newest sample value of series `dref` (NaN before the first). */
  lastV(dref: number): number;
  /** Newest sample time of series `dref` (-Infinity before the first). */
  lastT(dref: number): number;
  /** The series with the same labels as `dref` but metric `name`, or -1 if the engine has not seen it. */
  sibling(dref: number, name: string): number;
  /** Changes whenever the engine learns a new series (a missing sibling may exist since). */
  readonly seriesGeneration: number;
  /** Changes whenever the engine forgets series (a series ref may belong to another series since). */
  readonly removalGeneration: number;
}

/** The series' labels without the metric name: what a series-level alert carries. */
export function seriesAlertLabels(series: SeriesInfo): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(series.labels)) if (k !== '__name__') out[k] = v;
  return out;
}

/** Only tenant and job id (and `extra`): the labels of a job-level alert. */
export function jobAlertLabels(
  series: SeriesInfo,
  extra: Record<string, string> = {},
): Record<string, string> {
  const out: Record<string, string> = { tenant: series.tenant };
  if (series.labels.job_id !== undefined) out.job_id = series.labels.job_id;
  for (const [k, v] of Object.entries(extra)) out[k] = v;
  return out;
}

/** Where a series is: node and rank (or GPU), for alerts that name the place. */
export function locationLabels(labels: LabelSet): Record<string, string> {
  const out: Record<string, string> = {};
  if (labels.node_id !== undefined) out.node_id = labels.node_id;
  if (labels.rank !== undefined) out.rank = labels.rank;
  else if (labels.gpu !== undefined) out.gpu = labels.gpu;
  return out;
}

export function describeWhere(labels: LabelSet): string {
  const parts: string[] = [];
  if (labels.rank !== undefined) parts.push(`rank ${labels.rank}`);
  if (labels.gpu !== undefined && labels.rank === undefined) parts.push(`GPU ${labels.gpu}`);
  if (labels.node_id !== undefined) parts.push(`on ${labels.node_id}`);
  if (labels.job_id !== undefined) parts.push(`of job ${labels.job_id}`);
  return parts.join(' ');
}
