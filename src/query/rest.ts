/**
 * trainwatch's own REST API under `/api/tw/v1/` (the Prometheus-compatible API lives under `/api/v1/`):
 * jobs with their live numbers, raw series for charts, and a live stream of new samples (Server-Sent Events).
 * Every read is scoped to the caller's tenant.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Principal, requestPrincipal } from '../auth/index.js';
import type { JobRepository } from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import {
  isValidLabelName,
  isValidMetricName,
  LabelMatcher,
  labelsKey,
  METRIC_NAME_LABEL,
} from '../model/labels.js';
import { optionalTimeParam } from '../model/query-params.js';
import type { Storage } from '../storage/index.js';
import { readTenant, requestSignal } from './dashboard-scope.js';
import { encodeCursor, parseJobPageQuery } from './job-list.js';
import { summarizeJob } from './job-summary.js';
import { type LiveStreamDeps, serveEventStream } from './live-streams.js';
import { single } from './query-params.js';
import { type ColumnarSeries, readSeries, selectSeries } from './series-read.js';

/** Every route here reads data of the caller's tenant (src/auth/permissions.ts). */
const READ = { config: { permission: 'read' } } as const;

export interface RestDeps extends LiveStreamDeps {
  readonly storage: Storage;
  readonly jobs: JobRepository;
}

const RESERVED_PARAMS = new Set(['metric', 'start', 'end', 'points', 'since']);
const MAX_POINTS = 20_000;
const DEFAULT_RANGE_MS = 60 * 60_000;
const LIVE_LOOKBACK_MS = 10_000;

/** The caller, as the access-control hook authenticated it for the route's permission (src/auth/permissions.ts). */
function principalOf(_deps: RestDeps, req: FastifyRequest): Principal {
  return requestPrincipal(req);
}

/** Milliseconds since the epoch, or an RFC 3339 date; `fallback` when the parameter is absent or empty. */
export function parseTime(raw: string | undefined, name: string, fallback: number): number {
  return optionalTimeParam(raw, name) ?? fallback;
}

interface SeriesQuery {
  readonly matchers: LabelMatcher[];
  readonly start: number;
  readonly end: number;
  readonly points: number | undefined;
}

