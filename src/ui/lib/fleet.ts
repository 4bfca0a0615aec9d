/**
 * The fleet table's filtering, sorting and totals, as pure functions over the jobs and their health.
 */
import { groupAlerts, placeOf } from './alert-groups.js';
import { emptyHealth, type JobHealth } from './alerts.js';
import { jobStatusOf } from './causes.js';
import type { FleetJob, JobStatus } from './types.js';

export interface FleetFilter {
  readonly q: string;
  readonly status: JobStatus | '';
  readonly tenant: string;
  readonly owner: string;
  readonly tag: string;
  /** Only jobs with firing or pending alerts. */
  readonly alerting: boolean;
}

export const SORT_KEYS = [
  'name',
  'project',
  'status',
  'health',
  'owner',
  'gpus',
  'util',
  'throughput',
  'loss',
  'step',
  'age',
] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export function jobKey(j: { tenant: string; jobId: string }): string {
  return `${j.tenant}/${j.jobId}`;
}

export function healthOf(health: ReadonlyMap<string, JobHealth>, j: FleetJob): JobHealth {
  return health.get(jobKey(j)) ?? emptyHealth();
}

export function filterJobs(
  jobs: readonly FleetJob[],
  f: FleetFilter,
  health: ReadonlyMap<string, JobHealth>,
): FleetJob[] {
  const q = f.q.trim().toLowerCase();
  return jobs.filter((j) => {
    if (f.status && jobStatusOf(j, health) !== f.status) return false;
    if (f.tenant && j.tenant !== f.tenant) return false;
    if (f.owner && j.owner !== f.owner) return false;
    if (f.tag && !j.tags.includes(f.tag)) return false;
    if (f.alerting && healthOf(health, j).alerts.length === 0) return false;
    if (
      q &&
      ![j.jobId, j.name, j.project, j.owner, j.tenant, ...j.tags].some((s) => s.toLowerCase().includes(q))
    )
      return false;
    return true;
  });
}

const STATUS_ORDER: Record<JobStatus, number> = {
  failed: 0,
  stalled: 1,
  unknown: 2,
  running: 3,
  queued: 4,
  completed: 5,
};

function throughput(j: FleetJob): number | null {
  return j.tokensPerSecond ?? j.samplesPerSecond;
}

function sortValue(
  j: FleetJob,
  key: SortKey,
  health: ReadonlyMap<string, JobHealth>,
  now: number,
): number | string | null {
  switch (key) {
    case 'name':
      return j.name || j.jobId;
    case 'status':
      return STATUS_ORDER[jobStatusOf(j, health)] ?? 9;
    case 'health':
      return healthScore(healthOf(health, j));
    case 'owner':
      return j.owner;
    case 'project':
      return j.project;
    case 'gpus':
      return j.gpus || j.worldSize || 0;
    case 'util':
      return j.meanGpuUtilization;
    case 'throughput':
      return throughput(j);
    case 'loss':
      return typeof j.loss === 'number' ? j.loss : j.loss === null ? null : Number.POSITIVE_INFINITY;
    case 'step':
      return j.step;
    case 'age':
      return j.startMs === null ? null : (j.endMs ?? now) - j.startMs;
  }
}

/** Worse health scores higher: the worst severity, then the counts of each severity. */
export function healthScore(h: JobHealth): number {
  return h.worst * 1e6 + h.critical * 1e4 + h.warning * 100 + h.info + h.pending / 100;
}

/**
 * The columns the server sorts a fleet by (meta/job-page.ts), for the table's sort keys. The live numbers
 * (utilization, throughput, loss, step) order by the newest values the processor keeps per job
 * (`job_summaries`), not by the page's own reads of storage. `health` orders by the alert-derived rank the
 * page sends; `age` is the start time, reversed.
 */
export const SERVER_SORT: Partial<Record<SortKey, { sort: string; invert?: boolean }>> = {
  health: { sort: 'ranked' },
  name: { sort: 'name' },
  status: { sort: 'status' },
  owner: { sort: 'owner' },
  gpus: { sort: 'gpus' },
  age: { sort: 'start', invert: true },
  project: { sort: 'project' },
  util: { sort: 'util' },
  throughput: { sort: 'throughput' },
  loss: { sort: 'loss' },
  step: { sort: 'step' },
};

