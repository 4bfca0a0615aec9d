/**
 * Labels the agent finds in environments: its own (node name, Kubernetes downward API, Slurm, static config)
 * and those of the training processes it sees on the GPUs (`/proc/PID/environ`), which say which job and rank
 * a process belongs to.
 *
 * The rule for a process's job (docs/agent.md, "Jobs and ranks"), first match wins:
 * 1. `TRAINWATCH_JOB_ID` (what the Python SDK uses too),
 * 2. Slurm: `slurm-<SLURM_JOB_ID>` (`slurm-<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>` for array tasks),
 * 3. torchrun: `torchrun-<TORCHELASTIC_RUN_ID>` unless the run id is torchrun's placeholder `none`,
 * 4. Kubernetes: `k8s-<namespace>/<pod>` when the pod exposes POD_NAME/POD_NAMESPACE (downward API).
 * Rank: RANK, then SLURM_PROCID, OMPI_COMM_WORLD_RANK, PMI_RANK; local rank: LOCAL_RANK, SLURM_LOCALID,
 * OMPI_COMM_WORLD_LOCAL_RANK.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateJobId } from '../model/job.js';
import type { LabelSet } from '../model/labels.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** What a process's environment says about the job it belongs to. */
export interface ProcessJob {
  readonly jobId?: string;
  readonly rank?: string;
  readonly localRank?: string;
  readonly pod?: string;
  readonly namespace?: string;
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
const integer = (v: string | undefined): string | undefined =>
  v !== undefined && /^\d{1,9}$/.test(v) ? String(Number(v)) : undefined;

/** Reads the job, rank and pod from one environment. Invalid job ids are ignored rather than sent. */
export function jobFromEnv(env: Env): ProcessJob {
  const pod = nonEmpty(env.POD_NAME) ?? nonEmpty(env.TRAINWATCH_POD_NAME);
  const namespace = nonEmpty(env.POD_NAMESPACE) ?? nonEmpty(env.TRAINWATCH_POD_NAMESPACE);
  let jobId = nonEmpty(env.TRAINWATCH_JOB_ID);
  if (!jobId && nonEmpty(env.SLURM_JOB_ID)) {
    jobId =
      nonEmpty(env.SLURM_ARRAY_JOB_ID) && nonEmpty(env.SLURM_ARRAY_TASK_ID)
        ? `slurm-${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`
        : `slurm-${env.SLURM_JOB_ID}`;
  }
  if (!jobId && nonEmpty(env.TORCHELASTIC_RUN_ID) && env.TORCHELASTIC_RUN_ID !== 'none')
    jobId = `torchrun-${env.TORCHELASTIC_RUN_ID}`;
  if (!jobId && pod && namespace) jobId = `k8s-${namespace}/${pod}`;
  if (jobId !== undefined && validateJobId(jobId) !== undefined) jobId = undefined;
  const rank =
    integer(env.RANK) ??
    integer(env.SLURM_PROCID) ??
    integer(env.OMPI_COMM_WORLD_RANK) ??
    integer(env.PMI_RANK);
  const localRank =
    integer(env.LOCAL_RANK) ?? integer(env.SLURM_LOCALID) ?? integer(env.OMPI_COMM_WORLD_LOCAL_RANK);
  return {
    ...(jobId !== undefined ? { jobId } : {}),
    ...(rank !== undefined ? { rank } : {}),
    ...(localRank !== undefined ? { localRank } : {}),
    ...(pod !== undefined ? { pod } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
  };
}

/** The labels a process's job contributes to the series it is attributed. */
export function jobLabels(job: ProcessJob): Record<string, string> {
  const out: Record<string, string> = {};
  if (job.jobId !== undefined) out.job_id = job.jobId;
  if (job.rank !== undefined) out.rank = job.rank;
  if (job.localRank !== undefined) out.local_rank = job.localRank;
  if (job.pod !== undefined) out.pod = job.pod;
  if (job.namespace !== undefined) out.namespace = job.namespace;
  return out;
}

/** Parses /proc/PID/environ (NUL-separated NAME=value pairs). */
export function parseEnviron(data: Buffer | string): Record<string, string> {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  const env: Record<string, string> = {};
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/**
 * The job of a process, from its environment under `procRoot` (/proc, or /host/proc in a container with the
 * host's PID namespace). Undefined when the process is gone or not readable (another user without root).
 */
export function processJob(pid: number, procRoot = '/proc'): ProcessJob | undefined {
  try {
    return jobFromEnv(parseEnviron(readFileSync(path.join(procRoot, String(pid), 'environ'))));
  } catch {
    return undefined;
  }
}

export interface NodeLabelOptions {
  readonly nodeId?: string | undefined;
  readonly staticLabels?: Readonly<Record<string, string>>;
  readonly env: Env;
  readonly hostname?: string;
}

/**
 * The labels the agent puts on every series it sends: `node_id`, then `cluster`/`region` from Slurm or the
 * environment, then static labels from the config (which win over what was discovered).
 */
export function nodeLabels(opts: NodeLabelOptions): Record<string, string> {
  const env = opts.env;
  const out: Record<string, string> = {};
  out.node_id =
    opts.nodeId ??
    nonEmpty(env.TRAINWATCH_NODE_NAME) ??
    nonEmpty(env.NODE_NAME) ??
    nonEmpty(env.SLURMD_NODENAME) ??
    opts.hostname ??
    os.hostname();
  const cluster = nonEmpty(env.TRAINWATCH_CLUSTER) ?? nonEmpty(env.SLURM_CLUSTER_NAME);
  if (cluster) out.cluster = cluster;
  const region = nonEmpty(env.TRAINWATCH_REGION);
  if (region) out.region = region;
  Object.assign(out, opts.staticLabels ?? {});
  return out;
}

/**
 * When the agent itself runs inside a job (a Slurm step, a sidecar in the training pod), its own environment
 * names the job: those labels go on the host's series too. A node-wide agent (systemd, DaemonSet) has none.
 */
export function ownJobLabels(env: Env): Record<string, string> {
  const job = jobFromEnv(env);
  // Only a job id makes the agent's own series a job's; a lone rank or pod name is not enough.
  return job.jobId === undefined ? {} : jobLabels(job);
}

/** Adds `extra` to `labels` where `labels` has no value (the sender's labels win). */
export function withDefaults(labels: LabelSet, extra: Readonly<Record<string, string>>): LabelSet {
  let out: Record<string, string> | undefined;
  for (const k in extra) {
    if (labels[k] === undefined || labels[k] === '') {
      out ??= { ...labels };
      out[k] = extra[k]!;
    }
  }
  return out ?? labels;
}
