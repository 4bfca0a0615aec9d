/**
 * The runs table's kept summaries (see `./runs.ts` for what they are and their merging rule): the gauges, the
 * `job_summaries` schema of both dialects, and the summary ⇄ row mapping and merging upsert the stores share.
 * Separate from the queries (`./runs.ts`) because the processor's write path (`JobStore.noteGauge`, the
 * upserts) needs only this half.
 */
import type { Migration } from './meta-store.js';

// ---- the gauges --------------------------------------------------------------------------------------------

export interface SummaryGauge {
  /** Column prefix and API name. */
  readonly key: string;
  /** The metric whose samples feed it (a derived per-job series for throughput: processor/derived.ts). */
  readonly metric: string;
  readonly best: 'min' | 'max';
  readonly label: string;
}

/**
 * The gauges kept per job. Throughput comes from the processor's per-job sums over ranks, so a run's number is
 * the one its job page shows. Adding one needs a migration adding its three columns.
 */
export const SUMMARY_GAUGES: readonly SummaryGauge[] = [
  { key: 'loss', metric: 'train_loss', best: 'min', label: 'Loss' },
  { key: 'eval_loss', metric: 'eval_loss', best: 'min', label: 'Eval loss' },
  { key: 'accuracy', metric: 'eval_accuracy', best: 'max', label: 'Eval accuracy' },
  { key: 'step', metric: 'train_step', best: 'max', label: 'Step' },
  {
    key: 'samples_per_second',
    metric: 'job_id:train_samples_per_second:sum',
    best: 'max',
    label: 'Samples/s',
  },
  { key: 'tokens_per_second', metric: 'job_id:train_tokens_per_second:sum', best: 'max', label: 'Tokens/s' },
  // The mean over the job's GPUs (the processor's per-job average), as the fleet table's utilization column.
  {
    key: 'gpu_utilization',
    metric: 'job_id:gpu_utilization_ratio:avg',
    best: 'max',
    label: 'GPU utilization',
  },
];

/** One gauge of one job: the newest sample's time and value (NaN: not finite) and the best finite value. */
export interface GaugeSummary {
  lastMs: number;
  last: number;
  /** null: no finite value seen. */
  best: number | null;
}

/** A job's gauges by gauge key; a gauge without samples is absent. */
export type RunSummary = Partial<Record<string, GaugeSummary>>;

/** Folds one observation (`lastMs`, `last`, `best`) of gauge `g` into `summary` (in place). */
export function noteGaugeInto(
  summary: RunSummary,
  g: SummaryGauge,
  lastMs: number,
  last: number,
  best: number | null,
): void {
  const cur = summary[g.key];
  if (!cur) {
    summary[g.key] = { lastMs, last, best };
    return;
  }
  if (lastMs >= cur.lastMs) {
    cur.lastMs = lastMs;
    cur.last = last;
  }
  cur.best = betterOf(g, cur.best, best);
}

function betterOf(g: SummaryGauge, a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return g.best === 'min' ? Math.min(a, b) : Math.max(a, b);
}

/** `older` ⊕ `newer` (neither changed): the rule the stores' upserts run in SQL. */
export function mergeRunSummaries(older: RunSummary | undefined, newer: RunSummary | undefined): RunSummary {
  const out: RunSummary = {};
  for (const g of SUMMARY_GAUGES) {
    const a = older?.[g.key];
    const b = newer?.[g.key];
    if (a) out[g.key] = { ...a };
    if (b) noteGaugeInto(out, g, b.lastMs, b.last, b.best);
  }
  return out;
}

// ---- schema --------------------------------------------------------------------------------------------------

const GAUGE_COLUMNS_SQLITE = `loss_last REAL, loss_last_ms INTEGER, loss_best REAL,
      eval_loss_last REAL, eval_loss_last_ms INTEGER, eval_loss_best REAL,
      accuracy_last REAL, accuracy_last_ms INTEGER, accuracy_best REAL,
      step_last REAL, step_last_ms INTEGER, step_best REAL,
      samples_per_second_last REAL, samples_per_second_last_ms INTEGER, samples_per_second_best REAL,
      tokens_per_second_last REAL, tokens_per_second_last_ms INTEGER, tokens_per_second_best REAL`;

/** Columns of the gauges added after migration 150, by the migration that added them. */
const GPU_UTILIZATION_COLUMNS = [
  'gpu_utilization_last REAL',
  'gpu_utilization_last_ms INTEGER',
  'gpu_utilization_best REAL',
];
const addColumns = (cols: readonly string[]) =>
  cols.map((c) => `ALTER TABLE job_summaries ADD COLUMN ${c};`).join('\n      ');
const pgTypes = (sql: string) => sql.replaceAll('REAL', 'DOUBLE PRECISION').replaceAll('INTEGER', 'BIGINT');
const GPU_UTILIZATION_DESCRIPTION = 'job summaries: GPU utilization (the fleet table sorts by it)';

