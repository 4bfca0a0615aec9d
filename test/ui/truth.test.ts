/**
 * Issue 17: the dashboard tells the truth. A failed job names its cause from the alerts that were firing
 * when it ended; a hung job is `stalled`; "GPUs alerting" counts the GPUs alerts name; silenced alerts stop
 * counting; related alerts fold under their likely cause; "previous runs" are runs of the same model.
 */
import { describe, expect, it } from 'vitest';
import { groupAlerts } from '../../src/ui/lib/alert-groups.js';
import { healthByJob } from '../../src/ui/lib/alerts.js';
import {
  causeOfFailure,
  fmtSpan,
  healthWithCauses,
  jobStatusOf,
  lastStepChange,
  statusLine,
} from '../../src/ui/lib/causes.js';
import { filterJobs, fleetTotals } from '../../src/ui/lib/fleet.js';
import { configSimilarity, previousRuns } from '../../src/ui/lib/previous-runs.js';
import type { Alert, FleetJob } from '../../src/ui/lib/types.js';

const MIN = 60_000;

function alert(
  name: string,
  labels: Record<string, string>,
  over: Partial<Alert> & { at?: number } = {},
): Alert {
  const at = over.at ?? 0;
  return {
    fingerprint: `${name}${JSON.stringify(labels)}`,
    labels: { alertname: name, severity: 'warning', tenant: 'default', ...labels },
    annotations: {},
    state: 'firing',
    activeAtMs: at,
    firingAtMs: at,
    resolvedAtMs: null,
    value: 1,
    source: 'detector',
    name,
    url: '',
    ...over,
  };
}

function job(id: string, over: Partial<FleetJob> = {}): FleetJob {
  return {
    tenant: 'default',
    jobId: id,
    name: id,
    project: 'p',
    owner: 'ann',
    framework: 'pytorch',
    worldSize: 8,
    config: {},
    tags: [],
    status: 'running',
    startMs: 0,
    endMs: null,
    lastSampleMs: 0,
    metricKeys: {},
    gpus: 8,
    meanGpuUtilization: 0.9,
    step: 1,
    loss: 1,
    samplesPerSecond: null,
    tokensPerSecond: null,
    busyGpus: 8,
    idleGpus: 0,
    ...over,
  };
}

