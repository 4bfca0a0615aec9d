/**
 * The dashboard's endpoints under `/api/tw/v1/`: what the fleet, job and comparison pages draw, aggregated
 * on the server into compact answers so that the browser never receives more than about one value per
 * pixel (STYLE.md 12):
 *
 * - `GET /fleet`                   every job with its live numbers and busy/idle GPUs, in one pass per metric
 * - `GET /heatmap`                 rows × time matrix of per-cell means, grouped by labels (jobs, nodes, GPUs)
 * - `GET /spread`                  per-column min/mean/max/sum across series (band charts, job totals)
 * - `GET /jobs/:id/curves`         one representative series per training metric, with the step at each point
 * - `GET /jobs/:id/stragglers`     robust z-scores of each rank's step time
 * - `GET /ticks`                   Server-Sent Events: the newest sample time of a selection, as it advances
 *
 * Every read is scoped to the caller's tenant (admins may pass `tenant=`, see dashboard-scope.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Principal, requestPrincipal } from '../auth/index.js';
import type { JobRepository } from '../meta/index.js';
import { isCurveMetric } from '../model/curve-metrics.js';
import { Errors, twError } from '../model/errors.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL, WellKnownLabel } from '../model/labels.js';
import { RollupColumns, SampleBuffer, type Storage } from '../storage/index.js';
import { buildHeatmap, SPREAD_AGGREGATES, selectForGrid } from './dashboard-heatmap.js';
import { SpreadAccumulator } from './dashboard-matrix.js';
import {
  byLabels,
  DEFAULT_RANGE_MS,
  gridParams,
  HEATMAP_OPTIONS,
  intParam,
  labelMatchers,
  MAX_POINTS,
  many,
  metricParam,
  metricsParam,
  numParam,
  type Query,
  RANGE_OPTIONS,
  rangeParams,
  SPREAD_OPTIONS,
  single,
  TICK_OPTIONS,
} from './dashboard-params.js';
import { findStragglers, placementOf, readCurves, scoreStragglers } from './dashboard-ranks.js';
import { readTenant, requestSignal } from './dashboard-scope.js';
import { fleetPage } from './fleet-page.js';
import { IDLE_UTILIZATION, summarizeFleet } from './fleet-summary.js';
import { jobRows } from './heatmap-groups.js';
import { wantsPaging } from './job-list.js';
import { type LiveStreamDeps, serveEventStream } from './live-streams.js';
import { parseTime } from './rest.js';
import { selectSeries } from './series-read.js';

/** Every route here reads data of the caller's tenant (src/auth/permissions.ts). */
const READ = { config: { permission: 'read' } } as const;

export interface DashboardDeps extends LiveStreamDeps {
  readonly storage: Storage;
  readonly jobs: JobRepository;
}

const MAX_CURVE_METRICS = 64;
const TICK_LOOKBACK_MS = 10_000;

export type { Curve, FleetJob } from '../model/api-types.js';
export { isCurveMetric } from '../model/curve-metrics.js';
export { buildHeatmap, type HeatmapRow } from './dashboard-heatmap.js';
export {
  findStragglers,
  readCurves,
  STRAGGLER_MIN_SLOWDOWN,
  scoreStragglers,
  stepsAt,
} from './dashboard-ranks.js';
export { IDLE_UTILIZATION, summarizeFleet } from './fleet-summary.js';

/**
 * What every dashboard route reads first: the caller, a signal that aborts when the client goes away,
 * the query string, and the tenant read (null: every tenant, an admin's `tenant=*`).
 */
function routeRequest(req: FastifyRequest, reply: FastifyReply) {
  const principal = requestPrincipal(req);
  const signal = requestSignal(reply);
  const q = req.query as Query;
  return { principal, signal, q, tenant: readTenant(principal, single(q.tenant, 'tenant')) };
}

