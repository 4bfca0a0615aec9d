/**
 * Row ⇄ object mapping for the PostgreSQL repositories, in one place. Rows arrive with BIGINT as numbers
 * (see `PgMeta`'s type parsers), JSONB already parsed and BYTEA as Buffers; the objects are the ones the
 * SQLite stores return, so callers cannot tell the backends apart.
 */
import type { JobInfo, JobStatus } from '../../model/job.js';
import type { JobDelta } from '../jobs.js';
import type { TokenInfo, TokenScope } from '../tokens.js';

// ---- jobs ---------------------------------------------------------------------------------------------------

export interface JobRow {
  tenant: string;
  job_id: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  world_size: number | null;
  config: Record<string, unknown>;
  tags: string[];
  metric_keys: Record<string, string>;
  /** NULL only in a delta being written: it says nothing about the status. */
  status: string | null;
  start_ms: number | null;
  end_ms: number | null;
  last_sample_ms: number | null;
}

export function jobFromRow(r: JobRow): JobInfo {
  return {
    tenant: r.tenant,
    jobId: r.job_id,
    name: r.name,
    project: r.project,
    owner: r.owner,
    framework: r.framework,
    worldSize: r.world_size,
    config: r.config,
    tags: r.tags,
    metricKeys: r.metric_keys,
    status: r.status as JobStatus,
    startMs: r.start_ms,
    endMs: r.end_ms,
    lastSampleMs: r.last_sample_ms,
  };
}

export function jobToRow(j: JobInfo | JobDelta): JobRow {
  return {
    tenant: j.tenant,
    job_id: j.jobId,
    name: j.name,
    project: j.project,
    owner: j.owner,
    framework: j.framework,
    world_size: j.worldSize,
    config: { ...j.config },
    tags: [...j.tags],
    metric_keys: { ...j.metricKeys },
    status: j.status,
    start_ms: j.startMs,
    end_ms: j.endMs,
    last_sample_ms: j.lastSampleMs,
  };
}

// ---- tokens -------------------------------------------------------------------------------------------------

export interface TokenRow {
  id: string;
  tenant: string;
  scope: TokenScope;
  name: string;
  secret_sha256: Buffer;
  created_at_ms: number;
  revoked_at_ms: number | null;
  last_used_at_ms: number | null;
  expires_at_ms: number | null;
  rate_limit_per_second: number | null;
}

export function tokenFromRow(r: TokenRow): TokenInfo {
  return {
    id: r.id,
    tenant: r.tenant,
    scope: r.scope,
    name: r.name,
    createdAtMs: r.created_at_ms,
    revokedAtMs: r.revoked_at_ms,
    lastUsedAtMs: r.last_used_at_ms,
    expiresAtMs: r.expires_at_ms ?? null,
    rateLimitPerSecond: r.rate_limit_per_second ?? null,
  };
}
