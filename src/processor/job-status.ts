/**
 * A job's `stalled` status, from the alert that says so. DESIGN.md lists `stalled` among a job's statuses; the
 * stall detector (TrainingStalled: no step progress while the job's processes still report) is what knows it.
 * So the processor turns that alert's changes into ordinary job `update` events: `stalled` when it fires,
 * `running` again when it resolves. They go through the job store like the SDK's events, in the processor that
 * owns the job's partition, so the status is stored with the job's other metadata, is the same for every
 * reader (the jobs API's `status=stalled` filter, the fleet page) and survives restarts. A final status
 * (completed, failed) is never overwritten: `applyJobEvent` ignores updates once a job has ended.
 */
import type { Alert, AlertChange, AlertSink } from '../alerting/contract.js';
import type { JobEvent } from '../model/job.js';

/** The alert whose firing makes a running job `stalled` (the stall detector's, src/processor/detectors). */
export const STALLED_JOB_ALERT = 'TrainingStalled';

/** Where the status goes: the processor's job store (its `applyEvent`). */
export interface JobEventSink {
  applyEvent(tenant: string, ev: JobEvent): void;
}

/**
 * `sink` with job statuses kept from its stall alerts. Every change still reaches `sink` first, unchanged;
 * only alerts named {@link STALLED_JOB_ALERT} that carry `tenant` and `job_id` labels touch the job.
 */
export function withJobStatusFromAlerts(sink: AlertSink, jobs: JobEventSink): AlertSink {
  const out: AlertSink = {
    transition(alert: Alert, change: AlertChange): void {
      sink.transition(alert, change);
      if (alert.name !== STALLED_JOB_ALERT) return;
      const tenant = alert.labels.tenant;
      const jobId = alert.labels.job_id;
      if (!tenant || !jobId) return;
      if (change === 'firing') {
        jobs.applyEvent(tenant, {
          kind: 'update',
          jobId,
          timeMs: alert.firingAtMs ?? alert.activeAtMs,
          status: 'stalled',
        });
      } else if (change === 'resolved') {
        jobs.applyEvent(tenant, {
          kind: 'update',
          jobId,
          timeMs: alert.resolvedAtMs ?? alert.activeAtMs,
          status: 'running',
        });
      }
    },
  };
  if (sink.value) {
    const value = sink.value.bind(sink);
    return { ...out, value };
  }
  return out;
}
