/**
 * Labels the agent finds in environments: its own (node name, Kubernetes downward API, Slurm, static config)
 * and those of the training processes it sees on the GPUs (`/proc/PID/environ`), which say which job and rank
 * a process belongs to.
 *
 * The rule for a process's job is the Python SDK's (sdk/python/src/trainwatch/env.py), so that the agent's GPU
 * series and the SDK's training series of one process land under the same `job_id`; first match wins:
 * `TRAINWATCH_JOB_ID`; `TORCHELASTIC_RUN_ID` unless torchrun's placeholder `none`; `SLURM_ARRAY_JOB_ID_`
 * `SLURM_ARRAY_TASK_ID` for array tasks; `SLURM_JOB_ID`; `JOBSET_NAME`; `TRAINWATCH_K8S_JOB_NAME`; in
 * Kubernetes `JOB_NAME`, then the `job-name` labels of the pod's downward-API labels file. The value is
 * sanitized as the SDK does (invalid characters become `-`).
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

const JOB_ID_INVALID = /[^A-Za-z0-9._:@/-]/g;
const K8S_JOB_LABELS = ['batch.kubernetes.io/job-name', 'job-name', 'training.kubeflow.org/job-name'];

/** As the SDK's sanitize_job_id: invalid characters become `-`, leading punctuation goes, at most 200. */
export function sanitizeJobId(raw: string): string {
  return raw
    .trim()
    .replace(JOB_ID_INVALID, '-')
    .slice(0, 200)
    .replace(/^[._:@/-]+/, '');
}

/** A downward-API labels file (`key="value"` per line): the first Kubernetes job-name label. */
export function jobFromPodinfoLabels(text: string): string | undefined {
  const labels = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0)
      labels.set(
        line.slice(0, eq).trim(),
        line
          .slice(eq + 1)
          .trim()
          .replace(/^"|"$/g, ''),
      );
  }
  for (const k of K8S_JOB_LABELS) if (labels.get(k)) return labels.get(k);
  return undefined;
}

/**
 * Reads the job, rank and pod from one environment. `podinfoLabels` reads the process's downward-API labels
 * file when the environment names none of the other sources.
 */
export function jobFromEnv(env: Env, podinfoLabels?: (file: string) => string | undefined): ProcessJob {
  const pod = nonEmpty(env.POD_NAME) ?? nonEmpty(env.TRAINWATCH_POD_NAME);
  const namespace = nonEmpty(env.POD_NAMESPACE) ?? nonEmpty(env.TRAINWATCH_POD_NAMESPACE);
  const runId = nonEmpty(env.TORCHELASTIC_RUN_ID);
  const candidates: (string | undefined)[] = [
    env.TRAINWATCH_JOB_ID,
    runId && runId.toLowerCase() !== 'none' ? runId : undefined,
    nonEmpty(env.SLURM_ARRAY_JOB_ID) && nonEmpty(env.SLURM_ARRAY_TASK_ID)
      ? `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`
      : undefined,
    env.SLURM_JOB_ID,
    env.JOBSET_NAME,
    env.TRAINWATCH_K8S_JOB_NAME,
  ];
  let jobId: string | undefined;
  for (const c of candidates) {
    const id = c ? sanitizeJobId(c) : '';
    if (id !== '') {
      jobId = id;
      break;
    }
  }
  if (!jobId && nonEmpty(env.KUBERNETES_SERVICE_HOST)) {
    const fromLabels = () => {
      const text = podinfoLabels?.(env.TRAINWATCH_PODINFO_LABELS || '/etc/podinfo/labels');
      return text === undefined ? undefined : jobFromPodinfoLabels(text);
    };
    const c = nonEmpty(env.JOB_NAME) ?? fromLabels();
    if (c && sanitizeJobId(c) !== '') jobId = sanitizeJobId(c);
  }
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
    const root = path.join(procRoot, String(pid));
    // The downward-API labels file is inside the process's container: /proc/PID/root/... from the host.
    return jobFromEnv(parseEnviron(readFileSync(path.join(root, 'environ'))), (file) => {
      try {
        return readFileSync(path.join(root, 'root', file), 'utf8');
      } catch {
        return undefined;
      }
    });
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
