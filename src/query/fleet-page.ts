/**
 * The fleet page's data for fleets of 100,000 jobs (issue 17): one page of jobs from the metadata store with
 * its live numbers, the count of matching jobs, the filter menus and status counts over the whole fleet, and
 * the fleet's GPUs now — never the whole fleet's summaries.
 */
import type { JobFacets, JobRepository } from '../meta/index.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL } from '../model/labels.js';
import type { Storage } from '../storage/index.js';
import { encodeCursor, FacetCache, parseJobPageQuery } from './job-list.js';
import { newestValues } from './job-summary.js';

/** The window in which a GPU's newest utilization counts as "now" (as the fleet table's numbers). */
const GPU_NOW_WINDOW_MS = 10 * 60_000;
/** Facets cost a pass over the fleet (about a second at 100,000 jobs on a loaded machine): reused this long. */
const FACETS_TTL_MS = 30_000;

export interface FleetGpus {
  /** GPUs with a utilization sample in the last ten minutes (a finished job's series end with a staleness marker). */
  readonly gpus: number;
  readonly busyGpus: number;
  readonly idleGpus: number;
  readonly meanUtilization: number | null;
}

/**
 * The fleet's GPUs now: the newest utilization of every GPU series of the tenant in the last ten minutes,
 * read in bulk (one select), so the totals do not depend on which page of jobs is shown.
 */
export async function fleetGpus(
  storage: Storage,
  tenant: string | null,
  now: number,
  idleBelow: number,
  signal?: AbortSignal,
): Promise<FleetGpus> {
  const from = now - GPU_NOW_WINDOW_MS;
  const latest = await newestValues(
    storage.querier(tenant, from, now + 60_000),
    [new LabelMatcher('=', METRIC_NAME_LABEL, 'gpu_utilization_ratio')],
    from,
    now + 60_000, // simulated or skewed clocks may run slightly ahead
    signal,
  );
  let busy = 0;
  let idle = 0;
  let sum = 0;
  let n = 0;
  for (const { v } of latest) {
    if (!Number.isFinite(v)) continue;
    if (v >= idleBelow) busy++;
    else idle++;
    sum += v;
    n++;
  }
  return { gpus: n, busyGpus: busy, idleGpus: idle, meanUtilization: n ? sum / n : null };
}

/** Per job store (a process may serve several in tests), per tenant. */
const facetCaches = new WeakMap<JobRepository, FacetCache<JobFacets>>();

function facetsOf(jobs: JobRepository, tenant: string | null, now: number, signal?: AbortSignal) {
  let cache = facetCaches.get(jobs);
  if (!cache) {
    cache = new FacetCache<JobFacets>(FACETS_TTL_MS);
    facetCaches.set(jobs, cache);
  }
  return cache.get(tenant ?? '\u0000all', now, () => jobs.facets(tenant, now, signal));
}

/** A page of the fleet; `summarize` gives the page's jobs their live numbers (dashboard.ts's summarizeFleet). */
export async function fleetPage<S extends JobInfo>(
  deps: { readonly storage: Storage; readonly jobs: JobRepository },
  tenant: string | null,
  q: Record<string, string | string[] | undefined>,
  idleBelow: number,
  summarize: (jobs: readonly JobInfo[]) => Promise<S[]>,
  signal?: AbortSignal,
) {
  const query = parseJobPageQuery(q);
  const now = Date.now();
  const [page, facets, gpus] = await Promise.all([
    deps.jobs.page(tenant, now, query, signal),
    facetsOf(deps.jobs, tenant, now, signal),
    fleetGpus(deps.storage, tenant, now, idleBelow, signal),
  ]);
  return {
    tenants: facets.tenants,
    jobs: await summarize(page.jobs),
    total: page.total,
    limit: query.limit,
    offset: query.after ? null : (query.offset ?? 0),
    next_cursor: page.next ? encodeCursor(page.next, query.sort, query.order) : null,
    facets: { status: facets.byStatus, owners: facets.owners, projects: facets.projects, tags: facets.tags },
    gpus,
  };
}
