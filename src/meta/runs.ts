/**
 * Runs: every job of a tenant as a row of hyperparameters (its `config`) and summary metrics, sorted, filtered,
 * grouped and paged in the metadata store (the runs table of the dashboard, `GET /api/tw/v1/runs`).
 *
 * The summary metrics are kept, not computed per request: the processor notes, per job, the newest value and
 * the best value of a few gauges as their samples pass (`JobStore.noteGauge`, beside `noteSamples`), buffers
 * them in the job's delta and writes them with it at each checkpoint into `job_summaries` (one row per job,
 * one (last, last time, best) triple of columns per gauge). So listing 100,000 runs reads two tables and never
 * the TSDB.
 *
 * Merging rule (the same in JavaScript, SQLite and PostgreSQL; `runs.contract.test.ts` checks both stores):
 * a gauge's `last` is the value of the newest sample (a later delta wins a tie); `best` is the minimum (loss)
 * or the maximum (steps, throughput, accuracy) of the finite values seen. A non-finite newest value (a NaN loss)
 * is stored as `last` NULL with its time set: readers report it as NaN, and it sorts with the missing values.
 *
 * Query semantics: a column is a run field (`name`, `status`, …), a summary (`loss`, `loss_best`, `gpu_hours`,
 * …) or a config key (`config.<key>`). Missing values sort last in either direction; config values sort
 * numbers before strings. `!=` keeps runs without the value (as a W&B filter does); `~` is a case-insensitive
 * substring. GPU-hours are the world size times the wall time from start to end (or to the newest sample).
 *
 * This file holds the queries; the gauges, their schema and the summary upsert are in `./run-summary.ts`.
 */
import type { JobInfo } from '../model/job.js';
import { GAUGE_COLS, type RunSqlRow, type RunSummary, SUMMARY_GAUGES } from './run-summary.js';

// ---- queries -------------------------------------------------------------------------------------------------

// The API's column, filter and group shapes are shared with the dashboard (model/runs-api.ts).
import type { RunColumn, RunColumnKind, RunFilter, RunFilterOp, RunGroup } from '../model/runs-api.js';

export { RUN_FILTER_OPS } from '../model/runs-api.js';
export type { RunColumn, RunColumnKind, RunFilter, RunFilterOp, RunGroup };

export interface RunQuery {
  readonly sort?: { readonly column: string; readonly desc: boolean };
  readonly filters?: readonly RunFilter[];
  /** Runs are folded into one row per value of this column (groups are paged instead of runs). */
  readonly groupBy?: string;
  readonly limit: number;
  readonly offset: number;
}

/** A run: its job and its kept summary. */
export interface RunRow {
  readonly job: JobInfo;
  readonly summary: RunSummary;
  readonly gpuHours: number | null;
}

export interface RunPage {
  /** Runs matching the filters (all groups together when grouped). */
  readonly total: number;
  /** The page of runs (empty when grouped). */
  readonly runs: readonly RunRow[];
  /** The page of groups, when grouped; `groupTotal` counts them all. */
  readonly groups?: readonly RunGroup[];
  readonly groupTotal?: number;
  /** Config keys seen in the tenant's most recently active runs, sorted. */
  readonly configKeys: readonly string[];
}

/** The runs part of the job metadata contract (`JobStore`, over SQLite or PostgreSQL). */
export interface RunRepository {
  runs(tenant: string, nowMs: number, query: RunQuery, signal?: AbortSignal): Promise<RunPage>;
}

/** Config keys are read from this many most recently active runs (bounded work at 100K runs). */
export const CONFIG_KEY_SAMPLE = 2000;
export const MAX_CONFIG_KEYS = 200;
export const MAX_RUNS_PAGE = 500;

/** A bad query: the route answers 400 with the message. */
export class RunQueryError extends Error {}

const RUN_FIELDS: readonly RunColumn[] = [
  { key: 'name', label: 'Name', kind: 'text', source: 'run' },
  { key: 'job_id', label: 'Job id', kind: 'text', source: 'run' },
  { key: 'status', label: 'Status', kind: 'text', source: 'run' },
  { key: 'project', label: 'Project', kind: 'text', source: 'run' },
  { key: 'owner', label: 'Owner', kind: 'text', source: 'run' },
  { key: 'framework', label: 'Framework', kind: 'text', source: 'run' },
  { key: 'world_size', label: 'GPUs', kind: 'number', source: 'run' },
  { key: 'start', label: 'Started', kind: 'time', source: 'run' },
  { key: 'end', label: 'Ended', kind: 'time', source: 'run' },
  { key: 'duration', label: 'Duration', kind: 'number', source: 'summary' },
  { key: 'gpu_hours', label: 'GPU-hours', kind: 'number', source: 'summary' },
];