/** SQLite: one row per job that has any summary (150: after the jobs table, 100). */
export const RUN_SUMMARY_MIGRATIONS: readonly Migration[] = [
  {
    version: 150,
    description: 'job summaries (runs table)',
    sql: `CREATE TABLE job_summaries (
      tenant TEXT NOT NULL,
      job_id TEXT NOT NULL,
      ${GAUGE_COLUMNS_SQLITE},
      PRIMARY KEY (tenant, job_id)
    );`,
  },
  { version: 151, description: GPU_UTILIZATION_DESCRIPTION, sql: addColumns(GPU_UTILIZATION_COLUMNS) },
];

/** PostgreSQL: the same table, PostgreSQL's types. */
export const RUN_SUMMARY_PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 150,
    description: 'job summaries (runs table)',
    sql: `CREATE TABLE job_summaries (
      tenant TEXT NOT NULL,
      job_id TEXT NOT NULL,
      ${pgTypes(GAUGE_COLUMNS_SQLITE)},
      PRIMARY KEY (tenant, job_id)
    );`,
  },
  {
    version: 151,
    description: GPU_UTILIZATION_DESCRIPTION,
    sql: pgTypes(addColumns(GPU_UTILIZATION_COLUMNS)),
  },
];

/** A job's summary as a row of `job_summaries` (NULL last: not finite; absent gauge: all three NULL). */
export function summaryToRow(
  tenant: string,
  jobId: string,
  s: RunSummary,
): Record<string, string | number | null> {
  const row: Record<string, string | number | null> = { tenant, job_id: jobId };
  for (const g of SUMMARY_GAUGES) {
    const v = s[g.key];
    row[`${g.key}_last`] = v && Number.isFinite(v.last) ? v.last : null;
    row[`${g.key}_last_ms`] = v ? v.lastMs : null;
    row[`${g.key}_best`] = v ? v.best : null;
  }
  return row;
}

/** The summary columns of `job_summaries`, three per gauge. */
export const GAUGE_COLS = SUMMARY_GAUGES.flatMap((g) => [
  `${g.key}_last`,
  `${g.key}_last_ms`,
  `${g.key}_best`,
]);

/**
 * The merging upsert of `job_summaries`, for SQLite (`@name` parameters, one row) or PostgreSQL (a JSON array
 * of rows in `$1`). `s` is the stored row, `excluded` the proposed one.
 */
export function summaryUpsertSql(dialect: 'sqlite' | 'pg'): string {
  const least = dialect === 'pg' ? 'LEAST' : 'MIN';
  const greatest = dialect === 'pg' ? 'GREATEST' : 'MAX';
  // SQLite's MIN/MAX of several arguments are NULL when any is: COALESCE both sides first.
  const pick = (fn: string, a: string, b: string) =>
    dialect === 'pg' ? `${fn}(${a}, ${b})` : `${fn}(COALESCE(${a}, ${b}), COALESCE(${b}, ${a}))`;
  const sets = SUMMARY_GAUGES.flatMap((g) => {
    const newer = `excluded.${g.key}_last_ms IS NOT NULL AND (s.${g.key}_last_ms IS NULL OR excluded.${g.key}_last_ms >= s.${g.key}_last_ms)`;
    return [
      `${g.key}_last = CASE WHEN ${newer} THEN excluded.${g.key}_last ELSE s.${g.key}_last END`,
      `${g.key}_last_ms = ${pick(greatest, `s.${g.key}_last_ms`, `excluded.${g.key}_last_ms`)}`,
      `${g.key}_best = ${pick(g.best === 'min' ? least : greatest, `s.${g.key}_best`, `excluded.${g.key}_best`)}`,
    ];
  });
  const cols = ['tenant', 'job_id', ...GAUGE_COLS];
  const source =
    dialect === 'pg'
      ? `SELECT ${cols.join(', ')} FROM jsonb_to_recordset($1::jsonb) AS x(tenant TEXT, job_id TEXT, ${GAUGE_COLS.map(
          (c) => `${c} ${c.endsWith('_ms') ? 'BIGINT' : 'DOUBLE PRECISION'}`,
        ).join(', ')}) ORDER BY tenant, job_id`
      : `VALUES (${cols.map((c) => `@${c}`).join(', ')})`;
  // SQLite's upsert after INSERT … SELECT needs a WHERE to parse; VALUES does not.
  return `INSERT INTO job_summaries AS s (${cols.join(', ')}) ${source}
    ON CONFLICT (tenant, job_id) DO UPDATE SET ${sets.join(',\n      ')}`;
}

/** Raw row of the runs query: `jobs` columns plus `job_summaries`' and the GPU-hours. */
export type RunSqlRow = Record<string, unknown>;

/** A row's summary (a NULL `last` with its time set: not finite, NaN). */
export function summaryFromRow(r: RunSqlRow): RunSummary {
  const s: RunSummary = {};
  for (const g of SUMMARY_GAUGES) {
    const ms = r[`${g.key}_last_ms`];
    if (ms === null || ms === undefined) continue;
    const last = r[`${g.key}_last`];
    const best = r[`${g.key}_best`];
    s[g.key] = {
      lastMs: Number(ms),
      last: last === null || last === undefined ? Number.NaN : Number(last),
      best: best === null || best === undefined ? null : Number(best),
    };
  }
  return s;
}