export function registerDashboardApi(app: FastifyInstance, deps: DashboardDeps): void {
  app.get('/api/tw/v1/fleet', READ, async (req, reply) => {
    const { signal, q, tenant } = routeRequest(req, reply);
    // With any paging, sort or filter parameter: one page of the fleet (fleet-page.ts, issue 17).
    if (wantsPaging(q))
      return {
        status: 'success',
        data: await fleetPage(deps, tenant, q, IDLE_UTILIZATION, (page) =>
          summarizeFleet(deps.storage, tenant, page, signal),
        ),
      };
    // Without paging parameters: every job of the tenant. This list used to stop at the 10,000 most recently
    // active jobs, so in a large fleet a live run that had gone quiet (a hang) vanished from it while older,
    // finished runs of its name stayed — and compare, which looked runs up here, could not find it. A caller
    // that wants less pages (`limit`, `name`, `search`, … above); a list never drops jobs silently.
    const now = Date.now();
    const jobs = await deps.jobs.list(tenant, now, {}, signal);
    return {
      status: 'success',
      data: {
        tenants: [...new Set(jobs.map((j) => j.tenant))].sort(),
        jobs: await summarizeFleet(deps.storage, tenant, jobs, signal),
      },
    };
  });

  app.get('/api/tw/v1/heatmap', READ, async (req, reply) => {
    const { signal, q, tenant } = routeRequest(req, reply);
    const metric = metricParam(q, true);
    const { start, end } = rangeParams(q, Date.now());
    const by = byLabels(q, [WellKnownLabel.jobId]);
    const keep = many(q.keep);
    const lo = numParam(q, 'lo');
    const hi = numParam(q, 'hi');
    if ((lo === undefined) !== (hi === undefined))
      throw twError(Errors.badRequest, 'give both lo and hi (the colour scale), or neither');
    if (lo !== undefined && hi !== undefined && !(hi > lo))
      throw twError(Errors.badRequest, `hi (${hi}) must be greater than lo (${lo})`);
    const idleBelow = numParam(q, 'idle_below');
    const matchers = [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...labelMatchers(q, HEATMAP_OPTIONS)];
    // Rows of a fleet: only the jobs the page's filters select, grouped when more than fit (issue 17).
    const rows = await jobRows(deps.jobs, tenant, q, by, signal);
    const querier = deps.storage.querier(tenant, start, end);
    const heatmap = await buildHeatmap((hints) => selectSeries(querier, matchers, hints, signal), {
      start,
      end,
      by,
      keep,
      lo,
      hi,
      idleBelow,
      metric,
      q,
      ...(rows ? { regroup: rows.regroup } : {}),
    });
    return { status: 'success', data: rows ? { ...heatmap, ...rows.describe(heatmap.rows) } : heatmap };
  });

  app.get('/api/tw/v1/spread', READ, async (req, reply) => {
    const { signal, q, tenant } = routeRequest(req, reply);
    const metric = metricParam(q, true);
    const { start, end } = rangeParams(q, Date.now());
    const grid = gridParams(q, start, end);
    const matchers = [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...labelMatchers(q, SPREAD_OPTIONS)];
    const querier = deps.storage.querier(tenant, grid.start, end);
    const selected = await selectForGrid(
      (hints) => selectSeries(querier, matchers, hints, signal),
      grid,
      end,
      SPREAD_AGGREGATES,
    );
    const withStragglers = single(q.stragglers, 'stragglers') === '1';
    const recentFrom = end - Math.max(1, Math.floor((end - start) / 4));
    const acc = new SpreadAccumulator(grid);
    const ranks: { labels: Record<string, string>; mean: number | null }[] = [];
    const buf = new SampleBuffer(4096);
    const windows = new RollupColumns(512);
    for (const s of selected) {
      let recent: number | null;
      if (s.resolutionMs && s.readAggregates) {
        s.readAggregates(windows);
        recent = acc.addAggregateArrays(windows, s.resolutionMs, end, recentFrom);
      } else if (s.resolutionMs) recent = acc.addAggregates(s.aggregates!(), s.resolutionMs, end, recentFrom);
      else if (s.readSamples) {
        s.readSamples(buf);
        recent = acc.addSamples(buf, end, recentFrom);
      } else recent = acc.add(s.iterator(), end, recentFrom);
      if (withStragglers) ranks.push({ labels: placementOf(s.labels), mean: recent });
    }
    const col = (a: Float64Array, f: (v: number, i: number) => number | null = (v) => v) =>
      Array.from(a, (v, i) => (acc.present[i]! > 0 ? f(v, i) : null));
    return {
      status: 'success',
      data: {
        metric,
        start: grid.start,
        step: grid.step,
        cols: grid.cols,
        series: selected.length,
        t: Array.from({ length: grid.cols }, (_, i) => grid.start + i * grid.step),
        min: col(acc.min),
        max: col(acc.max),
        mean: col(acc.sum, (v, i) => v / acc.present[i]!),
        sum: col(acc.sum),
        count: Array.from(acc.present),
        // The same pass scores the series (ranks) on their recent level: a job page gets its step-time band
        // and its straggler from one read of the step times.
        ...(withStragglers ? { stragglers: scoreStragglers(ranks, recentFrom, end, metric) } : {}),
      },
    };
  });

  app.get('/api/tw/v1/jobs/:jobId/curves', READ, async (req, reply) => {
    const { principal, signal, q, tenant: scope } = routeRequest(req, reply);
    const tenant = scope ?? principal.tenant;
    const { jobId } = req.params as { jobId: string };
    const job = await requireJob(deps, tenant, jobId, signal);
    for (const name of Object.keys(q))
      if (!RANGE_OPTIONS.has(name))
        throw twError(Errors.badRequest, `unknown parameter ${JSON.stringify(name)}`);
    const end = parseTime(single(q.end, 'end'), 'end', job.lastSampleMs ?? Date.now());
    const start = parseTime(single(q.start, 'start'), 'start', job.startMs ?? end - DEFAULT_RANGE_MS);
    if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
    const points = intParam(q, 'points', 1, MAX_POINTS);
    const requested = metricsParam(q);
    const querier = deps.storage.querier(tenant, start, end);
    const jobMatcher = new LabelMatcher('=', WellKnownLabel.jobId, jobId);
    const metrics = (
      requested.length
        ? requested
        : (await querier.labelValues(METRIC_NAME_LABEL, [jobMatcher], signal)).filter(isCurveMetric)
    ).slice(0, MAX_CURVE_METRICS);
    return {
      status: 'success',
      data: {
        start,
        end,
        curves: await readCurves(querier, jobMatcher, metrics, start, end, points, signal),
      },
    };
  });

  app.get('/api/tw/v1/jobs/:jobId/stragglers', READ, async (req, reply) => {
    const { principal, signal, q, tenant: scope } = routeRequest(req, reply);
    const tenant = scope ?? principal.tenant;
    const { jobId } = req.params as { jobId: string };
    const job = await requireJob(deps, tenant, jobId, signal);
    const end = parseTime(single(q.end, 'end'), 'end', job.lastSampleMs ?? Date.now());
    const start = parseTime(single(q.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
    if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
    const selected = await selectSeries(
      deps.storage.querier(tenant, start, end),
      [
        new LabelMatcher('=', METRIC_NAME_LABEL, 'train_step_duration_seconds'),
        new LabelMatcher('=', WellKnownLabel.jobId, jobId),
      ],
      undefined,
      signal,
    );
    return { status: 'success', data: findStragglers(selected, start, end) };
  });

  app.get('/api/tw/v1/ticks', READ, (req, reply) => streamTicks(deps, requestPrincipal(req), req, reply));
}

async function requireJob(
  deps: DashboardDeps,
  tenant: string,
  jobId: string,
  signal?: AbortSignal,
): Promise<JobInfo> {
  const job = await deps.jobs.get(tenant, jobId, Date.now(), signal);
  if (!job) throw twError(Errors.notFound, `no job ${JSON.stringify(jobId)} in tenant ${tenant}`);
  return job;
}

/**
 * Server-Sent Events telling a page that new samples of its selection arrived: `data: {"t": <newest ms>}`
 * at once, then whenever the newest sample time advances (checked every `livePollMs`). The page then
 * fetches only the new columns or points of each chart with the endpoints above, so one stream serves any
 * number of charts and the server never re-sends what the page has.
 */
function streamTicks(
  deps: DashboardDeps,
  principal: Principal,
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  const q = req.query as Query;
  const tenant = readTenant(principal, single(q.tenant, 'tenant'));
  const metrics = metricsParam(q);
  const matchers = labelMatchers(q, TICK_OPTIONS);
  if (metrics.length === 1) matchers.push(new LabelMatcher('=', METRIC_NAME_LABEL, metrics[0]!));
  else if (metrics.length > 1) matchers.push(new LabelMatcher('=~', METRIC_NAME_LABEL, metrics.join('|')));
  if (matchers.length === 0)
    throw twError(
      Errors.badRequest,
      'select what to watch: give metric= and/or label parameters such as job_id=',
    );
  let newest = Number.NEGATIVE_INFINITY;
  serveEventStream(req, reply, {
    deps,
    principal,
    banner: 'trainwatch ticks',
    pollAtOnce: true,
    poll: async () => {
      const now = Date.now();
      const from = Number.isFinite(newest) ? newest - TICK_LOOKBACK_MS : now - DEFAULT_RANGE_MS;
      let found = newest;
      for (const s of await selectSeries(deps.storage.querier(tenant, from, now + 60_000), matchers, {
        minT: from,
      })) {
        const it = s.iterator();
        if (!it.seek(Number.isFinite(found) ? found + 1 : from)) continue;
        let t = it.t;
        while (it.next()) t = it.t;
        if (t > found) found = t;
      }
      if (!(found > newest) && Number.isFinite(newest)) return undefined;
      newest = found;
      const tick = { t: Number.isFinite(found) ? found : null };
      if (!Number.isFinite(newest)) newest = from; // nothing yet: look forward from here
      return tick;
    },
  });
}
