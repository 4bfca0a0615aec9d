/**
 * The paging, sorting and filtering parameters of the job lists (`GET /api/tw/v1/jobs` and
 * `GET /api/tw/v1/fleet`), parsed once with errors that name the parameter, and the opaque cursor. The
 * work happens in the metadata store (`meta/job-page.ts`): a request reads one page of a 100,000-job
 * fleet, and summaries are computed for that page only.
 *
 *   limit     1..1000 (default 100)
 *   offset    rows to skip, or
 *   cursor    `next_cursor` of the previous answer (keyset: stable while jobs arrive)
 *   sort      last_sample | start | name | status | project | owner | gpus | job_id | ranked
 *             | util | throughput | loss | step   (the newest values the processor keeps per job)
 *   order     asc | desc (default: desc for times, GPUs and ranked, asc for names)
 *   status, search, project, owner, tag          filters
 *   name            exact job name (the runs of one model)
 *   started_before  ms: jobs that started at or before it
 *   ids, exclude    comma-separated `tenant/job_id` keys: only / not these jobs
 *   ranked    comma-separated keys in priority order, for sort=ranked (the fleet page's health order)
 */
import type { JobPageQuery, JobSortKey } from '../meta/index.js';
import { JOB_SORT_KEYS, type JobCursor, MAX_JOB_KEYS, MAX_JOB_PAGE, MAX_RANKED_KEYS } from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import { JOB_STATUSES, type JobStatus } from '../model/job.js';
import { intParam, type Query, single } from './query-params.js';

export const DEFAULT_JOB_PAGE = 100;

/** Every parameter of a job list; anything else is refused (a typo must not silently list everything). */
export const JOB_LIST_PARAMS = new Set([
  'limit',
  'offset',
  'cursor',
  'sort',
  'order',
  'status',
  'search',
  'project',
  'owner',
  'tag',
  'name',
  'started_before',
  'ids',
  'exclude',
  'ranked',
  'tenant',
]);

/** Older spellings of sort keys, and the fleet table's column names. */
const SORT_ALIASES: Record<string, JobSortKey> = {
  last_sample_ms: 'last_sample',
  last: 'last_sample',
  activity: 'last_sample',
  start_ms: 'start',
  started: 'start',
  world_size: 'gpus',
  id: 'job_id',
  gpu_utilization: 'util',
  utilization: 'util',
};

/** Largest first, except loss (lowest, the best, first) and names. */
const DESC_BY_DEFAULT = new Set<JobSortKey>([
  'last_sample',
  'start',
  'gpus',
  'ranked',
  'util',
  'throughput',
  'step',
]);

function keysOf(q: Query, name: string, max: number): string[] | undefined {
  const raw = q[name];
  if (raw === undefined) return undefined;
  const keys = (Array.isArray(raw) ? raw : [raw]).flatMap((r) => r.split(',')).filter((k) => k !== '');
  if (keys.length > max)
    throw twError(Errors.badRequest, `parameter ${name} lists ${keys.length} jobs; the most is ${max}`);
  for (const k of keys)
    if (!k.includes('/'))
      throw twError(Errors.badRequest, `${name}: ${JSON.stringify(k)} is not a job key (tenant/job_id)`);
  return keys;
}

export function encodeCursor(c: JobCursor, sort: JobSortKey, order: 'asc' | 'desc'): string {
  return Buffer.from(JSON.stringify({ s: sort, o: order, v: c.value, t: c.tenant, j: c.jobId })).toString(
    'base64url',
  );
}

function decodeCursor(raw: string, sort: JobSortKey, order: 'asc' | 'desc'): JobCursor {
  let c: { s?: unknown; o?: unknown; v?: unknown; t?: unknown; j?: unknown };
  try {
    c = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as typeof c;
  } catch {
    throw twError(
      Errors.badRequest,
      'cursor is not one this server gave out: pass next_cursor of the previous page',
    );
  }
  if (
    (typeof c.v !== 'string' && typeof c.v !== 'number') ||
    typeof c.t !== 'string' ||
    typeof c.j !== 'string'
  )
    throw twError(
      Errors.badRequest,
      'cursor is not one this server gave out: pass next_cursor of the previous page',
    );
  if (c.s !== sort || c.o !== order)
    throw twError(
      Errors.badRequest,
      `cursor belongs to sort=${String(c.s)}&order=${String(c.o)}, not sort=${sort}&order=${order}: start again without cursor`,
    );
  return { value: c.v, tenant: c.t, jobId: c.j };
}

