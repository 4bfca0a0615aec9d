/**
 * "Compare with previous runs": the runs a user means by it are earlier runs of the same model — runs with
 * the same name, and runs of the same project whose configuration is similar. A project holds many models
 * (an `llm` project trains llama and gpt alike); a loss curve of another model is no baseline.
 */
import { flattenConfig } from './config-diff.js';
import type { FleetJob } from './types.js';

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
export function previousRuns(
  fleet: readonly FleetJob[],
  base: FleetJob,
  n: number,
): { runs: FleetJob[]; how: string } {
  const before = (j: FleetJob) =>
    j.jobId !== base.jobId && j.startMs !== null && base.startMs !== null && j.startMs <= base.startMs;
  const newest = (a: FleetJob, c: FleetJob) =>
    (c.startMs ?? 0) - (a.startMs ?? 0) || a.jobId.localeCompare(c.jobId);
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
