/**
 * The Prometheus HTTP API v1 (web/api/v1/api.go) over trainwatch's PromQL engine, so Grafana's Prometheus
 * data source and every PromQL tool work unchanged: /api/v1/query, /query_range, /series, /labels,
 * /label/<name>/values, /metadata, /query_exemplars and /status/buildinfo, by GET or by POST with a
 * form-encoded body (parameters from the URL and the body are merged, as Go's `r.Form` does).
 *
 * Response shapes, error types and status codes are Prometheus's: `{status:"success", data, warnings?,
 * infos?}` or `{status:"error", errorType, error}` with 400 bad_data, 422 execution, 503 timeout/canceled.
 * Every request is authenticated with scope `read` and sees only its tenant's series, without the `tenant`
 * label (src/query/promql/tenant.ts explains why).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Authenticator, type Principal, requestPrincipal } from '../auth/index.js';
import { LabelMatcher, METRIC_NAME_LABEL } from '../model/labels.js';
import { catalogMetadata, type MetricMetadata, type MetricType } from '../model/metric-catalog.js';
import type { Querier, Storage } from '../storage/index.js';
import { requestSignal } from './dashboard-scope.js';
import { evaluatePromQuery, type PromAnswer, type PromQueryRequest } from './prom-eval.js';
import { hideTenantLabel, PromqlEngine, PromqlError, parseMetricSelector } from './promql/index.js';
import { goQuote, hasInvalidUtf8, parsePromDuration } from './promql/lexer.js';
import type { QueryPool } from './query-pool.js';
import type { RemotePromql } from './remote-promql.js';
import { selectSeries } from './series-read.js';

/** Every route here reads data of the caller's tenant (src/auth/permissions.ts). */
const READ = { config: { permission: 'read' } } as const;

export interface PromApiLimits {
  /** Default and largest query timeout, ms (Prometheus: --query.timeout, 2 m). */
  readonly timeoutMs: number;
  /** Most samples one query may hold (Prometheus: --query.max-samples, 50 M). */
  readonly maxSamples: number;
  /** Most series one selector may select. */
  readonly maxSeries: number;
  /** Lookback delta, ms (Prometheus: --query.lookback-delta, 5 m). */
  readonly lookbackDeltaMs: number;
  /** Most points a subquery may evaluate per series (query.max_subquery_points). */
  readonly maxSubqueryPoints: number;
}

export const DEFAULT_PROM_API_LIMITS: PromApiLimits = {
  timeoutMs: 2 * 60_000,
  maxSamples: 50_000_000,
  maxSeries: 1_000_000,
  lookbackDeltaMs: 5 * 60_000,
  maxSubqueryPoints: 100_000,
};

/** The Prometheus version whose API and PromQL trainwatch speaks (reported by /status/buildinfo). */
export const PROMETHEUS_COMPAT_VERSION = '3.5.0';
/** Prometheus's cap on points per series in a range query. */
const MAX_POINTS_PER_SERIES = 11_000;
const MIN_TIME = -9_223_372_036_854; // Prometheus's minTime in ms, rounded to what a double holds
const MAX_TIME = 9_223_372_036_854;

export interface PromApiDeps {
  readonly auth: Authenticator;
  readonly storage: Storage;
  readonly limits?: Partial<PromApiLimits>;
  /** trainwatch's version, reported as the build's revision. */
  readonly version?: string;
  /**
   * With `storage.kind: remote`: PromQL queries go to the TSDB's own API, rewritten for the caller's tenant;
   * series, labels and metadata are read through `storage` as in the embedded mode.
   */
  readonly remote?: RemotePromql;
  /**
   * Query worker threads (query-pool.ts): /query and /query_range evaluate there, off this event loop. Without
   * it they evaluate in this thread (tests, tools, `query.workers: 0`).
   */
  readonly pool?: QueryPool;
  /** Metric metadata senders declared (src/meta `MetricMetadataStore`); absent: the catalog's alone. */
  readonly metricMetadata?: MetricMetadataSource;
}

/** Reads a tenant's declared metric metadata by name (only `metric`, when given). */
export interface MetricMetadataSource {
  list(
    tenant: string,
    query: { readonly metric?: string },
    signal?: AbortSignal,
  ): Promise<ReadonlyMap<string, MetricMetadata>>;
}

