/**
 * Nodes under `/api/tw/v1/`: what the node page draws besides its charts (which come from PromQL).
 *
 * - `GET /nodes?job_id=&start=&end=`  the node ids that reported in the range (of one job, with `job_id`)
 * - `GET /nodes/:nodeId?start=&end=`  one node: its GPUs (index, UUID, model, the jobs and ranks each ran),
 *                                     the jobs that ran on it with their metadata, and the metrics it reported
 *
 * A node is not a stored entity: it is the `node_id` label its agent puts on every series. So both answers
 * come from the series index over the range (label values and series label sets, at the granularity the
 * storage keeps its index: no sample is read) and the
 * job metadata store. Every read is scoped to the caller's tenant (admins may pass `tenant=`).
 */
import type { FastifyInstance } from 'fastify';
import { requestPrincipal } from '../auth/index.js';
import type { JobRepository } from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import type { JobInfo, JobStatus } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL } from '../model/labels.js';
import type { Querier, Storage } from '../storage/index.js';
import { readTenant, requestSignal } from './dashboard-scope.js';
import { type Query, single } from './query-params.js';
import { parseTime } from './rest.js';
import { selectSeries } from './series-read.js';

const READ = { config: { permission: 'read' } } as const;

export interface NodeApiDeps {
  readonly storage: Storage;
  readonly jobs: JobRepository;
}

/** Without start/end, a node page covers the last six hours. */
const DEFAULT_RANGE_MS = 6 * 60 * 60_000;
/** A node that ran more jobs than this in the range lists the most recent ones (and says how many in all). */
export const MAX_NODE_JOBS = 500;
const MAX_NODE_ID_LENGTH = 200;

/** The series that name a node's GPUs: any GPU an agent reads reports utilization; `gpu_info` names its model. */
const GPU_IDENTITY_METRICS = ['gpu_info', 'gpu_utilization_ratio', 'gpu_memory_total_bytes'];

export interface NodeGpu {
  /** The GPU's index on the node (nvidia-smi's `index`, the `gpu` label). */
  readonly gpu: string;
  readonly uuid: string | null;
  /** The model (`gpu_info`'s `name` label), when the agent reported it. */
  readonly name: string | null;
  /** Jobs whose series this GPU carried in the range, with the rank it ran for each. */
  readonly jobs: readonly { readonly jobId: string; readonly rank: string | null }[];
}

export interface NodeJob {
  readonly jobId: string;
  /** False when series carry this job id but the metadata store has no such job. */
  readonly known: boolean;
  readonly name: string;
  readonly project: string;
  readonly owner: string;
  readonly status: JobStatus;
  readonly startMs: number | null;
  readonly endMs: number | null;
  readonly lastSampleMs: number | null;
  readonly worldSize: number | null;
}

export interface NodeDetail {
  readonly nodeId: string;
  readonly tenant: string;
  readonly start: number;
  readonly end: number;
  readonly gpus: readonly NodeGpu[];
  /** Most recently started first. */
  readonly jobs: readonly NodeJob[];
  /** How many jobs ran on the node in the range (jobs lists at most MAX_NODE_JOBS of them). */
  readonly jobCount: number;
  /** Every metric the node reported in the range, sorted. */
  readonly metrics: readonly string[];
}

