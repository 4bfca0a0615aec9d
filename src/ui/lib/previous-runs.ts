/**
 * "Compare with previous runs": the runs a user means by it are earlier runs of the same model — runs with
 * the same name, and runs of the same project whose configuration is similar. A project holds many models
 * (an `llm` project trains llama and gpt alike); a loss curve of another model is no baseline.
 */
import { flattenConfig } from './config-diff.js';
import type { JobSummary } from './types.js';

/** What picking previous runs reads of a job. */
export type RunInfo = Pick<JobSummary, 'jobId' | 'name' | 'project' | 'config' | 'startMs'>;

/** Config keys that name the model: runs that differ in one of them are different models. */
const MODEL_KEYS = ['model', 'model_name', 'model_type', 'arch', 'architecture', 'model.name', 'model.type'];

/** The similarity from which a run of the same project counts as a previous run of the same model. */
export const MIN_CONFIG_SIMILARITY = 0.5;

/**
 * 0..1: the share of configuration keys (of either run, flattened) on which both agree; 0 when they name
 * different models. Two empty configurations are not evidence of anything: 0.
 */
export function configSimilarity(
  a: Readonly<Record<string, unknown>>,
  b: Readonly<Record<string, unknown>>,
): number {
  const fa = flattenConfig(a);
  const fb = flattenConfig(b);
  for (const k of MODEL_KEYS)
    if (k in fa && k in fb && JSON.stringify(fa[k]) !== JSON.stringify(fb[k])) return 0;
  const keys = new Set([...Object.keys(fa), ...Object.keys(fb)]);
  if (keys.size === 0) return 0;
  let same = 0;
  for (const k of keys) if (k in fa && k in fb && JSON.stringify(fa[k]) === JSON.stringify(fb[k])) same++;
  return same / keys.size;
}

/**
 * Up to `n` runs that started before `base` (or with it: a sweep launched at once): those named as it,
 * newest first, then those of its project with a configuration at least {@link MIN_CONFIG_SIMILARITY}
 * alike, most similar first. `how` says in words what was picked.
 */
export function previousRuns<J extends RunInfo>(
  fleet: readonly J[],
  base: RunInfo,
  n: number,
): { runs: J[]; how: string } {
  const before = (j: J) =>
    j.jobId !== base.jobId && j.startMs !== null && base.startMs !== null && j.startMs <= base.startMs;
  const newest = (a: J, c: J) => (c.startMs ?? 0) - (a.startMs ?? 0) || a.jobId.localeCompare(c.jobId);
  const sameName = fleet.filter((j) => before(j) && j.name === base.name).sort(newest);
  const similar = base.project
    ? fleet
        .filter((j) => before(j) && j.name !== base.name && j.project === base.project)
        .map((j) => ({ j, s: configSimilarity(base.config, j.config) }))
        .filter((x) => x.s >= MIN_CONFIG_SIMILARITY)
        .sort((a, c) => c.s - a.s || newest(a.j, c.j))
        .map((x) => x.j)
    : [];
  const runs = [...sameName, ...similar].slice(0, n);
  const named = Math.min(sameName.length, runs.length);
  const alike = runs.length - named;
  const parts: string[] = [];
  if (named > 0) parts.push(`${named} previous run${named === 1 ? '' : 's'} named “${base.name}”`);
  if (alike > 0)
    parts.push(
      `${alike} run${alike === 1 ? '' : 's'} of project “${base.project}” with a similar configuration`,
    );
  const how =
    parts.length > 0
      ? `the ${parts.join(' and ')}`
      : `nothing: no earlier run is named “${base.name}”${base.project ? ` or has a similar configuration in project “${base.project}”` : ''}`;
  return { runs, how };
}

/**
 * A filtered page of the fleet (`GET /api/tw/v1/fleet` with paging): what compare asks the server for
 * instead of loading the whole fleet, which at 100,000 jobs cannot be a list it searches in the browser.
 */
export interface RunPageQuery {
  readonly name?: string;
  readonly project?: string;
  /** ms: runs that started at or before it. */
  readonly startedBefore?: number;
  readonly search?: string;
  readonly sort: 'start' | 'last_sample';
  readonly limit: number;
}

/** How compare reads runs: one by id (undefined: no such run), or a filtered page. */
export interface RunLookup<J extends RunInfo> {
  job(jobId: string): Promise<J | undefined>;
  page(q: RunPageQuery): Promise<J[]>;
}

/** Runs of a project read to find those of a similar configuration (the newest that started before). */
export const PROJECT_CANDIDATES = 200;

/** The query string of a {@link RunPageQuery} (newest first). */
export function runPageParams(q: RunPageQuery): string {
  const p = new URLSearchParams({ sort: q.sort, order: 'desc', limit: String(q.limit) });
  if (q.name !== undefined) p.set('name', q.name);
  if (q.project !== undefined) p.set('project', q.project);
  if (q.startedBefore !== undefined) p.set('started_before', String(q.startedBefore));
  if (q.search) p.set('search', q.search);
  return p.toString();
}

/**
 * `?base=<job>&previous=N`: the base run, looked up by its id (so a live run is always found, however large
 * the fleet), and its previous runs from two filtered pages — the newest runs of its name and of its project
 * that started before it — picked by {@link previousRuns}.
 */
export async function findPreviousRuns<J extends RunInfo>(
  lookup: RunLookup<J>,
  baseId: string,
  n: number,
): Promise<{ ids: string[]; how: string }> {
  const base = await lookup.job(baseId);
  if (!base) return { ids: [baseId], how: `nothing: there is no job ${baseId}` };
  if (base.startMs === null)
    return { ids: [baseId], how: `nothing: ${baseId} has no start time to compare runs before` };
  const startedBefore = base.startMs;
  const [sameName, sameProject] = await Promise.all([
    // n + 1: the base itself may be among them (a run started at the same time as it, a sweep).
    lookup.page({ name: base.name, startedBefore, sort: 'start', limit: n + 1 }),
    base.project
      ? lookup.page({ project: base.project, startedBefore, sort: 'start', limit: PROJECT_CANDIDATES })
      : Promise.resolve([] as J[]),
  ]);
  const seen = new Set<string>();
  const candidates = [...sameName, ...sameProject].filter((j) => !seen.has(j.jobId) && seen.add(j.jobId));
  const prev = previousRuns(candidates, base, n);
  return { ids: [base.jobId, ...prev.runs.map((j) => j.jobId)], how: prev.how };
}
