/**
 * Job metadata in the metadata store. The processor is the only writer (it applies job events and notes
 * sample times in bus order); the query role reads. Writes are merged in memory and flushed in one
 * transaction per checkpoint, so a busy fleet costs one SQLite transaction per interval, not one per batch.
 *
 * Merging rules (so that every rank may send `start` without coordination, and replays are harmless):
 * scalar fields take the newest non-empty value; `config` is merged key by key; `tags` are a union;
 * `startMs` is the earliest start; a final status (completed/failed) is never left by later events or samples.
 */
import { FINAL_JOB_STATUSES, type JobEvent, type JobInfo, type JobStatus } from '../model/job.js';
import type { Db, MetaStore, Migration } from './meta-store.js';

export const JOB_MIGRATIONS: readonly Migration[] = [
  {
    version: 100,
    description: 'jobs table',
    sql: `CREATE TABLE jobs (
      tenant TEXT NOT NULL,
      job_id TEXT NOT NULL,
      name TEXT NOT NULL DEFAULT '',
      project TEXT NOT NULL DEFAULT '',
      owner TEXT NOT NULL DEFAULT '',
      framework TEXT NOT NULL DEFAULT '',
      world_size INTEGER,
      config TEXT NOT NULL DEFAULT '{}',
      tags TEXT NOT NULL DEFAULT '[]',
      metric_keys TEXT NOT NULL DEFAULT '{}',
      status TEXT NOT NULL DEFAULT 'running',
      start_ms INTEGER,
      end_ms INTEGER,
      last_sample_ms INTEGER,
      PRIMARY KEY (tenant, job_id)
    );
    CREATE INDEX jobs_by_last_sample ON jobs (tenant, last_sample_ms);`,
  },
];

interface JobRow {
  tenant: string;
  job_id: string;
  name: string;
  project: string;
  owner: string;
  framework: string;
  world_size: number | null;
  config: string;
  tags: string;
  metric_keys: string;
  status: string;
  start_ms: number | null;
  end_ms: number | null;
  last_sample_ms: number | null;
}

type MutableJob = { -readonly [K in keyof JobInfo]: JobInfo[K] };

export interface JobListFilter {
  readonly status?: JobStatus;
  /** Case-insensitive substring of job id, name, project or owner. */
  readonly search?: string;
  readonly limit?: number;
}

export class JobStore {
  private readonly db: Db;
  /** Jobs changed since the last flush, by `tenant \0 jobId`. */
  private readonly dirty = new Map<string, MutableJob>();
  /** Every job the writer has touched, so merges need no read per event. */
  private readonly cache = new Map<string, MutableJob>();
  private readonly selectOne;
  private readonly upsert;

  constructor(
    meta: MetaStore,
    /** A running job without samples for this long is reported as `unknown`. */
    private readonly silentAfterMs: number,
  ) {
    meta.migrate(JOB_MIGRATIONS);
    this.db = meta.db;
    this.selectOne = this.db.prepare('SELECT * FROM jobs WHERE tenant = ? AND job_id = ?');
    this.upsert = this.db.prepare(`INSERT INTO jobs
      (tenant, job_id, name, project, owner, framework, world_size, config, tags, metric_keys, status, start_ms, end_ms, last_sample_ms)
      VALUES (@tenant, @job_id, @name, @project, @owner, @framework, @world_size, @config, @tags, @metric_keys, @status, @start_ms, @end_ms, @last_sample_ms)
      ON CONFLICT (tenant, job_id) DO UPDATE SET
        name = excluded.name, project = excluded.project, owner = excluded.owner, framework = excluded.framework,
        world_size = excluded.world_size, config = excluded.config, tags = excluded.tags, metric_keys = excluded.metric_keys,
        status = excluded.status, start_ms = excluded.start_ms, end_ms = excluded.end_ms, last_sample_ms = excluded.last_sample_ms`);
  }

  // ---- writer side (processor) ----------------------------------------------------------------------------

  applyEvent(tenant: string, ev: JobEvent): void {
    const job = this.touch(tenant, ev.jobId, ev.timeMs);
    if (ev.name) job.name = ev.name;
    if (ev.project) job.project = ev.project;
    if (ev.owner) job.owner = ev.owner;
    if (ev.framework) job.framework = ev.framework;
    if (typeof ev.worldSize === 'number' && Number.isInteger(ev.worldSize) && ev.worldSize > 0)
      job.worldSize = ev.worldSize;
    if (ev.config && typeof ev.config === 'object') job.config = { ...job.config, ...ev.config };
    if (Array.isArray(ev.tags))
      job.tags = [...new Set([...job.tags, ...ev.tags.filter((t) => typeof t === 'string')])];
    if (ev.metricKeys && typeof ev.metricKeys === 'object')
      job.metricKeys = { ...job.metricKeys, ...ev.metricKeys };
    const final = FINAL_JOB_STATUSES.has(job.status);
    if (ev.kind === 'start') {
      job.startMs = job.startMs === null ? ev.timeMs : Math.min(job.startMs, ev.timeMs);
      if (!final) job.status = 'running';
    } else if (ev.kind === 'update' && ev.status && !final && !FINAL_JOB_STATUSES.has(ev.status)) {
      job.status = ev.status;
    } else if (ev.kind === 'finish' && !final) {
      job.status = ev.status && FINAL_JOB_STATUSES.has(ev.status) ? ev.status : 'completed';
      job.endMs = ev.timeMs;
    }
  }

