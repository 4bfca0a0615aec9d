/**
 * A fleet heatmap's rows at 100,000 jobs (issue 17): only the series of the jobs the fleet page's filters select
 * (rows by job or by node alike), and
 * grouped by project or owner when more jobs have data than rows fit on the screen, so the browser gets one
 * row per group (a click on a group filters the page to it: drill-down). Job metadata lives in the metadata
 * store and series carry only `tenant` and `job_id`, so the rows are mapped here, between the select and the
 * matrix.
 *
 *   job.status, job.search, job.project, job.owner, job.tag, job.ids   the job list's filters (job-list.ts)
 *   group_by    project | owner: what rows are grouped by when there are more than max_rows jobs
 *   max_rows    how many job rows fit (1..10000; default 200 when group_by is given)
 */
import type { JobGroupRow, JobRepository } from '../meta/index.js';
import { MAX_JOB_KEYS } from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import type { LabelSet } from '../model/labels.js';
import { FacetCache, parseJobPageQuery } from './job-list.js';
import { type Query, single } from './query-params.js';

export const JOB_ROW_OPTIONS = [
  'group_by',
  'max_rows',
  'job.status',
  'job.search',
  'job.project',
  'job.owner',
  'job.tag',
  'job.ids',
] as const;

const GROUP_BY = ['project', 'owner'] as const;
type GroupBy = (typeof GROUP_BY)[number];
const DEFAULT_MAX_ROWS = 200;
/** Job lists of a filter are reused this long: live heatmaps fetch their newest columns every second. */
const GROUPS_TTL_MS = 10_000;

const caches = new WeakMap<JobRepository, FacetCache<JobGroupRow[]>>();

function cachedGroups(
  jobs: JobRepository,
  tenant: string | null,
  filter: Parameters<JobRepository['groups']>[2],
  signal?: AbortSignal,
): Promise<JobGroupRow[]> {
  let cache = caches.get(jobs);
  if (!cache) {
    cache = new FacetCache<JobGroupRow[]>(GROUPS_TTL_MS);
    caches.set(jobs, cache);
  }
  const now = Date.now();
  return cache.get(JSON.stringify([tenant, filter]), now, () => jobs.groups(tenant, now, filter, signal));
}

export interface JobRows {
  readonly regroup: (labels: readonly LabelSet[]) => Promise<{
    by: readonly string[];
    rows: (LabelSet | undefined)[];
  }>;
  /** What the answer says about the rows: grouped by what, how many jobs, and the jobs of each row. */
  readonly describe: (rows: readonly { labels: Record<string, string> }[]) => {
    grouped: GroupBy | null;
    jobs: number;
    row_jobs: number[] | null;
  };
}

/** The row mapping of a heatmap request, or undefined when it asks for no job filter or grouping. */
export async function jobRows(
  jobs: JobRepository,
  tenant: string | null,
  q: Query,
  by: readonly string[],
  signal?: AbortSignal,
): Promise<JobRows | undefined> {
  const filterParams: Query = {};
  for (const name of ['status', 'search', 'project', 'owner', 'tag', 'ids'])
    if (q[`job.${name}`] !== undefined) filterParams[name] = q[`job.${name}`];
  const groupByRaw = single(q.group_by, 'group_by') || undefined;
  if (groupByRaw !== undefined && !(GROUP_BY as readonly string[]).includes(groupByRaw))
    throw twError(Errors.badRequest, `group_by=${JSON.stringify(groupByRaw)} must be project or owner`);
  const groupBy = groupByRaw as GroupBy | undefined;
  const maxRowsRaw = single(q.max_rows, 'max_rows') || undefined;
  const maxRows = maxRowsRaw === undefined ? DEFAULT_MAX_ROWS : Number(maxRowsRaw);
  if (!Number.isInteger(maxRows) || maxRows < 1 || maxRows > 10_000)
    throw twError(
      Errors.badRequest,
      `max_rows=${JSON.stringify(maxRowsRaw)} must be an integer from 1 to 10000`,
    );
  const filtered = Object.keys(filterParams).length > 0;
  if (!filtered && groupBy === undefined) {
    if (maxRowsRaw !== undefined)
      throw twError(Errors.badRequest, 'max_rows needs group_by (project or owner)');
    return undefined;
  }
  // Filters apply to any rows (a node's series carry their job's id); grouping replaces rows of jobs only.
  if (groupBy !== undefined && !by.includes('job_id'))
    throw twError(
      Errors.badRequest,
      `group_by needs rows by job_id (by=tenant,job_id), not by=${by.join(',')}`,
    );
  const { sort: _s, order: _o, limit: _l, ...filter } = parseJobPageQuery(filterParams);
  /**
   * The metadata of the jobs that have series in the range (the heatmap's candidates), matching the
   * filters: looked up by key, so a 100,000-job fleet with a few hundred active jobs reads a few hundred
   * rows. Beyond MAX_JOB_KEYS jobs with data, the filter's whole job list is read (cached briefly).
   */
  const metaOf = async (keys: readonly string[]): Promise<Map<string, JobGroupRow>> => {
    const rows =
      keys.length <= MAX_JOB_KEYS
        ? await jobs.groups(
            tenant,
            Date.now(),
            { ...filter, ids: filter.ids ? keys.filter((k) => filter.ids!.includes(k)) : keys },
            signal,
          )
        : await cachedGroups(jobs, tenant, filter, signal);
    const meta = new Map<string, JobGroupRow>();
    for (const r of rows) meta.set(`${r.tenant}/${r.job_id}`, r);
    return meta;
  };

  let groupedBy: GroupBy | null = null;
  let jobCount = 0;
  const jobsPerGroup = new Map<string, number>();
  return {
    async regroup(labels) {
      const keys = labels.map((l) => `${l.tenant ?? tenant ?? ''}/${l.job_id ?? ''}`);
      const meta = await metaOf([...new Set(keys)]);
      const kept = labels.map((l, i) => (filtered && !meta.has(keys[i]!) ? undefined : l));
      const seen = new Set<string>();
      kept.forEach((l, i) => {
        if (l) seen.add(keys[i]!);
      });
      jobCount = seen.size;
      if (groupBy === undefined || seen.size <= maxRows) return { by, rows: kept };
      groupedBy = groupBy;
      jobsPerGroup.clear();
      for (const k of seen) {
        const g = meta.get(k)?.[groupBy] ?? '';
        jobsPerGroup.set(g, (jobsPerGroup.get(g) ?? 0) + 1);
      }
      return {
        by: [groupBy],
        rows: kept.map((l, i) => (l ? { [groupBy]: meta.get(keys[i]!)?.[groupBy] ?? '' } : undefined)),
      };
    },
    describe(rows) {
      const g = groupedBy;
      return {
        grouped: g,
        jobs: jobCount,
        row_jobs: g === null ? null : rows.map((r) => jobsPerGroup.get(r.labels[g] ?? '') ?? 0),
      };
    },
  };
}
