import { useCallback, useMemo, useState } from 'react';
import { type ApiError, fetchAlertHistory, type JobSummary } from '../api';
import type { ChartMarker, ChartSpan } from '../components/chart';
import type { HeatmapMarker } from '../components/heatmap';
import { type AlertGroup, groupAlerts } from '../lib/alert-groups';
import { alertName, alertStart, healthByJob, type JobHealth } from '../lib/alerts';
import {
  causeOfFailure,
  healthWithCauses,
  type JobCause,
  jobStatusOf,
  lastStepChange,
  stallStartOf,
} from '../lib/causes';
import { SEVERITY_COLORS } from '../lib/colors';
import { firedStalls, nanStepOf, orderAlertGroups, stallSpansOf, stepReferenceOf } from '../lib/job-view';
import { stepAtTime } from '../lib/live-merge';
import type { Alert, Curve, JobStatus } from '../lib/types';
import { usePoll } from './use-live';

/** A job's alerts: firing, pending, and resolved since `since`, polled every five seconds unless paused. */
export function useJobAlerts(
  jobId: string,
  since: number | null,
  paused: boolean,
): { alerts: readonly Alert[]; error: ApiError | null } {
  const [alerts, setAlerts] = useState<readonly Alert[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  usePoll(
    async (signal) => {
      if (since === null) return;
      try {
        const list = await fetchAlertHistory({ jobId, since }, signal);
        setAlerts(list);
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    paused ? 0 : 5000,
    [jobId, since, paused],
  );
  return { alerts, error };
}

export interface JobHealthView {
  readonly firing: readonly Alert[];
  readonly health: JobHealth | undefined;
  readonly status: JobStatus;
  /** Why the job failed (or hangs), from its alerts; null for none. */
  readonly cause: JobCause | null;
  /** Every alert of the job in the range (the ones that resolved as it died included), under their causes. */
  readonly alertGroups: readonly AlertGroup[];
  /** Stalls, shaded on the time charts. */
  readonly stallSpans: readonly ChartSpan[];
}

/** The job's health, status and cause of failure, read from its alerts and its loss curve. */
export function useJobHealth(
  job: JobSummary | null,
  alerts: readonly Alert[],
  curves: readonly Curve[],
  now: number,
): JobHealthView {
  const firing = useMemo(() => alerts.filter((a) => a.state === 'firing'), [alerts]);
  const stepRef = useMemo(() => stepReferenceOf(curves), [curves]);
  const nanStep = useMemo(() => nanStepOf(curves), [curves]);
  const healthMap = useMemo(() => {
    if (!job) return new Map<string, JobHealth>();
    const key = `${job.tenant}/${job.jobId}`;
    return healthWithCauses(
      healthByJob(alerts, job.tenant),
      [job],
      alerts,
      job.tenant,
      new Map([[key, nanStep]]),
    );
  }, [alerts, job, nanStep]);
  const health = job ? healthMap.get(`${job.tenant}/${job.jobId}`) : undefined;
  const status: JobStatus = job ? jobStatusOf(job, healthMap) : 'unknown';
  // When the step last moved before each stall alert fired: the stall began there, not when the detector's
  // threshold ran out minutes later.
  const stallStart = useCallback(
    (a: Alert) => (stepRef ? lastStepChange(stepRef, a.activeAtMs) : null) ?? stallStartOf(a, now),
    [stepRef, now],
  );
  const cause = useMemo(() => {
    if (!job) return null;
    const stall = firedStalls(alerts)[0];
    return causeOfFailure(job, alerts, nanStep, stall ? stallStart(stall) : null);
  }, [job, alerts, nanStep, stallStart]);
  const jobId = job?.jobId;
  const alertGroups = useMemo(
    () => orderAlertGroups(groupAlerts(alerts.filter((a) => a.labels.job_id === jobId)), cause),
    [alerts, jobId, cause],
  );
  const stallSpans = useMemo(() => stallSpansOf(alerts, stallStart, now), [alerts, now, stallStart]);
  return { firing, health, status, cause, alertGroups, stallSpans };
}

export interface AlertMarkers {
  /** On time axes: each alert's start, and the moment a link pointed at. */
  readonly time: readonly ChartMarker[];
  /** The same on step axes (where the step at that time is known). */
  readonly step: readonly ChartMarker[];
  readonly heat: readonly HeatmapMarker[];
}

/** Markers of the job's alerts (and the linked moment `centre`) for charts and heatmaps. */
export function useAlertMarkers(
  alerts: readonly Alert[],
  centre: number | null,
  curves: readonly Curve[],
): AlertMarkers {
  const stepRef = useMemo(() => stepReferenceOf(curves), [curves]);
  const time = useMemo(() => {
    const ms: ChartMarker[] = alerts
      .filter((a) => a.state !== 'pending')
      .map((a) => ({
        x: alertStart(a),
        color: SEVERITY_COLORS[a.labels.severity ?? ''] ?? '#999',
        label: alertName(a),
      }));
    if (centre !== null && Number.isFinite(centre))
      ms.push({
        x: centre,
        color: getComputedStyle(document.documentElement).getPropertyValue('--accent').trim(),
        label: 'linked moment',
      });
    return ms;
  }, [alerts, centre]);
  const step = useMemo(
    () =>
      stepRef
        ? time.flatMap((m) => {
            const s = stepAtTime(stepRef, m.x);
            return s === null ? [] : [{ ...m, x: s }];
          })
        : [],
    [time, stepRef],
  );
  const heat = useMemo(() => time.map((m) => ({ t: m.x, color: m.color, label: m.label })), [time]);
  return { time, step, heat };
}