function rangeOf(q: Query, now: number): { start: number; end: number } {
  const end = parseTime(single(q.end, 'end'), 'end', now);
  const start = parseTime(single(q.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
  if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
  return { start, end };
}

/** Natural order: node-2 before node-10, gpu 2 before gpu 10. */
const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

export function validateNodeId(nodeId: string): void {
  if (nodeId === '' || nodeId.length > MAX_NODE_ID_LENGTH)
    throw twError(
      Errors.badRequest,
      `node id ${JSON.stringify(nodeId.slice(0, 80))} is invalid: give the node_id label's value (1-${MAX_NODE_ID_LENGTH} characters)`,
    );
}

/** The GPUs of a node, from the label sets of the series that identify GPUs (no samples are read). */
export async function nodeGpus(querier: Querier, nodeId: string, signal?: AbortSignal): Promise<NodeGpu[]> {
  const series = await selectSeries(
    querier,
    [
      new LabelMatcher('=~', METRIC_NAME_LABEL, GPU_IDENTITY_METRICS.join('|')),
      new LabelMatcher('=', 'node_id', nodeId),
      new LabelMatcher('!=', 'gpu', ''),
    ],
    undefined,
    signal,
  );
  const byIndex = new Map<
    string,
    { uuid: string | null; name: string | null; jobs: Map<string, string | null> }
  >();
  for (const s of series) {
    const l = s.labels;
    const index = l.gpu!;
    let g = byIndex.get(index);
    if (!g) {
      g = { uuid: null, name: null, jobs: new Map() };
      byIndex.set(index, g);
    }
    if (l.gpu_uuid) g.uuid = l.gpu_uuid;
    if (l[METRIC_NAME_LABEL] === 'gpu_info' && l.name) g.name = l.name;
    if (l.job_id && (!g.jobs.has(l.job_id) || g.jobs.get(l.job_id) === null))
      g.jobs.set(l.job_id, l.rank ?? null);
  }
  return [...byIndex.keys()].sort(natural).map((gpu) => {
    const g = byIndex.get(gpu)!;
    return {
      gpu,
      uuid: g.uuid,
      name: g.name,
      jobs: [...g.jobs].map(([jobId, rank]) => ({ jobId, rank })).sort((a, b) => natural(a.jobId, b.jobId)),
    };
  });
}

function nodeJob(jobId: string, info: JobInfo | undefined): NodeJob {
  return {
    jobId,
    known: info !== undefined,
    name: info?.name ?? '',
    project: info?.project ?? '',
    owner: info?.owner ?? '',
    status: info?.status ?? 'unknown',
    startMs: info?.startMs ?? null,
    endMs: info?.endMs ?? null,
    lastSampleMs: info?.lastSampleMs ?? null,
    worldSize: info?.worldSize ?? null,
  };
}

export function registerNodeApi(app: FastifyInstance, deps: NodeApiDeps): void {
  app.get('/api/tw/v1/nodes', READ, async (req, reply) => {
    const q = req.query as Query;
    const tenant = readTenant(requestPrincipal(req), single(q.tenant, 'tenant'));
    const { start, end } = rangeOf(q, Date.now());
    const jobId = single(q.job_id, 'job_id');
    const matchers = jobId
      ? [new LabelMatcher('=', 'job_id', jobId)]
      : [new LabelMatcher('!=', 'node_id', '')];
    const nodes = await deps.storage
      .querier(tenant, start, end)
      .labelValues('node_id', matchers, requestSignal(reply));
    return { status: 'success', data: { start, end, nodes: nodes.filter((n) => n !== '').sort(natural) } };
  });

  app.get('/api/tw/v1/nodes/:nodeId', READ, async (req, reply) => {
    const q = req.query as Query;
    const principal = requestPrincipal(req);
    const tenant = readTenant(principal, single(q.tenant, 'tenant'));
    if (tenant === null)
      throw twError(Errors.badRequest, 'tenant=* is not supported here: a node page reads one tenant');
    const { nodeId } = req.params as { nodeId: string };
    validateNodeId(nodeId);
    const now = Date.now();
    const { start, end } = rangeOf(q, now);
    const signal = requestSignal(reply);
    const querier = deps.storage.querier(tenant, start, end);
    const onNode = [new LabelMatcher('=', 'node_id', nodeId)];
    const [gpus, jobIds, metrics] = await Promise.all([
      nodeGpus(querier, nodeId, signal),
      querier.labelValues('job_id', onNode, signal),
      querier.labelValues(METRIC_NAME_LABEL, onNode, signal),
    ]);
    const infos = await Promise.all(
      jobIds
        .filter((j) => j !== '')
        .map(async (id) => nodeJob(id, await deps.jobs.get(tenant, id, now, signal))),
    );
    // Most recently started first; jobs the store does not know (no start) last.
    infos.sort(
      (a, b) =>
        (b.startMs ?? b.lastSampleMs ?? -1) - (a.startMs ?? a.lastSampleMs ?? -1) ||
        natural(a.jobId, b.jobId),
    );
    const detail: NodeDetail = {
      nodeId,
      tenant,
      start,
      end,
      gpus,
      jobs: infos.slice(0, MAX_NODE_JOBS),
      jobCount: infos.length,
      metrics: [...metrics].sort(),
    };
    return { status: 'success', data: detail };
  });
}
