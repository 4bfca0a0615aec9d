/**
 * The runs table's data (`GET /api/tw/v1/runs`) and the pure helpers of its page: a run's value in any column,
 * filters as the text the URL and the API share (`loss<2.5`), and the scales of the scatter plot.
 */

import type {
  JsonGauge,
  JsonRun,
  RunColumn,
  RunFilter,
  RunFilterOp,
  RunGroup,
} from '../../model/runs-api.js';
import { splitRunFilter } from '../../model/runs-api.js';

export type { RunColumn, RunColumnKind, RunGroup } from '../../model/runs-api.js';

/** A summary gauge: "NaN" when the newest value was not finite (a diverged loss). */
export type RunGauge = JsonGauge;
export type Run = JsonRun;

/** The answer of `GET /api/tw/v1/runs` (src/query/runs.ts). */
export interface RunsResponse {
  readonly columns: readonly RunColumn[];
  readonly total: number;
  readonly runs: readonly Run[];
  readonly groups?: readonly RunGroup[];
  readonly groupTotal?: number;
}

/** The URL parameters the page shares with the API (the view is the link). */
export const RUN_VIEW_PARAMS = ['sort', 'filter', 'group', 'offset'] as const;

/** The filter operators in the order the filter form lists them. */
export const FILTER_OPS: readonly RunFilterOp[] = ['=', '!=', '<', '<=', '>', '>=', '~'];
export type FilterOp = RunFilterOp;
export type ParsedFilter = RunFilter;

/** `loss<2.5` → parts, by the server's own parser (src/model/runs-api.ts); null when it is not a filter. */
export function parseFilter(raw: string): ParsedFilter | null {
  const f = splitRunFilter(raw);
  return typeof f === 'string' ? null : f;
}

export function formatFilter(f: ParsedFilter): string {
  return `${f.column}${f.op}${f.value}`;
}

/** A run's value in column `key`: a number, a string, or null when it has none (NaN for a diverged loss). */
export function runValue(run: Run, key: string): number | string | null {
  if (key.startsWith('config.')) {
    const v = run.config[key.slice('config.'.length)];
    if (typeof v === 'number' || typeof v === 'string') return v;
    if (typeof v === 'boolean') return String(v);
    return v === undefined || v === null ? null : JSON.stringify(v);
  }
  switch (key) {
    case 'name':
      return run.name;
    case 'job_id':
      return run.jobId;
    case 'status':
      return run.status;
    case 'project':
      return run.project || null;
    case 'owner':
      return run.owner || null;
    case 'framework':
      return run.framework || null;
    case 'world_size':
      return run.worldSize;
    case 'start':
      return run.startMs;
    case 'end':
      return run.endMs;
    case 'duration': {
      const end = run.endMs ?? run.lastSampleMs;
      return end !== null && run.startMs !== null ? (end - run.startMs) / 1000 : null;
    }
    case 'gpu_hours':
      return run.gpuHours;
  }
  const best = key.endsWith('_best');
  const g = run.summary[best ? key.slice(0, -'_best'.length) : key];
  if (!g) return null;
  if (best) return g.best;
  return g.last === 'NaN' ? Number.NaN : g.last;
}

/** `/compare` with these runs (its `jobs=a,b` format). */
export function compareUrl(jobIds: readonly string[]): string {
  return `/compare?jobs=${jobIds.map(encodeURIComponent).join(',')}`;
}

// ---- scatter scales ------------------------------------------------------------------------------------------

export interface Scale {
  /** Maps a value to [0, 1]. */
  readonly at: (v: number | string) => number;
  readonly ticks: readonly { readonly at: number; readonly label: string }[];
  readonly log: boolean;
}

/**
 * A scale over the values of one axis: categorical when any value is a string, logarithmic when every value is
 * positive and they span more than two decades (learning rates), linear otherwise.
 */
export function scaleFor(values: readonly (number | string)[], fmt: (v: number) => string): Scale {
  if (values.some((v) => typeof v === 'string')) {
    const cats = [...new Set(values.map(String))].sort();
    const step = 1 / (cats.length + 1);
    return {
      at: (v) => (cats.indexOf(String(v)) + 1) * step,
      ticks: cats.map((c, i) => ({ at: (i + 1) * step, label: c })),
      log: false,
    };
  }
  const nums = values as readonly number[];
  let lo = Math.min(...nums);
  let hi = Math.max(...nums);
  const log = lo > 0 && hi / lo > 100;
  const f = log ? Math.log10 : (x: number) => x;
  let a = f(lo);
  let b = f(hi);
  if (a === b) {
    a -= log ? 0.5 : Math.abs(a) * 0.1 || 1;
    b += log ? 0.5 : Math.abs(b) * 0.1 || 1;
  }
  const pad = (b - a) * 0.05;
  a -= pad;
  b += pad;
  lo = log ? 10 ** a : a;
  hi = log ? 10 ** b : b;
  const at = (v: number | string) => (f(Number(v)) - a) / (b - a);
  const ticks: { at: number; label: string }[] = [];
  if (log) {
    for (let e = Math.ceil(a); e <= Math.floor(b); e++) ticks.push({ at: at(10 ** e), label: fmt(10 ** e) });
  } else {
    const step = niceStep((hi - lo) / 5);
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step)
      ticks.push({ at: at(t), label: fmt(Number(t.toPrecision(12))) });
  }
  return { at, ticks, log };
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}