  /** Records that samples of the job up to `maxT` arrived; creates the job if nobody announced it. */
  noteSamples(tenant: string, jobId: string, minT: number, maxT: number): void {
    const job = this.touch(tenant, jobId, minT);
    if (job.status === 'queued') job.status = 'running';
    if (job.lastSampleMs === null || maxT > job.lastSampleMs) job.lastSampleMs = maxT;
    if (job.startMs === null || minT < job.startMs) job.startMs = minT;
  }

  /** Writes every change since the last flush in one transaction. */
  flush(): void {
    if (this.dirty.size === 0) return;
    const rows = [...this.dirty.values()].map(toRow);
    this.dirty.clear();
    this.db.transaction(() => {
      for (const row of rows) this.upsert.run(row);
    })();
  }

  private touch(tenant: string, jobId: string, timeMs: number): MutableJob {
    const key = `${tenant}\u0000${jobId}`;
    let job = this.cache.get(key);
    if (!job) {
      const row = this.selectOne.get(tenant, jobId) as JobRow | undefined;
      job = row
        ? fromRow(row)
        : {
            tenant,
            jobId,
            name: jobId,
            project: '',
            owner: '',
            framework: '',
            worldSize: null,
            config: {},
            tags: [],
            status: 'running',
            startMs: timeMs,
            endMs: null,
            lastSampleMs: null,
            metricKeys: {},
          };
      this.cache.set(key, job);
    }
    this.dirty.set(key, job);
    return job;
  }

  // ---- reader side (query) --------------------------------------------------------------------------------

  /** Jobs of one tenant (or all tenants when null), most recently active first. */
  list(tenant: string | null, nowMs: number, filter: JobListFilter = {}): JobInfo[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (tenant !== null) {
      where.push('tenant = ?');
      params.push(tenant);
    }
    if (filter.search) {
      where.push(
        "(job_id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR project LIKE ? ESCAPE '\\' OR owner LIKE ? ESCAPE '\\')",
      );
      const like = `%${filter.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      params.push(like, like, like, like);
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY COALESCE(last_sample_ms, start_ms, 0) DESC LIMIT ?`;
    params.push(filter.limit ?? 10_000);
    const jobs = (this.db.prepare(sql).all(...params) as JobRow[]).map((r) =>
      this.withLiveStatus(fromRow(r), nowMs),
    );
    return filter.status ? jobs.filter((j) => j.status === filter.status) : jobs;
  }

  get(tenant: string, jobId: string, nowMs: number): JobInfo | undefined {
    const row = this.selectOne.get(tenant, jobId) as JobRow | undefined;
    return row ? this.withLiveStatus(fromRow(row), nowMs) : undefined;
  }

  private withLiveStatus(job: MutableJob, nowMs: number): JobInfo {
    if (
      job.status === 'running' &&
      job.lastSampleMs !== null &&
      nowMs - job.lastSampleMs > this.silentAfterMs
    ) {
      job.status = 'unknown';
    }
    return job;
  }
}

function toRow(j: MutableJob): JobRow {
  return {
    tenant: j.tenant,
    job_id: j.jobId,
    name: j.name,
    project: j.project,
    owner: j.owner,
    framework: j.framework,
    world_size: j.worldSize,
    config: JSON.stringify(j.config),
    tags: JSON.stringify(j.tags),
    metric_keys: JSON.stringify(j.metricKeys),
    status: j.status,
    start_ms: j.startMs,
    end_ms: j.endMs,
    last_sample_ms: j.lastSampleMs,
  };
}

function fromRow(r: JobRow): MutableJob {
  return {
    tenant: r.tenant,
    jobId: r.job_id,
    name: r.name,
    project: r.project,
    owner: r.owner,
    framework: r.framework,
    worldSize: r.world_size,
    config: JSON.parse(r.config) as Record<string, unknown>,
    tags: JSON.parse(r.tags) as string[],
    metricKeys: JSON.parse(r.metric_keys) as Record<string, string>,
    status: r.status as JobStatus,
    startMs: r.start_ms,
    endMs: r.end_ms,
    lastSampleMs: r.last_sample_ms,
  };
}