describe('the cause of a failed job', () => {
  const end = 40 * MIN;
  it('names divergence, out of memory and hangs from the alerts firing when the job ended', () => {
    const nan = alert(
      'TrainingNaN',
      { job_id: 'bert', metric: 'train_loss', severity: 'critical' },
      {
        at: 10 * MIN,
        state: 'resolved',
        resolvedAtMs: end + 5_000,
        annotations: { summary: 'train_loss is NaN: the run has diverged' },
      },
    );
    const bert = job('bert', { status: 'failed', endMs: end, lastSampleMs: end });
    const cause = causeOfFailure(bert, [nan], 1503);
    expect(cause?.kind).toBe('diverged');
    expect(statusLine(bert, cause)).toBe('failed — diverged (NaN loss at step 1503)');

    const leak = alert(
      'GPUMemoryLeak',
      { job_id: 'oom', rank: '7', node_id: 'n0', gpu: '7' },
      { at: 20 * MIN, state: 'resolved', resolvedAtMs: end },
    );
    const oom = job('oom', { status: 'failed', endMs: end });
    expect(statusLine(oom, causeOfFailure(oom, [leak]))).toBe('failed — out of memory on rank 7');

    const stall = alert(
      'TrainingStalled',
      { job_id: 'hang' },
      { at: end - 26 * MIN, state: 'resolved', resolvedAtMs: end },
    );
    const hang = job('hang', { status: 'failed', endMs: end });
    expect(statusLine(hang, causeOfFailure(hang, [stall]))).toBe('failed — hung 26 min');
  });

  it('ignores alerts that resolved long before the end, other jobs’ alerts, and jobs that did not fail', () => {
    const early = alert('TrainingNaN', { job_id: 'a' }, { at: 0, state: 'resolved', resolvedAtMs: 5 * MIN });
    const other = alert('TrainingNaN', { job_id: 'b' }, { at: 0 });
    const a = job('a', { status: 'failed', endMs: end });
    expect(causeOfFailure(a, [early, other])).toBeNull();
    expect(statusLine(a, null)).toBe('failed');
    expect(
      causeOfFailure(job('a', { status: 'completed', endMs: end }), [alert('TrainingNaN', { job_id: 'a' })]),
    ).toBeNull();
  });

  it('picks the root cause when several fired: hardware, then memory, divergence, hang, then severity', () => {
    const f = job('j', { status: 'failed', endMs: end });
    const stall = alert('TrainingStalled', { job_id: 'j', severity: 'critical' }, { at: 5 * MIN });
    const xid = alert('GPUXidError', { job_id: 'j', node_id: 'n1', gpu: '3' }, { at: 6 * MIN });
    const leak = alert('GPUMemoryLeak', { job_id: 'j', rank: '2' }, { at: 1 * MIN });
    const strag = alert('TrainingStraggler', { job_id: 'j', rank: '2', severity: 'critical' }, { at: 0 });
    expect(causeOfFailure(f, [stall, strag, xid, leak])?.alert).toBe(xid);
    expect(causeOfFailure(f, [stall, strag, leak])?.alert).toBe(leak);
    expect(causeOfFailure(f, [stall, strag])?.alert).toBe(stall);
    expect(causeOfFailure(f, [strag])?.text).toBe('TrainingStraggler on rank 2');
  });

  it('makes the cause the failed job’s health, so that a dead job never reads "healthy"', () => {
    const f = job('bert', { status: 'failed', endMs: end });
    const alerts = [
      alert(
        'TrainingNaN',
        { job_id: 'bert', severity: 'critical' },
        { at: MIN, state: 'resolved', resolvedAtMs: end },
      ),
    ];
    const health = healthWithCauses(healthByJob(alerts, 'default'), [f], alerts, 'default');
    expect(health.get('default/bert')).toMatchObject({ critical: 1, worst: 3 });
    expect(health.get('default/bert')?.cause?.kind).toBe('diverged');
  });

  it('counts a hang from when the step last moved, not from when the detector noticed', () => {
    const curve = { t: [0, MIN, 2 * MIN, 3 * MIN, 9 * MIN], step: [10, 20, 30, 30, 30] };
    expect(lastStepChange(curve, 8 * MIN)).toBe(2 * MIN);
    expect(lastStepChange({ t: [0], step: null }, MIN)).toBeNull();
    const stall = alert(
      'TrainingStalled',
      { job_id: 'h' },
      { at: 7 * MIN, state: 'resolved', resolvedAtMs: 28 * MIN },
    );
    const hung = job('h', { status: 'failed', endMs: 28 * MIN });
    expect(causeOfFailure(hung, [stall], null, lastStepChange(curve, 7 * MIN))?.text).toBe('hung 26 min');
  });

  it('reads when a hang began from the stall alert’s value (seconds since the step moved)', () => {
    const end = 40 * MIN;
    const stall = alert(
      'TrainingStalled',
      { job_id: 'h' },
      { at: end - 21 * MIN, state: 'resolved', resolvedAtMs: end, value: 26 * 60 },
    );
    expect(causeOfFailure(job('h', { status: 'failed', endMs: end }), [stall])?.text).toBe('hung 26 min');
  });

  it('formats spans in minutes', () => {
    expect(fmtSpan(26 * MIN + 10_000)).toBe('26 min');
    expect(fmtSpan(42_000)).toBe('42 s');
    expect(fmtSpan(95 * MIN)).toBe('1 h 35 min');
  });
});

