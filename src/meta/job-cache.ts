/**
 * A synchronous view of job metadata for callers that cannot wait (the alerting action notifiers build their
 * payload synchronously): `peek` answers from memory and, when its copy of the job is missing or older than
 * `ttlMs`, starts loading it from the `JobRepository` in the background.
 *
 * So the first lookup of a job answers undefined (the notifier then sends `job: null`), and later ones
 * answer a copy at most `ttlMs` plus one query old. At most `maxEntries` copies are held: when full, those
 * not looked up for `idleMs` go first, then the oldest.
 */
import type { JobInfo } from '../model/job.js';
import type { JobRepository } from './jobs.js';

export interface JobInfoCacheOptions {
  /** Copies older than this are reloaded on their next lookup (default 10 s). */
  readonly ttlMs?: number;
  /** When full, copies not looked up for this long are dropped first (default 10 min). */
  readonly idleMs?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
  /** Failures of background loads (the lookup then keeps answering the previous copy). */
  readonly onError?: (err: Error) => void;
}

interface Entry {
  job: JobInfo | undefined;
  loadedAtMs: number;
  usedAtMs: number;
  loading: boolean;
}

export class JobInfoCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly idleMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onError: (err: Error) => void;

  constructor(
    private readonly jobs: Pick<JobRepository, 'get'>,
    opts: JobInfoCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.idleMs = opts.idleMs ?? 600_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => {});
  }

  /** The job as last loaded (undefined until loaded, or when there is no such job); refreshes in the background. */
  peek(tenant: string, jobId: string): JobInfo | undefined {
    const key = `${tenant}\u0000${jobId}`;
    const now = this.now();
    let entry = this.entries.get(key);
    if (!entry) {
      this.evict(now);
      entry = { job: undefined, loadedAtMs: Number.NEGATIVE_INFINITY, usedAtMs: now, loading: false };
      this.entries.set(key, entry);
    }
    entry.usedAtMs = now;
    if (!entry.loading && now - entry.loadedAtMs >= this.ttlMs) void this.load(tenant, jobId, entry);
    return entry.job;
  }

  /** Loads the job now (and keeps it for `peek`). */
  async load(tenant: string, jobId: string, entry?: Entry): Promise<JobInfo | undefined> {
    const key = `${tenant}\u0000${jobId}`;
    const e = entry ?? this.entries.get(key);
    if (e) e.loading = true;
    try {
      const job = await this.jobs.get(tenant, jobId, this.now());
      const target = e ?? { job, loadedAtMs: 0, usedAtMs: this.now(), loading: false };
      target.job = job;
      target.loadedAtMs = this.now();
      if (!e) this.entries.set(key, target);
      return job;
    } catch (err) {
      this.onError(err as Error);
      return e?.job;
    } finally {
      if (e) e.loading = false;
    }
  }

  private evict(now: number): void {
    if (this.entries.size < this.maxEntries) return;
    for (const [key, e] of this.entries) if (now - e.usedAtMs >= this.idleMs) this.entries.delete(key);
    // Still full: drop the oldest-inserted (Map order) until there is room.
    for (const key of this.entries.keys()) {
      if (this.entries.size < this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}