/** Job keys by health, worst first: the `ranked` order of the health sort (healthy jobs are not listed). */
export function healthRanking(health: ReadonlyMap<string, JobHealth>): string[] {
  return [...health.entries()]
    .map(([key, h]) => ({ key, score: healthScore(h) }))
    .filter((x) => x.score > 0 || health.get(x.key)?.cause)
    .sort((a, b) => b.score - a.score || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((x) => x.key);
}

/** Sorted copy; missing values always last, whatever the direction; ties by name. */
export function sortJobs(
  jobs: readonly FleetJob[],
  key: SortKey,
  dir: 'asc' | 'desc',
  health: ReadonlyMap<string, JobHealth>,
  now = Date.now(),
): FleetJob[] {
  const sign = dir === 'asc' ? 1 : -1;
  const vals = new Map(jobs.map((j) => [j, sortValue(j, key, health, now)]));
  return [...jobs].sort((a, b) => {
    const va = vals.get(a)!;
    const vb = vals.get(b)!;
    if (va === null || vb === null) {
      if (va !== vb) return va === null ? 1 : -1;
    } else {
      const c =
        typeof va === 'string'
          ? va.localeCompare(vb as string, 'en', { numeric: true })
          : va - (vb as number);
      if (c !== 0) return sign * c;
    }
    return (a.name || a.jobId).localeCompare(b.name || b.jobId) || a.jobId.localeCompare(b.jobId);
  });
}

export interface FleetTotals {
  readonly jobs: number;
  readonly running: number;
  readonly gpus: number;
  readonly busyGpus: number;
  readonly idleGpus: number;
  /** GPUs that firing, unsilenced alerts name; all of a job's GPUs only for its job-level alerts. */
  readonly alertingGpus: number;
  readonly alertingJobs: number;
  readonly meanUtilization: number | null;
}

export function fleetTotals(jobs: readonly FleetJob[], health: ReadonlyMap<string, JobHealth>): FleetTotals {
  let running = 0;
  let gpus = 0;
  let busy = 0;
  let idle = 0;
  let alertingGpus = 0;
  let alertingJobs = 0;
  let utilSum = 0;
  let utilGpus = 0;
  for (const j of jobs) {
    const status = jobStatusOf(j, health);
    const active = status === 'running' || status === 'stalled';
    if (status === 'running') running++;
    if (!active) continue;
    gpus += j.gpus;
    busy += j.busyGpus;
    idle += j.idleGpus;
    if (j.meanGpuUtilization !== null) {
      utilSum += j.meanGpuUtilization * j.gpus;
      utilGpus += j.gpus;
    }
    const h = healthOf(health, j);
    if (h.worst > 0) {
      alertingJobs++;
      alertingGpus += alertingGpusOf(j, h);
    }
  }
  return {
    jobs: jobs.length,
    running,
    gpus,
    busyGpus: busy,
    idleGpus: idle,
    alertingGpus,
    alertingJobs,
    meanUtilization: utilGpus ? utilSum / utilGpus : null,
  };
}

/**
 * The GPUs of a job that its firing, unsilenced alerts implicate: each alert about a rank or GPU names one;
 * an alert about the whole job names all of them, unless it is folded under a GPU alert as its consequence
 * (a hot GPU's straggling and the job's lower throughput are that one GPU's problem).
 */
export function alertingGpusOf(j: FleetJob, h: JobHealth): number {
  const firing = h.alerts.filter((a) => a.state === 'firing');
  const named = new Set<string>();
  for (const g of groupAlerts(firing)) {
    for (const a of [g.cause, ...g.consequences]) {
      const place = placeOf(a.labels);
      if (place !== '') named.add(place);
      else if (placeOf(g.cause.labels) === '') return Math.max(j.gpus, named.size);
    }
  }
  return j.gpus > 0 ? Math.min(j.gpus, named.size) : named.size;
}

/** Distinct non-empty values, sorted, for filter menus. */
export function distinct(values: Iterable<string>): string[] {
  return [...new Set([...values].filter((v) => v !== ''))].sort((a, b) => a.localeCompare(b));
}