function parseSeriesQuery(query: Record<string, string | string[] | undefined>, now: number): SeriesQuery {
  const metrics = (Array.isArray(query.metric) ? query.metric : query.metric ? [query.metric] : []).filter(
    (m) => m !== '',
  );
  if (metrics.length === 0)
    throw twError(
      Errors.badRequest,
      'parameter metric is required (the metric name, e.g. metric=train_loss; repeat it for several)',
    );
  for (const m of metrics) {
    if (!isValidMetricName(m))
      throw twError(Errors.badRequest, `metric=${JSON.stringify(m)} is not a valid metric name`);
  }
  // Metric names cannot contain regex metacharacters other than ':', so joining them is a safe alternation.
  const matchers = [
    metrics.length === 1
      ? new LabelMatcher('=', METRIC_NAME_LABEL, metrics[0]!)
      : new LabelMatcher('=~', METRIC_NAME_LABEL, metrics.join('|')),
  ];
  for (const [name, raw] of Object.entries(query)) {
    if (RESERVED_PARAMS.has(name)) continue;
    if (!isValidLabelName(name))
      throw twError(
        Errors.badRequest,
        `parameter ${JSON.stringify(name)} is neither an option nor a label name`,
      );
    matchers.push(new LabelMatcher('=', name, single(raw, name) ?? ''));
  }
  const end = parseTime(single(query.end, 'end'), 'end', now);
  const start = parseTime(single(query.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
  if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
  const pointsRaw = single(query.points, 'points');
  let points: number | undefined;
  if (pointsRaw !== undefined) {
    points = Number(pointsRaw);
    if (!Number.isInteger(points) || points < 1 || points > MAX_POINTS) {
      throw twError(
        Errors.badRequest,
        `parameter points=${JSON.stringify(pointsRaw)} must be an integer from 1 to ${MAX_POINTS}`,
      );
    }
  }
  return { matchers, start, end, points };
}

export function registerRestApi(app: FastifyInstance, deps: RestDeps): void {
  // One page of the tenant's jobs, filtered, sorted and counted in the metadata store; the storage is read
  // for the summaries of that page only (job-list.ts lists the parameters).
  app.get('/api/tw/v1/jobs', READ, async (req, reply) => {
    const principal = principalOf(deps, req);
    const q = req.query as Record<string, string | string[] | undefined>;
    const tenant = readTenant(principal, single(q.tenant, 'tenant'));
    const query = parseJobPageQuery(q);
    const signal = requestSignal(reply);
    const page = await deps.jobs.page(tenant, Date.now(), query, signal);
    const jobs = await Promise.all(page.jobs.map((j) => summarizeJob(deps.storage, j, signal)));
    return {
      status: 'success',
      data: {
        jobs,
        total: page.total,
        limit: query.limit,
        offset: query.after ? null : (query.offset ?? 0),
        next_cursor: page.next ? encodeCursor(page.next, query.sort, query.order) : null,
      },
    };
  });

  app.get('/api/tw/v1/jobs/:jobId', READ, async (req, reply) => {
    const principal = principalOf(deps, req);
    const { jobId } = req.params as { jobId: string };
    const signal = requestSignal(reply);
    const job = await deps.jobs.get(principal.tenant, jobId, Date.now(), signal);
    if (!job) throw twError(Errors.notFound, `no job ${JSON.stringify(jobId)} in tenant ${principal.tenant}`);
    const q = deps.storage.querier(principal.tenant, job.startMs ?? 0, job.lastSampleMs ?? Date.now());
    const [metrics, summary] = await Promise.all([
      q.labelValues(METRIC_NAME_LABEL, [new LabelMatcher('=', 'job_id', jobId)], signal),
      summarizeJob(deps.storage, job, signal),
    ]);
    return { status: 'success', data: { job: summary, metrics } };
  });

  app.get('/api/tw/v1/series', READ, async (req, reply) => {
    const principal = principalOf(deps, req);
    const sq = parseSeriesQuery(req.query as Record<string, string | string[] | undefined>, Date.now());
    const q = deps.storage.querier(principal.tenant, sq.start, sq.end);
    return {
      status: 'success',
      data: {
        start: sq.start,
        end: sq.end,
        series: readSeries(
          await selectSeries(q, sq.matchers, undefined, requestSignal(reply)),
          sq.start,
          sq.end,
          sq.points,
        ),
      },
    };
  });

  app.get('/api/tw/v1/live', READ, (req, reply) => streamLive(deps, req, reply));
}

/**
 * Server-Sent Events: after the client's `since` (ms), every new sample of the selection, polled from
 * storage every `livePollMs`. Each event is `data: {"series":[...]}`. Polling storage rather than tapping the
 * processor keeps the query role independent of where the processor runs.
 */
function streamLive(deps: RestDeps, req: FastifyRequest, reply: FastifyReply): void {
  const principal = principalOf(deps, req);
  const query = req.query as Record<string, string | string[] | undefined>;
  const now = Date.now();
  const sq = parseSeriesQuery(query, now);
  let since = parseTime(single(query.since, 'since'), 'since', now);
  // Series of one job arrive from different nodes at slightly different times: remember each series' newest
  // sent sample and look back a little, so a series that lags the others loses nothing.
  const sent = new Map<string, number>();
  serveEventStream(req, reply, {
    deps,
    principal,
    banner: 'trainwatch live stream',
    pollAtOnce: false,
    poll: async () => {
      const until = Date.now() + 60_000; // simulated or skewed clocks may run slightly ahead
      const from = since - LIVE_LOOKBACK_MS;
      const q = deps.storage.querier(principal.tenant, from, until);
      const fresh: ColumnarSeries[] = [];
      for (const s of readSeries(await selectSeries(q, sq.matchers), from, until)) {
        const key = labelsKey(s.labels);
        const after = sent.get(key) ?? since;
        let i = 0;
        while (i < s.t.length && s.t[i]! <= after) i++;
        if (i === s.t.length) continue;
        fresh.push(i === 0 ? s : { labels: s.labels, t: s.t.slice(i), v: s.v.slice(i) });
        const last = s.t[s.t.length - 1]!;
        sent.set(key, last);
        if (last > since) since = last;
      }
      return fresh.length > 0 ? { series: fresh } : undefined;
    },
  });
}
