/**
 * One /api/v1/query or /query_range evaluation, from checked parameters to the finished JSON answer, the
 * same in the server's thread and in a query worker (query-worker.ts): the worker renders the answer too, so
 * that building a large JSON body does not run on the ingest event loop either.
 */
import type { Storage } from '../storage/index.js';
import {
  type InstantSample,
  type PromqlEngine,
  PromqlError,
  type QueryResult,
  type QueryValue,
  ruleVector,
  tenantQueryable,
} from './promql/index.js';
import { formatGoFloatF } from './promql/labels-util.js';

/** A PromQL query, its parameters already parsed and checked by the API layer. */
export type PromQueryRequest = {
  /** The caller's tenant (null: every tenant, for admins). */
  readonly tenant: string | null;
  readonly query: string;
  /** ms the query may run, counted from when the API received it. */
  readonly timeoutMs: number;
  readonly lookbackDeltaMs?: number;
  /** `limit` parameter: most series returned (0: all). */
  readonly limit: number;
} & (
  | { readonly kind: 'instant'; readonly time: number }
  | { readonly kind: 'range'; readonly start: number; readonly end: number; readonly step: number }
);

/** An answer ready to send: status and the JSON body, already serialized. */
export interface PromAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * One evaluation of a recording or alerting rule's expression: an instant query of one tenant, whose result
 * the rule manager handles itself (alert states, recorded series) rather than as a JSON answer.
 */
export interface RuleQueryRequest {
  readonly tenant: string;
  readonly query: string;
  /** Evaluation time, ms. */
  readonly time: number;
  /** ms the evaluation may run, counted from when the rule manager asked. */
  readonly timeoutMs: number;
}

/**
 * A rule evaluation's answer: status 200 with the result as an instant vector ({@link ruleVector}), or
 * Prometheus's error answer (its `error` is what the rule's `lastError` shows).
 */
export interface RuleAnswer extends PromAnswer {
  readonly samples?: readonly InstantSample[];
}

function ts(t: number): number {
  return t / 1000;
}

/** Renders an engine result as the API's `data` (resultType + result). */
export function renderValue(v: QueryValue, limit = 0): { data: unknown; truncated: boolean } {
  switch (v.resultType) {
    case 'scalar':
    case 'string':
      return {
        data: {
          resultType: v.resultType,
          result: [ts(v.t), v.resultType === 'scalar' ? formatGoFloatF(v.v) : v.v],
        },
        truncated: false,
      };
    case 'vector': {
      const samples = limit > 0 ? v.samples.slice(0, limit) : v.samples;
      return {
        data: {
          resultType: 'vector',
          result: samples.map((s) => ({ metric: s.labels, value: [ts(s.t), formatGoFloatF(s.v)] })),
        },
        truncated: samples.length < v.samples.length,
      };
    }
    case 'matrix': {
      const series = limit > 0 ? v.series.slice(0, limit) : v.series;
      return {
        data: {
          resultType: 'matrix',
          result: series.map((s) => {
            const values: [number, string][] = new Array(s.timestamps.length);
            for (let i = 0; i < s.timestamps.length; i++)
              values[i] = [ts(s.timestamps[i]!), formatGoFloatF(s.values[i]!)];
            return { metric: s.labels, values };
          }),
        },
        truncated: series.length < v.series.length,
      };
    }
  }
}

/** The API's success body for a query result. */
export function resultBody(r: QueryResult, limit: number): Record<string, unknown> {
  const { data, truncated } = renderValue(r.value, limit);
  const warnings = [...r.warnings];
  if (truncated) warnings.push('results truncated due to limit');
  const body: Record<string, unknown> = { status: 'success', data };
  if (warnings.length > 0) body.warnings = warnings;
  if (r.infos.length > 0) body.infos = r.infos;
  return body;
}

/** Prometheus's error answer. */
export function errorAnswer(status: number, errorType: string, error: string): PromAnswer {
  return { status, body: JSON.stringify({ status: 'error', errorType, error }) };
}

/**
 * Evaluates `req` over `storage` and renders the answer. PromQL errors (bad query, limits, timeout) become
 * Prometheus's error answers; anything else is thrown.
 */
export async function evaluatePromQuery(
  engine: PromqlEngine,
  storage: Pick<Storage, 'querier'>,
  req: PromQueryRequest,
  signal?: AbortSignal,
): Promise<PromAnswer> {
  const source = tenantQueryable(storage, req.tenant);
  const opts = {
    timeoutMs: req.timeoutMs,
    ...(signal ? { signal } : {}),
    ...(req.lookbackDeltaMs !== undefined ? { lookbackDeltaMs: req.lookbackDeltaMs } : {}),
  };
  try {
    const r =
      req.kind === 'instant'
        ? await engine.instantQuery(source, req.query, req.time, opts)
        : await engine.rangeQuery(source, req.query, req.start, req.end, req.step, opts);
    return { status: 200, body: JSON.stringify(resultBody(r, req.limit)) };
  } catch (err) {
    if (err instanceof PromqlError) return errorAnswer(err.httpStatus, err.errorType, err.message);
    throw err;
  }
}

/** Evaluates a rule's expression (see {@link RuleQueryRequest}); non-PromQL failures are thrown. */
export async function evaluateRuleQuery(
  engine: PromqlEngine,
  storage: Pick<Storage, 'querier'>,
  req: RuleQueryRequest,
  signal?: AbortSignal,
): Promise<RuleAnswer> {
  try {
    const r = await engine.instantQuery(tenantQueryable(storage, req.tenant), req.query, req.time, {
      timeoutMs: req.timeoutMs,
      ...(signal ? { signal } : {}),
    });
    return { status: 200, body: '', samples: ruleVector(r.value) };
  } catch (err) {
    if (err instanceof PromqlError) return errorAnswer(err.httpStatus, err.errorType, err.message);
    throw err;
  }
}

/** The `error` of an error answer's body (the body itself when it is not Prometheus's error JSON). */
export function answerError(a: PromAnswer): string {
  try {
    const body = JSON.parse(a.body) as { error?: unknown };
    if (typeof body.error === 'string') return body.error;
  } catch {
    // not JSON: the body is the message
  }
  return a.body || `status ${a.status}`;
}