class BadData extends Error {}

type Params = Map<string, string[]>;

function collectParams(req: FastifyRequest): Params {
  const params: Params = new Map();
  const add = (k: string, v: string) => {
    const list = params.get(k);
    if (list) list.push(v);
    else params.set(k, [v]);
  };
  const q = req.url.indexOf('?');
  if (q >= 0) for (const [k, v] of new URLSearchParams(req.url.slice(q + 1))) add(k, v);
  if (typeof req.body === 'string' && req.body.length > 0) {
    for (const [k, v] of new URLSearchParams(req.body)) add(k, v);
  }
  return params;
}

function one(p: Params, name: string): string | undefined {
  const v = p.get(name);
  return v && v.length > 0 ? v[0] : undefined;
}

/** Prometheus's parseTime: float Unix seconds or RFC 3339. */
export function parseApiTime(raw: string, name: string): number {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) {
    const s = Number(raw);
    return Math.round(s * 1000);
  }
  const t = Date.parse(raw);
  if (/^\d{4}-\d{2}-\d{2}T/.test(raw) && !Number.isNaN(t)) return t;
  throw new BadData(
    `invalid parameter ${JSON.stringify(name)}: cannot parse ${JSON.stringify(raw)} to a valid timestamp`,
  );
}

/** Prometheus's parseDuration: float seconds or a duration such as `15s`, `1h30m`. */
export function parseApiDuration(raw: string, name: string): number {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) {
    const ms = Number(raw) * 1000;
    if (Number.isFinite(ms) && Math.abs(ms) < 9.2e18) return Math.round(ms);
  }
  const d = parsePromDuration(raw);
  if (d !== undefined) return d;
  throw new BadData(
    `invalid parameter ${JSON.stringify(name)}: cannot parse ${JSON.stringify(raw)} to a valid duration`,
  );
}

function timeParam(p: Params, name: string, fallback: number): number {
  const raw = one(p, name);
  return raw === undefined || raw === '' ? fallback : parseApiTime(raw, name);
}

function limitParam(p: Params): number {
  const raw = one(p, 'limit');
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new BadData('limit must be a non-negative integer');
  return n;
}

function success(
  reply: FastifyReply,
  data: unknown,
  warnings: readonly string[] = [],
  infos: readonly string[] = [],
) {
  const body: Record<string, unknown> = { status: 'success', data };
  if (warnings.length > 0) body.warnings = warnings;
  if (infos.length > 0) body.infos = infos;
  return reply.code(200).send(body);
}

/** A listing cut at `limit` (0: no limit), with Prometheus's warning when it was cut. */
function successUpTo(reply: FastifyReply, all: readonly unknown[], limit: number) {
  const data = limit > 0 ? all.slice(0, limit) : all;
  return success(reply, data, data.length < all.length ? ['results truncated due to limit'] : []);
}

function failure(reply: FastifyReply, status: number, errorType: string, error: string) {
  return reply.code(status).send({ status: 'error', errorType, error });
}

/** Maps errors to Prometheus's API errors; anything else is rethrown to the server's error handler. */
function handleError(reply: FastifyReply, err: unknown) {
  if (err instanceof BadData) return failure(reply, 400, 'bad_data', err.message);
  if (err instanceof PromqlError) return failure(reply, err.httpStatus, err.errorType, err.message);
  throw err;
}

function matchersParam(p: Params, required: boolean): LabelMatcher[][] {
  const raw = p.get('match[]') ?? [];
  if (raw.length === 0 && required) throw new BadData('no match[] parameter provided');
  return raw.map((m) => {
    try {
      return parseMetricSelector(m);
    } catch (err) {
      throw new BadData((err as Error).message);
    }
  });
}

export { renderValue } from './prom-eval.js';

