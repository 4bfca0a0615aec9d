/**
 * The `jobs` table's row ⇄ `JobInfo` mapping, written once for both stores (`./sqlite-jobs.ts` and
 * `./postgres/jobs.ts`). The two dialects differ only in how the JSON columns (config, tags, metric keys)
 * travel: as text in SQLite, as JSONB (already parsed objects) in PostgreSQL; the rest of a row is the same.
 * Also the runs table's row → `RunRow` mapping, which reads the same job columns.
 */
import type { JobInfo, JobStatus } from '../model/job.js';
import type { JobDelta } from './jobs.js';
import { type RunSqlRow, summaryFromRow } from './run-summary.js';
import type { RunRow } from './runs.js';

/** A JSON column: text as SQLite stores it, or the parsed value as PostgreSQL's JSONB arrives. */
type JsonColumn<T> = T | string;

export interface JobRow {
  tenant: string;
  job_id: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  world_size: number | null;
  config: JsonColumn<Record<string, unknown>>;
  tags: JsonColumn<string[]>;
  metric_keys: JsonColumn<Record<string, string>>;
  /** NULL only in a delta being written to PostgreSQL: it says nothing about the status. */
  status: string | null;
  start_ms: number | null;
  end_ms: number | null;
  last_sample_ms: number | null;
}

/** A stored column is never a JSON string value (config and metric keys are objects, tags an array). */
const parsed = <T>(v: JsonColumn<T>): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** A stored job; a stored row always has a status (a new job without one is written `running`). */
export function jobFromRow(r: JobRow): JobInfo {
  return {
    tenant: r.tenant,
    jobId: r.job_id,
    name: r.name,
    project: r.project,
    owner: r.owner,
    framework: r.framework,
    worldSize: r.world_size,
    config: parsed(r.config),
    tags: parsed(r.tags),
    metricKeys: parsed(r.metric_keys),
    status: (r.status ?? 'running') as JobStatus,
    startMs: r.start_ms,
    endMs: r.end_ms,
    lastSampleMs: r.last_sample_ms,
  };
}

/**
 * The row to write: JSON columns as text (`'text'`, SQLite) or as copies of the objects (`'jsonb'`,
 * PostgreSQL, where the whole batch is serialized once). The status is kept as it is (null included).
 */
export function jobToRow(j: JobInfo | JobDelta, json: 'text' | 'jsonb'): JobRow {
  const text = json === 'text';
  return {
    tenant: j.tenant,
    job_id: j.jobId,
    name: j.name,
    project: j.project,
    owner: j.owner,
    framework: j.framework,
    world_size: j.worldSize,
    config: text ? JSON.stringify(j.config) : { ...j.config },
    tags: text ? JSON.stringify(j.tags) : [...j.tags],
    metric_keys: text ? JSON.stringify(j.metricKeys) : { ...j.metricKeys },
    status: j.status,
    start_ms: j.startMs,
    end_ms: j.endMs,
    last_sample_ms: j.lastSampleMs,
  };
}

/** One row of the runs page (`runStatements`' page query): the job's columns, its summary and GPU-hours. */
export function runFromRow(r: RunSqlRow): RunRow {
  return {
    job: jobFromRow(r as unknown as JobRow),
    summary: summaryFromRow(r),
    gpuHours: r.gpu_hours === null ? null : Number(r.gpu_hours),
  };
}