const SUMMARY_COLUMNS: readonly RunColumn[] = SUMMARY_GAUGES.flatMap((g): RunColumn[] => [
  { key: g.key, label: g.label, kind: 'number', source: 'summary' },
  {
    key: `${g.key}_best`,
    label: `${g.best === 'min' ? 'Best' : 'Max'} ${g.label.toLowerCase()}`,
    kind: 'number',
    source: 'summary',
  },
]).filter((c) => c.key !== 'step_best');

/** Every column of the runs table but the config keys, in display order. */
export const FIXED_RUN_COLUMNS: readonly RunColumn[] = [...RUN_FIELDS, ...SUMMARY_COLUMNS];

const CONFIG_PREFIX = 'config.';
const CONFIG_KEY_RE = /^[^"\\\u0000-\u001f]{1,200}$/;

export function configColumn(key: string): RunColumn {
  return { key: `${CONFIG_PREFIX}${key}`, label: key, kind: 'text', source: 'config' };
}

/**
 * The SQL of one dialect. Each `param` call binds a new numbered placeholder (SQLite `@pN`, PostgreSQL `$N`), so
 * an expression holding one may be repeated anywhere in the statement (filters, ORDER BY) and still bind once.
 */
export class RunSql {
  readonly params: unknown[] = [];
  constructor(readonly dialect: 'sqlite' | 'pg') {}

  param(v: unknown): string {
    this.params.push(v);
    return this.dialect === 'pg' ? `$${this.params.length}` : `@p${this.params.length}`;
  }

  /** A number parameter (typed, so PostgreSQL compares it as a double with any numeric column). */
  num(v: number): string {
    return this.dialect === 'pg' ? `${this.param(v)}::double precision` : this.param(v);
  }

  /** The parameters as better-sqlite3 binds named ones. */
  named(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.params.forEach((v, i) => {
      out[`p${i + 1}`] = v;
    });
    return out;
  }
}

/** A column's SQL: a number expression, a text expression, or both (config: numbers and strings apart). */
interface ColumnSql {
  readonly kind: RunColumnKind | 'config';
  readonly num?: string;
  readonly text?: string;
}

const GPU_HOURS = `(j.world_size * (COALESCE(j.end_ms, j.last_sample_ms) - j.start_ms) / 3600000.0)`;
const DURATION_S = `((COALESCE(j.end_ms, j.last_sample_ms) - j.start_ms) / 1000.0)`;

/** The SQL of column `key` (throws `RunQueryError` naming an unknown column). */
export function columnSql(q: RunSql, key: string, liveStatus: () => string): ColumnSql {
  if (key.startsWith(CONFIG_PREFIX)) {
    const k = key.slice(CONFIG_PREFIX.length);
    if (!CONFIG_KEY_RE.test(k))
      throw new RunQueryError(
        `column ${JSON.stringify(key)}: a config key is 1-200 characters without quotes`,
      );
    if (q.dialect === 'pg') {
      const v = `j.config -> ${q.param(k)}`;
      const t = `jsonb_typeof(${v})`;
      return {
        kind: 'config',
        num: `(CASE WHEN ${t} = 'number' THEN (${v})::text::double precision END)`,
        text: `(CASE WHEN ${t} IN ('string', 'boolean') THEN (${v}) #>> '{}' END)`,
      };
    }
    const path = q.param(`$."${k}"`);
    const t = `json_type(j.config, ${path})`;
    return {
      kind: 'config',
      num: `(CASE WHEN ${t} IN ('integer', 'real') THEN json_extract(j.config, ${path}) END)`,
      text: `(CASE ${t} WHEN 'text' THEN json_extract(j.config, ${path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)`,
    };
  }
  switch (key) {
    case 'name':
    case 'job_id':
    case 'project':
    case 'owner':
    case 'framework':
      return { kind: 'text', text: `j.${key}` };
    case 'status':
      return { kind: 'text', text: liveStatus() };
    case 'world_size':
      return { kind: 'number', num: 'j.world_size' };
    case 'start':
      return { kind: 'time', num: 'j.start_ms' };
    case 'end':
      return { kind: 'time', num: 'j.end_ms' };
    case 'duration':
      return { kind: 'number', num: DURATION_S };
    case 'gpu_hours':
      return { kind: 'number', num: GPU_HOURS };
  }
  for (const g of SUMMARY_GAUGES) {
    if (key === g.key) return { kind: 'number', num: `s.${g.key}_last` };
    if (key === `${g.key}_best`) return { kind: 'number', num: `s.${g.key}_best` };
  }
  throw new RunQueryError(
    `unknown column ${JSON.stringify(key)}: use one of ${FIXED_RUN_COLUMNS.map((c) => c.key).join(', ')} or config.<key>`,
  );
}

function numberOf(column: string, raw: string, kind: RunColumnKind | 'config'): number {
  let v = raw.trim() === '' ? Number.NaN : Number(raw);
  if (Number.isNaN(v) && kind === 'time') v = Date.parse(raw);
  if (!Number.isFinite(v))
    throw new RunQueryError(
      `filter on ${column}: ${JSON.stringify(raw)} is not a ${kind === 'time' ? 'time (ms or RFC 3339)' : 'number'}`,
    );
  return v;
}

/** One filter as a SQL condition. */
export function filterSql(q: RunSql, f: RunFilter, liveStatus: () => string): string {
  const c = columnSql(q, f.column, liveStatus);
  const missing = c.num && c.text ? `(${c.num} IS NULL AND ${c.text} IS NULL)` : `${c.num ?? c.text} IS NULL`;
  if (f.value === '' && (f.op === '=' || f.op === '!=')) return f.op === '=' ? missing : `NOT ${missing}`;
  const numeric = c.kind === 'config' ? f.value.trim() !== '' && Number.isFinite(Number(f.value)) : !!c.num;
  if (f.op === '~') {
    if (!c.text)
      throw new RunQueryError(
        `filter on ${f.column}: ~ (contains) applies to text columns; use = < > on numbers`,
      );
    const like = `%${f.value.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    return q.dialect === 'pg'
      ? `${c.text} ILIKE ${q.param(like)} ESCAPE '\\'`
      : `${c.text} LIKE ${q.param(like)} ESCAPE '\\'`;
  }
  if (numeric) {
    const expr = c.num!;
    const v = q.num(numberOf(f.column, f.value, c.kind));
    return f.op === '!=' ? `(${expr} IS NULL OR ${expr} <> ${v})` : `${expr} ${f.op} ${v}`;
  }
  if (!c.text) throw new RunQueryError(`filter on ${f.column}: ${JSON.stringify(f.value)} is not a number`);
  if (f.op !== '=' && f.op !== '!=')
    throw new RunQueryError(
      `filter on ${f.column}: ${f.op} compares numbers; ${JSON.stringify(f.value)} is not one (use =, != or ~)`,
    );
  const v = q.param(f.value);
  return f.op === '!=' ? `(${c.text} IS NULL OR ${c.text} <> ${v})` : `${c.text} = ${v}`;
}

/** ORDER BY terms for a column: missing values last in either direction, config numbers before strings. */
export function orderSql(q: RunSql, column: string, desc: boolean, liveStatus: () => string): string[] {
  const c = columnSql(q, column, liveStatus);
  const dir = desc ? 'DESC' : 'ASC';
  const collate = q.dialect === 'pg' ? ' COLLATE "C"' : '';
  const terms: string[] = [];
  if (c.num && c.text) {
    terms.push(`(${c.num} IS NULL AND ${c.text} IS NULL)`, `(${c.num} IS NULL)`);
    terms.push(`${c.num} ${dir}`, `${c.text}${collate} ${dir}`);
  } else if (c.num) terms.push(`(${c.num} IS NULL)`, `${c.num} ${dir}`);
  else terms.push(`(${c.text} IS NULL)`, `${c.text}${collate} ${dir}`);
  return terms;
}

/**
 * The statements of one runs query: `count` (runs matching), `page` (runs, or groups when grouped) and
 * `groupCount`. Each builder call makes a fresh `RunSql`, so every statement has its own parameters.
 */
export function runStatements(
  dialect: 'sqlite' | 'pg',
  tenant: string,
  nowMs: number,
  silentAfterMs: number,
  query: RunQuery,
): {
  count: RunSql & { sql: string };
  page: RunSql & { sql: string };
  groupCount?: RunSql & { sql: string };
} {
  const build = (
    select: (q: RunSql, live: () => string) => string,
    tail: (q: RunSql, live: () => string) => string,
  ): RunSql & { sql: string } => {
    const q = new RunSql(dialect);
    // The status readers see (`unknown`: running but silent), bound only where a statement uses it (PostgreSQL
    // cannot type a parameter no expression uses).
    let liveSql: string | undefined;
    const live = () =>
      (liveSql ??= `(CASE WHEN j.status = 'running' AND j.last_sample_ms IS NOT NULL AND ${q.num(nowMs)} - j.last_sample_ms > ${q.num(silentAfterMs)} THEN 'unknown' ELSE j.status END)`);
    const head = select(q, live);
    const where = [`j.tenant = ${q.param(tenant)}`];
    for (const f of query.filters ?? []) where.push(filterSql(q, f, live));
    const sql = `${head} FROM jobs j LEFT JOIN job_summaries s ON s.tenant = j.tenant AND s.job_id = j.job_id
      WHERE ${where.join(' AND ')} ${tail(q, live)}`;
    return Object.assign(q, { sql });
  };
  const count = build(
    () => 'SELECT COUNT(*) AS n',
    () => '',
  );
  const limit = Math.max(1, Math.min(query.limit, MAX_RUNS_PAGE));
  const offset = Math.max(0, query.offset);
  if (query.groupBy !== undefined) {
    const groupBy = query.groupBy;
    const keys = (q: RunSql, live: () => string): string[] => {
      const c = columnSql(q, groupBy, live);
      return [c.num ?? 'NULL', c.text ?? 'NULL'];
    };
    // GROUP BY repeats the select's expressions by position (1, 2), which both dialects accept; the order
    // is applied outside, where the group key has a name PostgreSQL lets expressions use.
    const page = build(
      (q, live) => {
        const [num, text] = keys(q, live);
        return `SELECT * FROM (SELECT ${num} AS g_num, ${text} AS g_text, COUNT(*) AS n,
          AVG(s.loss_last) AS loss, MIN(s.loss_best) AS loss_best, AVG(s.eval_loss_last) AS eval_loss,
          MIN(s.eval_loss_best) AS eval_loss_best, MAX(s.accuracy_best) AS accuracy_best,
          AVG(s.samples_per_second_last) AS samples_per_second, AVG(s.tokens_per_second_last) AS tokens_per_second,
          MAX(s.step_last) AS step, SUM(${GPU_HOURS}) AS gpu_hours`;
      },
      () =>
        `GROUP BY 1, 2) g ORDER BY (g_num IS NULL AND g_text IS NULL), (g_num IS NULL), g_num, g_text${dialect === 'pg' ? ' COLLATE "C"' : ''}
        LIMIT ${limit} OFFSET ${offset}`,
    );
    const groupCount = build(
      (q, live) => {
        const [num, text] = keys(q, live);
        return `SELECT COUNT(*) AS n FROM (SELECT ${num} AS g_num, ${text} AS g_text`;
      },
      () => 'GROUP BY 1, 2) g',
    );
    return { count, page, groupCount };
  }
  // Two steps: the ordered, limited page of job ids first (the sorter carries a key and an id per run, not
  // each run's config and summaries), then those runs' rows, in the same order.
  let orderBy = '';
  let liveOf: () => string = () => '';
  const page = build(
    (_q, live) => {
      liveOf = live;
      return 'SELECT j.job_id';
    },
    (q, live) => {
      const order = query.sort
        ? orderSql(q, query.sort.column, query.sort.desc, live)
        : ['COALESCE(j.last_sample_ms, j.start_ms, 0) DESC'];
      orderBy = `ORDER BY ${[...order, 'j.job_id'].join(', ')}`;
      return `${orderBy} LIMIT ${limit} OFFSET ${offset}`;
    },
  );
  page.sql = `SELECT j.tenant, j.job_id, j.name, j.project, j.owner, j.framework, j.world_size, j.config,
      j.tags, j.metric_keys, ${liveOf()} AS status, j.start_ms, j.end_ms, j.last_sample_ms,
      ${GAUGE_COLS.map((c) => `s.${c}`).join(', ')}, ${GPU_HOURS} AS gpu_hours
    FROM jobs j LEFT JOIN job_summaries s ON s.tenant = j.tenant AND s.job_id = j.job_id
    WHERE j.tenant = ${page.param(tenant)} AND j.job_id IN (${page.sql})
    ${orderBy}`;
  return { count, page };
}

/** A group row of the grouped page. */
export function groupFromRow(r: RunSqlRow): RunGroup {
  const num = r.g_num;
  const text = r.g_text;
  const aggregates: Record<string, number | null> = {};
  for (const k of [
    'loss',
    'loss_best',
    'eval_loss',
    'eval_loss_best',
    'accuracy_best',
    'samples_per_second',
    'tokens_per_second',
    'step',
    'gpu_hours',
  ])
    aggregates[k] = r[k] === null || r[k] === undefined ? null : Number(r[k]);
  return {
    value:
      num !== null && num !== undefined
        ? Number(num)
        : text === null || text === undefined
          ? null
          : String(text),
    count: Number(r.n),
    aggregates,
  };
}

/** The config keys statement: keys of the tenant's `CONFIG_KEY_SAMPLE` most recently active runs. */
export function configKeysSql(dialect: 'sqlite' | 'pg'): string {
  const recent = `SELECT config FROM jobs WHERE tenant = ${dialect === 'pg' ? '$1' : '?'}
    ORDER BY COALESCE(last_sample_ms, start_ms, 0) DESC LIMIT ${CONFIG_KEY_SAMPLE}`;
  return dialect === 'pg'
    ? `SELECT DISTINCT k COLLATE "C" AS key FROM (${recent}) r, jsonb_object_keys(r.config) k ORDER BY 1 LIMIT ${MAX_CONFIG_KEYS}`
    : `SELECT DISTINCT e.key AS key FROM (${recent}) r, json_each(r.config) e ORDER BY 1 LIMIT ${MAX_CONFIG_KEYS}`;
}

/**
 * The config keys a page shows: the tenant's (possibly a few seconds old, see `ConfigKeyCache`), every key of
 * the runs on this page, and any config key the query sorts, filters or groups by. So a run's own
 * hyperparameters are always columns of the page that lists it, however new the key, and the column a user
 * sorts by is shown. Sorted by UTF-16 code unit (as PostgreSQL's `COLLATE "C"`), at most `MAX_CONFIG_KEYS`.
 */
export function pageConfigKeys(
  tenantKeys: readonly string[],
  runs: readonly RunRow[],
  query: RunQuery,
): string[] {
  const keys = new Set(tenantKeys);
  for (const r of runs) for (const k of Object.keys(r.job.config ?? {})) keys.add(k);
  const named = [query.sort?.column, query.groupBy, ...(query.filters ?? []).map((f) => f.column)];
  for (const c of named) if (c?.startsWith(CONFIG_PREFIX)) keys.add(c.slice(CONFIG_PREFIX.length));
  return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, MAX_CONFIG_KEYS);
}

/** How long a tenant's config keys are reused: columns appear within this long of a new key's first run. */
export const CONFIG_KEYS_TTL_MS = 10_000;

/**
 * The config keys of each tenant, kept for `CONFIG_KEYS_TTL_MS`: reading them scans the tenant's recent runs'
 * configs, which every page (each sort or filter change) would otherwise repeat.
 */
export class ConfigKeyCache {
  private readonly byTenant = new Map<string, { atMs: number; keys: Promise<string[]> }>();

  get(tenant: string, load: () => Promise<string[]>): Promise<string[]> {
    const now = Date.now();
    const hit = this.byTenant.get(tenant);
    if (hit && now - hit.atMs < CONFIG_KEYS_TTL_MS) return hit.keys;
    const keys = load();
    this.byTenant.set(tenant, { atMs: now, keys });
    // A failed read is not kept: the next page tries again.
    keys.catch(() => this.byTenant.delete(tenant));
    if (this.byTenant.size > 10_000) this.byTenant.delete(this.byTenant.keys().next().value!);
    return keys;
  }
}