describe('a hung job is stalled', () => {
  const none = { q: '', status: '', tenant: '', owner: '', tag: '', alerting: false } as const;
  it('is stalled while TrainingStalled fires and running again once it resolves', () => {
    const jobs = [job('hang'), job('ok')];
    const firing = healthByJob([alert('TrainingStalled', { job_id: 'hang' })], 'default');
    expect(jobStatusOf(jobs[0]!, firing)).toBe('stalled');
    expect(filterJobs(jobs, { ...none, status: 'stalled' }, firing).map((j) => j.jobId)).toEqual(['hang']);
    expect(filterJobs(jobs, { ...none, status: 'running' }, firing).map((j) => j.jobId)).toEqual(['ok']);
    const resolved = healthByJob(
      [alert('TrainingStalled', { job_id: 'hang' }, { state: 'resolved', resolvedAtMs: MIN })],
      'default',
    );
    expect(jobStatusOf(jobs[0]!, resolved)).toBe('running');
    // A pending stall is not yet a stall.
    const pending = healthByJob(
      [alert('TrainingStalled', { job_id: 'hang' }, { state: 'pending', firingAtMs: null })],
      'default',
    );
    expect(jobStatusOf(jobs[0]!, pending)).toBe('running');
  });
});

describe('GPUs alerting', () => {
  it('counts the GPUs alerts name, and a job’s GPUs only for its job-level alerts', () => {
    const jobs = [job('a', { gpus: 16 }), job('b', { gpus: 8 }), job('c', { gpus: 8 })];
    const alerts = [
      // One hot GPU in a: its throttling, temperature, straggler and the job's throughput are one GPU.
      alert('GPUThrottled', { job_id: 'a', rank: '3', node_id: 'n0', gpu: '3' }),
      alert('GPUTemperatureHigh', { job_id: 'a', rank: '3', node_id: 'n0', gpu: '3' }),
      alert('TrainingStraggler', { job_id: 'a', rank: '3' }),
      alert('ThroughputDegraded', { job_id: 'a' }),
      // Two ranks of b leak memory.
      alert('GPUMemoryLeak', { job_id: 'b', rank: '1' }),
      alert('GPUMemoryLeak', { job_id: 'b', rank: '5' }),
      // c diverged: the whole job.
      alert('TrainingNaN', { job_id: 'c', severity: 'critical' }),
    ];
    expect(fleetTotals(jobs, healthByJob(alerts, 'default'))).toMatchObject({
      alertingGpus: 1 + 2 + 8,
      alertingJobs: 3,
    });
  });
});

describe('silenced alerts', () => {
  it('are not counted in a job’s health but shown apart', () => {
    const h = healthByJob(
      [
        alert('GPUThrottled', { job_id: 'a', rank: '1', severity: 'critical' }, { silencedBy: ['s1'] }),
        alert('TrainingStraggler', { job_id: 'a', rank: '1' }),
      ],
      'default',
    ).get('default/a');
    expect(h).toMatchObject({ critical: 0, warning: 1, worst: 2, silenced: 1 });
    expect(h?.alerts.map((a) => a.name)).toEqual(['TrainingStraggler']);
    const all = healthByJob([alert('X', { job_id: 'b' }, { silencedBy: ['s2'] })], 'default');
    const totals = fleetTotals([job('b')], all);
    expect(totals).toMatchObject({ alertingGpus: 0, alertingJobs: 0 });
    const none = { q: '', status: '', tenant: '', owner: '', tag: '', alerting: true } as const;
    expect(filterJobs([job('b')], none, all)).toEqual([]);
  });
});