/**
 * The page query of a request. `legacyLimit` is the default and maximum of callers from before paging
 * (`/fleet` without `limit` keeps listing up to that many jobs).
 */
export function parseJobPageQuery(
  q: Query,
  opts: { defaultLimit?: number; maxLimit?: number } = {},
): JobPageQuery {
  for (const name of Object.keys(q))
    if (!JOB_LIST_PARAMS.has(name))
      throw twError(
        Errors.badRequest,
        `unknown parameter ${JSON.stringify(name)}; a job list takes ${[...JOB_LIST_PARAMS].join(', ')}`,
      );
  const maxLimit = opts.maxLimit ?? MAX_JOB_PAGE;
  const limit = intParam(q, 'limit', 1, maxLimit) ?? opts.defaultLimit ?? DEFAULT_JOB_PAGE;
  const offset = intParam(q, 'offset', 0, Number.MAX_SAFE_INTEGER);
  const rawSort = single(q.sort, 'sort') || 'last_sample';
  const sort = SORT_ALIASES[rawSort] ?? rawSort;
  if (!(JOB_SORT_KEYS as readonly string[]).includes(sort))
    throw twError(
      Errors.badRequest,
      `sort=${JSON.stringify(rawSort)} is not one of ${JOB_SORT_KEYS.join(', ')}`,
    );
  const sortKey = sort as JobSortKey;
  const rawOrder = single(q.order, 'order');
  if (rawOrder !== undefined && rawOrder !== '' && rawOrder !== 'asc' && rawOrder !== 'desc')
    throw twError(Errors.badRequest, `order=${JSON.stringify(rawOrder)} must be asc or desc`);
  const order: 'asc' | 'desc' =
    rawOrder === 'asc' || rawOrder === 'desc' ? rawOrder : DESC_BY_DEFAULT.has(sortKey) ? 'desc' : 'asc';
  const status = single(q.status, 'status') || undefined;
  if (status !== undefined && !JOB_STATUSES.includes(status as JobStatus))
    throw twError(
      Errors.badRequest,
      `status=${JSON.stringify(status)} is not one of ${JOB_STATUSES.join(', ')}`,
    );
  const cursor = single(q.cursor, 'cursor');
  if (cursor && offset) throw twError(Errors.badRequest, 'give offset or cursor, not both');
  const text = (name: string) => {
    const v = single(q[name], name);
    return v === undefined || v === '' ? undefined : v;
  };
  const ranked = keysOf(q, 'ranked', MAX_RANKED_KEYS);
  if (ranked && sortKey !== 'ranked')
    throw twError(Errors.badRequest, `ranked is the order of sort=ranked; drop it or give sort=ranked`);
  return {
    limit,
    ...(offset ? { offset } : {}),
    ...(cursor ? { after: decodeCursor(cursor, sortKey, order) } : {}),
    sort: sortKey,
    order,
    ...(status ? { status: status as JobStatus } : {}),
    ...optional('search', text('search')),
    ...optional('project', text('project')),
    ...optional('owner', text('owner')),
    ...optional('tag', text('tag')),
    ...optional('name', text('name')),
    ...optional('startedBefore', intParam(q, 'started_before', 0, Number.MAX_SAFE_INTEGER)),
    ...optional('ids', keysOf(q, 'ids', MAX_JOB_KEYS)),
    ...optional('exclude', keysOf(q, 'exclude', MAX_JOB_KEYS)),
    ...optional('ranked', ranked),
  };
}

function optional<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

/** Whether a request asked for paging (so `/fleet` answers a page instead of its legacy full list). */
export function wantsPaging(q: Query): boolean {
  for (const name of JOB_LIST_PARAMS) if (name !== 'tenant' && q[name] !== undefined) return true;
  return false;
}

/**
 * Facets (status counts, filter choices) cost a pass over the fleet: cached per tenant for a few seconds, as
 * the fleet page polls every three.
 */
export class FacetCache<T> {
  private readonly entries = new Map<string, { at: number; value: Promise<T> }>();
  constructor(private readonly ttlMs: number) {}

  get(key: string, now: number, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = load();
    this.entries.set(key, { at: now, value });
    value.catch(() => this.entries.delete(key));
    if (this.entries.size > 1000) this.entries.delete(this.entries.keys().next().value!);
    return value;
  }
}
