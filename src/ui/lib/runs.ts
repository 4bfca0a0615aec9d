/**
 * The runs table's data (`GET /api/tw/v1/runs`) and the pure helpers of its page: a run's value in any column,
 * filters as the text the URL and the API share (`loss<2.5`), and the scales of the scatter plot.
 */

export type RunColumnKind = 'text' | 'number' | 'time';

export interface RunColumn {
  readonly key: string;
  readonly label: string;
  readonly kind: RunColumnKind;
  readonly source: 'run' | 'summary' | 'config';
}

export interface RunGauge {
  /** "NaN" when the newest value was not finite (a diverged loss). */
  readonly last: number | 'NaN';
  readonly lastMs: number;
  readonly best: number | null;
}

export interface Run {
  readonly jobId: string;
  readonly name: string;
  readonly project: string;
  readonly owner: string;
  readonly framework: string;
  readonly status: string;
  readonly worldSize: number | null;
  readonly startMs: number | null;
  readonly endMs: number | null;
  readonly lastSampleMs: number | null;
  readonly tags: readonly string[];
  readonly config: Readonly<Record<string, unknown>>;
  readonly summary: Readonly<Record<string, RunGauge>>;
  readonly gpuHours: number | null;
}

export interface RunGroup {
  readonly value: string | number | null;
  readonly count: number;
  readonly aggregates: Readonly<Record<string, number | null>>;
}

export interface RunsResponse {
  readonly columns: readonly RunColumn[];
  readonly total: number;
  readonly runs: readonly Run[];
  readonly groups?: readonly RunGroup[];
  readonly groupTotal?: number;
}

/** The URL parameters the page shares with the API (the view is the link). */
export const RUN_VIEW_PARAMS = ['sort', 'filter', 'group', 'offset'] as const;

export const FILTER_OPS = ['=', '!=', '<', '<=', '>', '>=', '~'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

export interface ParsedFilter {
  readonly column: string;
  readonly op: FilterOp;
  readonly value: string;
}

/** `loss<2.5` → parts (as the server parses it: the column ends at the first operator character). */
export function parseFilter(raw: string): ParsedFilter | null {
  const at = raw.search(/[<>=!~]/);
  if (at <= 0) return null;
  const op = (['<=', '>=', '!=', '=', '<', '>', '~'] as const).find((o) => raw.startsWith(o, at));
  if (!op) return null;
  return { column: raw.slice(0, at).trim(), op, value: raw.slice(at + op.length).trim() };
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
