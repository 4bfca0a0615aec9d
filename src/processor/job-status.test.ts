import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Alert, AlertChange } from '../alerting/contract.js';
import { JobStore, MetaStore } from '../meta/index.js';
import { STALLED_JOB_ALERT, withJobStatusFromAlerts } from './job-status.js';

const T0 = 1_700_000_000_000;

function store(): JobStore {
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-job-status-')), 'meta.db'));
  return new JobStore(meta, 365 * 86_400_000);
}

function alert(name: string, labels: Record<string, string>, firingAtMs: number | null = T0): Alert {
  return {
    labels: { alertname: name, severity: 'critical', ...labels },
    annotations: {},
    state: firingAtMs === null ? 'pending' : 'firing',
    activeAtMs: T0 - 60_000,
    firingAtMs,
    resolvedAtMs: null,
    fingerprint: `${name}-${labels.job_id ?? ''}`,
    url: '',
    value: 90,
    source: 'detector',
    name,
    origin: 'stall',
  };
}

async function statusOf(jobs: JobStore, jobId: string): Promise<string | undefined> {
  await jobs.flush();
  return (await jobs.get('t1', jobId, T0))?.status;
}

describe('job status from the stall alert', () => {
  it('a running job is stalled while TrainingStalled fires, and running again once it resolves', async () => {
    const jobs = store();
    const seen: [string, AlertChange][] = [];
    const sink = withJobStatusFromAlerts({ transition: (a, c) => seen.push([a.name, c]) }, jobs);
    jobs.applyEvent('t1', { kind: 'start', jobId: 'j1', timeMs: T0 - 600_000 });
    expect(await statusOf(jobs, 'j1')).toBe('running');

    const stall = alert(STALLED_JOB_ALERT, { tenant: 't1', job_id: 'j1' });
    sink.transition({ ...stall, state: 'pending', firingAtMs: null }, 'pending');
    expect(await statusOf(jobs, 'j1')).toBe('running');
    sink.transition(stall, 'firing');
    expect(await statusOf(jobs, 'j1')).toBe('stalled');
    sink.transition({ ...stall, state: 'resolved', resolvedAtMs: T0 + 60_000 }, 'resolved');
    expect(await statusOf(jobs, 'j1')).toBe('running');
    // Every change still reached the hub, in order.
    expect(seen).toEqual([
      [STALLED_JOB_ALERT, 'pending'],
      [STALLED_JOB_ALERT, 'firing'],
      [STALLED_JOB_ALERT, 'resolved'],
    ]);
  });

  it('never changes a job that ended, nor for other alerts or alerts without a job', async () => {
    const jobs = store();
    const sink = withJobStatusFromAlerts({ transition: () => {} }, jobs);
    jobs.applyEvent('t1', { kind: 'start', jobId: 'done', timeMs: T0 - 600_000 });
    jobs.applyEvent('t1', { kind: 'finish', jobId: 'done', timeMs: T0 - 1000, status: 'failed' });
    sink.transition(alert(STALLED_JOB_ALERT, { tenant: 't1', job_id: 'done' }), 'firing');
    expect(await statusOf(jobs, 'done')).toBe('failed');

    jobs.applyEvent('t1', { kind: 'start', jobId: 'j2', timeMs: T0 - 600_000 });
    sink.transition(alert('ThroughputDegraded', { tenant: 't1', job_id: 'j2' }), 'firing');
    sink.transition(alert(STALLED_JOB_ALERT, { tenant: 't1' }), 'firing');
    expect(await statusOf(jobs, 'j2')).toBe('running');
  });
});