export function registerPromApi(app: FastifyInstance, deps: PromApiDeps): void {
  const limits = { ...DEFAULT_PROM_API_LIMITS, ...deps.limits };
  const engine = new PromqlEngine({
    lookbackDeltaMs: limits.lookbackDeltaMs,
    maxSamples: limits.maxSamples,
    maxSeries: limits.maxSeries,
    timeoutMs: limits.timeoutMs,
    maxSubqueryPoints: limits.maxSubqueryPoints,
  });
  const principalOf = (req: FastifyRequest): Principal => requestPrincipal(req);
  const timeoutOf = (p: Params): number => {
    const raw = one(p, 'timeout');
    if (raw === undefined || raw === '') return limits.timeoutMs;
    return Math.min(parseApiDuration(raw, 'timeout'), limits.timeoutMs);
  };
  /** What every evaluation takes from the request besides its query and times. */
  const evaluationParams = (p: Params, tenant: string) => {
    const lookback = one(p, 'lookback_delta');
    return {
      tenant,
      timeoutMs: timeoutOf(p),
      limit: limitParam(p),
      ...(lookback ? { lookbackDeltaMs: parseApiDuration(lookback, 'lookback_delta') } : {}),
    };
  };
  const querierFor = (principal: Principal, start: number, end: number) =>
    hideTenantLabel(deps.storage.querier(principal.tenant, start, end), principal.tenant);

  /**
   * `/labels` and `/label/:name/values`: the union of what `list` reads over every `match[]` set (or, without
   * one, over every series) in [start, end], sorted and cut at `limit`.
   */
  const listAcrossMatchSets = async (
    req: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    list: (querier: Querier, matchers: LabelMatcher[], signal: AbortSignal) => Promise<readonly string[]>,
  ) => {
    const p = collectParams(req);
    const sets = matchersParam(p, false);
    const querier = querierFor(principal, timeParam(p, 'start', MIN_TIME), timeParam(p, 'end', MAX_TIME));
    const found = new Set<string>();
    const signal = requestSignal(reply);
    for (const matchers of sets.length > 0 ? sets : [[]])
      for (const x of await list(querier, matchers, signal)) found.add(x);
    return successUpTo(reply, [...found].sort(), limitParam(p));
  };

  /** Evaluates on the pool when there is one, else here; sends the rendered answer as it is. */
  const evaluate = async (req: PromQueryRequest, reply: FastifyReply) => {
    const signal = requestSignal(reply);
    const answer: PromAnswer = deps.pool
      ? await deps.pool.run(req, signal)
      : await evaluatePromQuery(engine, deps.storage, req, signal);
    return reply.code(answer.status).type('application/json; charset=utf-8').send(answer.body);
  };

  // One encapsulated scope, so the form-body parser applies to these routes only.
  void app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string' },
      (_req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
        done(null, typeof body === 'string' ? body : body.toString('utf8'));
      },
    );

    const both = (url: string, handler: (req: FastifyRequest, reply: FastifyReply) => unknown) => {
      scope.get(url, READ, handler);
      scope.post(url, READ, handler);
    };

    /** With a remote TSDB, the whole query goes to it, rewritten for the caller's tenant (remote-promql.ts). */
    const forward = async (
      endpoint: 'query' | 'query_range',
      p: Params,
      principal: Principal,
      reply: FastifyReply,
    ) => {
      const params = new Map<string, string>();
      for (const [k, v] of p) if (v[0] !== undefined) params.set(k, v[0]);
      const answer = await deps.remote!.forward(
        endpoint,
        one(p, 'query') ?? '',
        params,
        principal.tenant,
        requestSignal(reply),
      );
      return reply.code(answer.status).send(answer.body);
    };

    both('/api/v1/query', async (req, reply) => {
      const principal = principalOf(req);
      try {
        const p = collectParams(req);
        if (deps.remote) return await forward('query', p, principal, reply);
        // An empty query is the parser's to reject, as in Prometheus: "no expression found in input".
        const query = one(p, 'query') ?? '';
        const time = timeParam(p, 'time', Date.now());
        return await evaluate(
          { kind: 'instant', query, time, ...evaluationParams(p, principal.tenant) },
          reply,
        );
      } catch (err) {
        return handleError(reply, err);
      }
    });

    both('/api/v1/query_range', async (req, reply) => {
      const principal = principalOf(req);
      try {
        const p = collectParams(req);
        if (deps.remote) return await forward('query_range', p, principal, reply);
        // An empty query is the parser's to reject, as in Prometheus: "no expression found in input".
        const query = one(p, 'query') ?? '';
        const startRaw = one(p, 'start');
        const endRaw = one(p, 'end');
        const stepRaw = one(p, 'step');
        if (startRaw === undefined)
          throw new BadData('invalid parameter "start": cannot parse "" to a valid timestamp');
        if (endRaw === undefined)
          throw new BadData('invalid parameter "end": cannot parse "" to a valid timestamp');
        if (stepRaw === undefined)
          throw new BadData('invalid parameter "step": cannot parse "" to a valid duration');
        const start = parseApiTime(startRaw, 'start');
        const end = parseApiTime(endRaw, 'end');
        if (end < start) throw new BadData('end timestamp must not be before start time');
        const step = parseApiDuration(stepRaw, 'step');
        if (step <= 0)
          throw new BadData(
            'zero or negative query resolution step widths are not accepted. Try a positive integer',
          );
        if ((end - start) / step > MAX_POINTS_PER_SERIES)
          throw new BadData(
            'exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)',
          );
        return await evaluate(
          { kind: 'range', query, start, end, step, ...evaluationParams(p, principal.tenant) },
          reply,
        );
      } catch (err) {
        return handleError(reply, err);
      }
    });

    both('/api/v1/series', async (req, reply) => {
      const principal = principalOf(req);
      try {
        const p = collectParams(req);
        const sets = matchersParam(p, true);
        const start = timeParam(p, 'start', MIN_TIME);
        const end = timeParam(p, 'end', MAX_TIME);
        const limit = limitParam(p);
        const querier = querierFor(principal, start, end);
        const seen = new Map<string, Record<string, string>>();
        const signal = requestSignal(reply);
        for (const matchers of sets) {
          for (const s of await selectSeries(querier, matchers, { minT: start, maxT: end }, signal)) {
            const key = JSON.stringify(Object.entries(s.labels).sort());
            if (!seen.has(key)) seen.set(key, { ...s.labels });
            if (seen.size > limits.maxSeries)
              throw new BadData(`more than ${limits.maxSeries} series match; narrow match[]`);
          }
        }
        const keys = [...seen.keys()].sort();
        const all = keys.map((k) => seen.get(k)!);
        return successUpTo(reply, all, limit);
      } catch (err) {
        return handleError(reply, err);
      }
    });

    both('/api/v1/labels', async (req, reply) => {
      const principal = principalOf(req);
      try {
        return await listAcrossMatchSets(req, reply, principal, (querier, matchers, signal) =>
          querier.labelNames(matchers, signal),
        );
      } catch (err) {
        return handleError(reply, err);
      }
    });

    scope.get('/api/v1/label/:name/values', READ, async (req, reply) => {
      const principal = principalOf(req);
      try {
        let name = (req.params as { name: string }).name;
        // Prometheus 3 escapes UTF-8 label names in this path as U__<escaped> (e.g. U__a_2e_b for "a.b").
        if (name.startsWith('U__')) name = unescapeLabelName(name.slice(3));
        if (name === '' || hasInvalidUtf8(name)) throw new BadData(`invalid label name: ${goQuote(name)}`);
        return await listAcrossMatchSets(req, reply, principal, (querier, matchers, signal) =>
          querier.labelValues(name, matchers, signal),
        );
      } catch (err) {
        return handleError(reply, err);
      }
    });

    scope.get('/api/v1/metadata', READ, async (req, reply) => {
      const principal = principalOf(req);
      try {
        const p = collectParams(req);
        const limit = metadataLimit(p, 'limit');
        // One entry per metric is kept (the last declaration), so any positive per-metric limit keeps it.
        const limitPerMetric = metadataLimit(p, 'limit_per_metric');
        const metric = one(p, 'metric') || undefined;
        const signal = requestSignal(reply);
        const querier = querierFor(principal, MIN_TIME, MAX_TIME);
        const matchers: LabelMatcher[] =
          metric === undefined ? [] : [new LabelMatcher('=', METRIC_NAME_LABEL, metric)];
        const [stored, declared] = await Promise.all([
          querier.labelValues(METRIC_NAME_LABEL, matchers, signal),
          deps.metricMetadata?.list(principal.tenant, metric === undefined ? {} : { metric }, signal) ??
            new Map<string, MetricMetadata>(),
        ]);
        const data = metadataAnswer(stored, declared, limit);
        if (limitPerMetric === 0) for (const k of Object.keys(data)) data[k] = [];
        return success(reply, data);
      } catch (err) {
        return handleError(reply, err);
      }
    });

    both('/api/v1/query_exemplars', async (req, reply) => {
      principalOf(req);
      try {
        const p = collectParams(req);
        // An empty query is the parser's to reject, as in Prometheus: "no expression found in input".
        const query = one(p, 'query') ?? '';
        engine.parse(query);
        // trainwatch stores no exemplars: the answer is always an empty list, as from a Prometheus without them.
        return success(reply, []);
      } catch (err) {
        return handleError(reply, err);
      }
    });

    scope.get('/api/v1/status/buildinfo', READ, async (req, reply) => {
      principalOf(req);
      return success(reply, {
        version: PROMETHEUS_COMPAT_VERSION,
        revision: `trainwatch-${deps.version ?? 'dev'}`,
        branch: 'trainwatch',
        buildUser: 'trainwatch',
        buildDate: '',
        goVersion: `node${process.versions.node}`,
      });
    });
  });
}