describe('related alerts fold under their likely cause', () => {
  it('puts the GPU alert first and its consequences beneath it', () => {
    const temp = alert(
      'GPUTemperatureHigh',
      { job_id: 'a', rank: '3', node_id: 'n0', gpu: '3' },
      { at: 2 * MIN },
    );
    const thr = alert('GPUThrottled', { job_id: 'a', rank: '3', node_id: 'n0', gpu: '3' }, { at: 1 * MIN });
    const strag = alert('TrainingStraggler', { job_id: 'a', rank: '3' }, { at: 3 * MIN });
    const tput = alert('ThroughputDegraded', { job_id: 'a' }, { at: 4 * MIN });
    const elsewhere = alert('TrainingStraggler', { job_id: 'a', rank: '5' }, { at: 3 * MIN });
    const otherJob = alert('ThroughputDegraded', { job_id: 'b' }, { at: 4 * MIN });
    const groups = groupAlerts([tput, strag, elsewhere, otherJob, thr, temp]);
    const a = groups.find((g) => g.cause === temp);
    expect(a?.consequences).toEqual([thr, strag, tput]);
    expect(groups.find((g) => g.cause === elsewhere)?.consequences).toEqual([]);
    expect(groups.find((g) => g.cause === otherJob)?.consequences).toEqual([]);
    expect(groups).toHaveLength(3);
  });

  it('does not fold alerts that did not overlap in time', () => {
    const thr = alert(
      'GPUThrottled',
      { job_id: 'a', rank: '3' },
      { at: 0, state: 'resolved', resolvedAtMs: MIN },
    );
    const strag = alert('TrainingStraggler', { job_id: 'a', rank: '3' }, { at: 10 * MIN });
    expect(groupAlerts([thr, strag])).toHaveLength(2);
  });
});

describe('previous runs to compare with', () => {
  const llama = {
    model: 'llama-7b',
    learning_rate: 3e-4,
    batch_size: 4,
    precision: 'bf16',
    optimizer: 'adamw',
  };
  const fleet = [
    job('base', { name: 'llama-7b-pretrain', project: 'llm', startMs: 100, config: llama }),
    job('same-name', {
      name: 'llama-7b-pretrain',
      project: 'llm',
      startMs: 50,
      config: { ...llama, learning_rate: 1e-4 },
    }),
    job('sweep', {
      name: 'llama-lr-sweep',
      project: 'llm',
      startMs: 60,
      config: { ...llama, learning_rate: 6e-4 },
    }),
    job('other-model', {
      name: 'gpt-1b3-sft',
      project: 'llm',
      startMs: 90,
      config: { ...llama, model: 'gpt-1b3' },
    }),
    job('later', { name: 'llama-7b-pretrain', project: 'llm', startMs: 200, config: llama }),
    job('other-project', { name: 'resnet', project: 'vision', startMs: 10, config: {} }),
  ];
  it('takes runs of the same name, then runs of the project with a similar config, never other models', () => {
    const r = previousRuns(fleet, fleet[0]!, 5);
    expect(r.runs.map((j) => j.jobId)).toEqual(['same-name', 'sweep']);
    expect(configSimilarity(llama, { ...llama, model: 'gpt-1b3' })).toBe(0);
    expect(configSimilarity(llama, { ...llama, learning_rate: 1 })).toBeCloseTo(0.8);
  });
});

describe('what the demo’s incidents look like', () => {
  it('a straggler with the job’s lower throughput is one GPU; an absent-metrics alert is no cause', () => {
    const jobs = [job('llama', { gpus: 8 })];
    const alerts = [
      alert('TrainingStraggler', { job_id: 'llama', rank: '7', node_id: 'n1' }, { at: 2 * MIN }),
      alert('ThroughputDegraded', { job_id: 'llama' }, { at: MIN }),
    ];
    expect(fleetTotals(jobs, healthByJob(alerts, 'default')).alertingGpus).toBe(1);
    const end = 30 * MIN;
    const dead = job('x', { status: 'failed', endMs: end });
    const absent = alert(
      'NodeMetricsAbsent',
      { job_id: 'x', node_id: 'n1' },
      { at: end, state: 'resolved', resolvedAtMs: end },
    );
    expect(causeOfFailure(dead, [absent])).toBeNull();
  });
});
