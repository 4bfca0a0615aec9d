/**
 * `GET /api/tw/v1/runs`: the runs table (as in W&B) of the caller's tenant — every job with its hyperparameters
 * (config keys) and summary metrics, sorted, filtered, grouped and paged by the metadata store (meta/runs.ts),
 * so a page costs the same at 100,000 runs and never reads the TSDB.
 *
 * Parameters (all optional; the dashboard keeps the same ones in its URL, so a view is a link):
 * - `sort=<column>` ascending, `sort=-<column>` descending (default: most recently active first);
 * - `filter=<column><op><value>`, repeatable, all must hold; ops `=`, `!=`, `<`, `<=`, `>`, `>=`, `~` (contains);
 *   `=` / `!=` with nothing after: the run has no value / has one;
 * - `group=<column>`: one row per value of the column, with its count and aggregates (paged instead of runs);
 * - `limit` (1–500, default 100) and `offset`.
 * A column is a run field (`name`, `status`, `owner`, …), a summary (`loss`, `loss_best`, `gpu_hours`, …) or
 * `config.<key>`; the answer lists them all in `columns`.
 */
import type { FastifyInstance } from 'fastify';
import { requestPrincipal } from '../auth/index.js';
import {
  configColumn,
  FIXED_RUN_COLUMNS,
  MAX_RUNS_PAGE,
  RUN_FILTER_OPS,
  type RunFilter,
  type RunFilterOp,
  type RunGroup,
  type RunQuery,
  RunQueryError,
  type RunRepository,
  type RunRow,
} from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import type { JsonGauge, JsonRun } from '../model/runs-api.js';
import { requestSignal } from './dashboard-scope.js';

export type { JsonGauge, JsonRun } from '../model/runs-api.js';

const READ = { config: { permission: 'read' } } as const;
const DEFAULT_LIMIT = 100;
const MAX_FILTERS = 20;

export interface RunsDeps {
  readonly runs: RunRepository;
}

function asJson(r: RunRow): JsonRun {
  const j = r.job;
  const summary: Record<string, JsonGauge> = {};
  for (const [k, g] of Object.entries(r.summary))
    if (g) summary[k] = { last: Number.isFinite(g.last) ? g.last : 'NaN', lastMs: g.lastMs, best: g.best };
  return {
    jobId: j.jobId,
    name: j.name,
    project: j.project,
    owner: j.owner,
    framework: j.framework,
    status: j.status,
    worldSize: j.worldSize,
    startMs: j.startMs,
    endMs: j.endMs,
    lastSampleMs: j.lastSampleMs,
    tags: j.tags,
    config: j.config,
    summary,
    gpuHours: r.gpuHours,
  };
}

function list(raw: unknown): string[] {
  if (raw === undefined) return [];
  return Array.isArray(raw) ? raw.map(String) : [String(raw)];
}

function one(raw: unknown, name: string): string | undefined {
  const all = list(raw);
  if (all.length > 1)
    throw twError(Errors.badRequest, `parameter ${name} given ${all.length} times; give it once`);
  return all[0];
}

/** `loss<2.5` → { column: 'loss', op: '<', value: '2.5' }: the column ends at the first operator character. */
export function parseRunFilter(raw: string): RunFilter {
  const at = raw.search(/[<>=!~]/);
  if (at <= 0)
    throw twError(
      Errors.badRequest,
      `filter=${JSON.stringify(raw)} is not <column><op><value> (ops: ${RUN_FILTER_OPS.join(' ')}), e.g. filter=loss<2.5`,
    );
  const op = RUN_FILTER_OPS.find((o) => raw.startsWith(o, at)) as RunFilterOp | undefined;
  if (!op)
    throw twError(
      Errors.badRequest,
      `filter=${JSON.stringify(raw)}: unknown operator; use one of ${RUN_FILTER_OPS.join(' ')}`,
    );
  return { column: raw.slice(0, at).trim(), op, value: raw.slice(at + op.length).trim() };
}

function intParam(raw: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw twError(
      Errors.badRequest,
      `${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`,
    );
  return n;
}

/** The query string as a `RunQuery` (400 naming the parameter when it is not one). */
export function parseRunQuery(q: Record<string, unknown>): RunQuery {
  const sortRaw = one(q.sort, 'sort');
  const filters = list(q.filter)
    .filter((f) => f.trim() !== '')
    .map(parseRunFilter);
  if (filters.length > MAX_FILTERS) throw twError(Errors.badRequest, `at most ${MAX_FILTERS} filters`);
  const group = one(q.group, 'group');
  return {
    ...(sortRaw
      ? {
          sort: sortRaw.startsWith('-')
            ? { column: sortRaw.slice(1), desc: true }
            : { column: sortRaw, desc: false },
        }
      : {}),
    filters,
    ...(group ? { groupBy: group } : {}),
    limit: intParam(one(q.limit, 'limit'), 'limit', DEFAULT_LIMIT, 1, MAX_RUNS_PAGE),
    offset: intParam(one(q.offset, 'offset'), 'offset', 0, 0, 10_000_000),
  };
}

export function registerRunsApi(app: FastifyInstance, deps: RunsDeps): void {
  app.get('/api/tw/v1/runs', READ, async (req, reply) => {
    const principal = requestPrincipal(req);
    const query = parseRunQuery(req.query as Record<string, unknown>);
    let page: Awaited<ReturnType<RunRepository['runs']>>;
    try {
      page = await deps.runs.runs(principal.tenant, Date.now(), query, requestSignal(reply));
    } catch (err) {
      if (err instanceof RunQueryError) throw twError(Errors.badRequest, err.message);
      throw err;
    }
    const groups: RunGroup[] | undefined = page.groups ? [...page.groups] : undefined;
    return {
      status: 'success',
      data: {
        columns: [...FIXED_RUN_COLUMNS, ...page.configKeys.map(configColumn)],
        total: page.total,
        runs: page.runs.map(asJson),
        ...(groups ? { groups, groupTotal: page.groupTotal } : {}),
      },
    };
  });
}