/** `limit` and `limit_per_metric` of /metadata: an integer; negative or absent (-1) means no limit. */
function metadataLimit(p: Params, name: string): number {
  const raw = one(p, name);
  if (raw === undefined || raw === '') return -1;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new BadData(`${name} must be a number`);
  return n;
}

/** Suffixes of a metric family's series (histogram/summary parts, a counter's `_total`). */
const FAMILY_SUFFIXES: readonly (readonly [string, readonly MetricType[]])[] = [
  ['_bucket', ['histogram', 'gaugehistogram']],
  ['_sum', ['histogram', 'gaugehistogram', 'summary']],
  ['_count', ['histogram', 'gaugehistogram', 'summary']],
  ['_created', ['histogram', 'summary', 'counter']],
  ['_total', ['counter']],
];

/**
 * `/api/v1/metadata`'s data: every metric of the tenant, stored or declared, with what its sender declared,
 * else the catalog's metadata (canonical metrics, `*_total`, `train_*`), else `unknown` as Prometheus reports
 * a metric scraped without metadata. A stored series name that belongs to a declared family (`foo_bucket` of
 * the histogram `foo`, `foo_total` of the counter `foo`) is listed as the family, as Prometheus lists it.
 * Names sorted; at most `limit` of them when it is not negative.
 */
