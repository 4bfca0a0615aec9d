/**
 * The runs table's API (`GET /api/tw/v1/runs`), written once: its columns, filters, rows and groups as the
 * metadata store (src/meta/runs.ts) and the query stage (src/query/runs.ts) produce them and the dashboard
 * (src/ui/lib/runs.ts) reads them, and the one parser of a filter (`loss<2.5`) both sides apply. Pure and free
 * of Node imports, so that both the server's and the dashboard's tsconfig compile this file.
 */

export type RunColumnKind = 'text' | 'number' | 'time';

export interface RunColumn {
  /** What `sort`, `filter` and `group` name: `loss`, `status`, `config.learning_rate`, … */
  readonly key: string;
  readonly label: string;
  readonly kind: RunColumnKind;
  readonly source: 'run' | 'summary' | 'config';
}

/** Longest first: `<=` must be tried before `<`. */
export const RUN_FILTER_OPS = ['<=', '>=', '!=', '=', '<', '>', '~'] as const;
export type RunFilterOp = (typeof RUN_FILTER_OPS)[number];

export interface RunFilter {
  readonly column: string;
  readonly op: RunFilterOp;
  /** '' with `=` / `!=`: the run has no value / has one. */
  readonly value: string;
}

/**
 * `loss<2.5` → { column: 'loss', op: '<', value: '2.5' }: the column ends at the first operator character.
 * `'no-operator'` when there is no column before an operator, `'unknown-operator'` for one like `!` alone.
 */
export function splitRunFilter(raw: string): RunFilter | 'no-operator' | 'unknown-operator' {
  const at = raw.search(/[<>=!~]/);
  if (at <= 0) return 'no-operator';
  const op = RUN_FILTER_OPS.find((o) => raw.startsWith(o, at));
  if (!op) return 'unknown-operator';
  return { column: raw.slice(0, at).trim(), op, value: raw.slice(at + op.length).trim() };
}

/** A gauge as JSON: a non-finite newest value (a NaN loss) is the string "NaN", as Prometheus writes values. */
export interface JsonGauge {
  readonly last: number | 'NaN';
  readonly lastMs: number;
  readonly best: number | null;
}

/** A run as the API sends it: its job, its config and its summary gauges. */
export interface JsonRun {
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
  readonly summary: Readonly<Record<string, JsonGauge>>;
  readonly gpuHours: number | null;
}

/** One group: its value (null: runs without one), its runs' count and aggregates of their summaries. */
export interface RunGroup {
  readonly value: string | number | null;
  readonly count: number;
  /** Mean of the last values (`loss`, throughput), minimum of `loss_best`, sum of `gpu_hours`, max of `step`. */
  readonly aggregates: Readonly<Record<string, number | null>>;
}