export function metadataAnswer(
  stored: readonly string[],
  declared: ReadonlyMap<string, MetricMetadata>,
  limit: number,
): Record<string, MetricMetadata[]> {
  const names = new Set<string>(declared.keys());
  for (const name of stored) {
    if (declared.has(name)) continue;
    const family = FAMILY_SUFFIXES.find(([suffix, types]) => {
      if (!name.endsWith(suffix)) return false;
      const base = declared.get(name.slice(0, -suffix.length));
      return base !== undefined && types.includes(base.type);
    });
    if (!family) names.add(name);
  }
  const data: Record<string, MetricMetadata[]> = {};
  let n = 0;
  for (const name of [...names].sort()) {
    if (limit >= 0 && n >= limit) break;
    const md = declared.get(name) ?? catalogMetadata(name) ?? UNKNOWN_METADATA;
    data[name] = [{ type: md.type, help: md.help, unit: md.unit }];
    n++;
  }
  return data;
}

const UNKNOWN_METADATA: MetricMetadata = { type: 'unknown', help: '', unit: '' };

/** Reverses Prometheus's label-name escaping (`_2e_` → `.`, `__` → `_`). */
function unescapeLabelName(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '_') {
      out += s[i];
      continue;
    }
    if (s[i + 1] === '_') {
      out += '_';
      i++;
      continue;
    }
    const m = /^_([0-9a-fA-F]+)_/.exec(s.slice(i));
    if (!m) return s;
    out += String.fromCodePoint(Number.parseInt(m[1]!, 16));
    i += m[0].length - 1;
  }
  return out;
}
