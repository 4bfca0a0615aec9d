/**
 * Isolation: do heavy queries disturb ingest? A fresh instance per system ingests its own data set at a
 * steady rate (the fleet in real time, one sample per series per second, or `--rate`) in two phases of
 * `isolationSeconds` each: (a) alone, then (b) while {@link QUERY_CLIENTS} clients run the heaviest queries
 * the server allows in a loop, each client sending its next query as soon as the previous one answered.
 *
 * Figures per phase: accepted samples/s, the ingest acknowledgement latency p50/p99/max (per request, measured
 * by the load generator from the first POST to the 2xx), the server's CPU; for (b) also how many queries were
 * answered or refused, with which statuses, and their latency. Targets (issue 15): ack p99 < 50 ms with the
 * queries, and throughput within 10% of the phase without them.
 *
 * The phases replay the two halves of one data set into one instance (each series' samples must arrive in
 * time order), so (b)'s queries read (a)'s data and whatever (b) has added; (b) runs on twice the stored data.
 */
import type { BenchContext } from '../harness/context.js';
import type { DatasetSummary } from '../harness/dataset.js';
import { CpuMeter } from '../harness/proc.js';
import type { PromApi } from '../harness/prom-api.js';
import type { PayloadFormat, ReplayResult } from '../harness/replay.js';
import type { Better, Results } from '../harness/results.js';
import { type LatencySummary, summarizeLatencies } from '../harness/stats.js';
import { SYSTEM_TITLES, type System, type SystemName } from '../harness/systems.js';
import { waitDrained } from './ingest.js';

export const QUERY_CLIENTS = 4;

/**
 * Prometheus's cap on points per series of a range query (trainwatch's too). The subquery starts at this many
 * points per evaluation and is made coarser only while the server refuses it: "as fine as the limits allow".
 */
export const MAX_POINTS_PER_SERIES = 11_000;

/** The adversarial query's own deadline, sent as `timeout`: it must be refused within this. */
const ADVERSARIAL_TIMEOUT_S = 5;

type QueryPath = '/api/v1/query' | '/api/v1/query_range';

export interface HeavyQuery {
  readonly id: string;
  /** The PromQL (and range) as the notes show it. */
  readonly title: string;
  readonly path: QueryPath;
  readonly params: Readonly<Record<string, string>>;
  /** Must be refused (4xx, or 503 at its deadline) within its `timeout`. */
  readonly adversarial: boolean;
  /** The client gives up waiting after this long. */
  readonly clientTimeoutMs: number;
}

/** The subquery's window: the whole data set, rounded up to whole minutes. */
export function subqueryWindowMs(ds: DatasetSummary): number {
  return Math.ceil((ds.lastMs - ds.firstMs + ds.options.intervalMs) / 60_000) * 60_000;
}

/** The finest subquery resolution (ms) that stays within {@link MAX_POINTS_PER_SERIES} over the window. */
export function finestSubqueryResolutionMs(windowMs: number): number {
  return Math.ceil(windowMs / MAX_POINTS_PER_SERIES);
}

function subquery(ds: DatasetSummary, resolutionMs: number, clientTimeoutMs: number): HeavyQuery {
  const query = `max_over_time(avg by (job_id) (gpu_utilization_ratio)[${subqueryWindowMs(ds) / 60_000}m:${resolutionMs}ms])`;
  return {
    id: 'fleet-subquery',
    title: query,
    path: '/api/v1/query',
    params: { query, time: String(ds.lastMs / 1000) },
    adversarial: false,
    clientTimeoutMs,
  };
}

/**
 * `max_over_time` over every GPU series of the fleet. Not `max_over_time({__name__=~"gpu_.*"}[1h])`: the
 * function drops the metric name and the GPU metrics share all their other labels, so Prometheus (and
 * trainwatch) refuse that with "vector cannot contain metrics with the same labelset" while VictoriaMetrics,
 * which keeps names, answers it. The union of one `max_over_time` per name reads the same samples and is valid
 * in all of them.
 */
export function fleetGpuMaxQuery(ds: DatasetSummary): string {
  const names = Object.keys(ds.seriesPerMetric)
    .filter((n) => n.startsWith('gpu_'))
    .sort();
  return names.map((n) => `max_over_time(${n}[1h])`).join(' or ');
}

/**
 * The query mix, evaluated at the data set's end so that every query reads all of it: a fleet-wide
 * `max_over_time` over every GPU series, a fleet-wide `rate` per job as a range query over the whole data at
 * the samples' interval, a regex over all metric names, the subquery, and the adversarial subquery.
 */
export function heavyQueries(
  ds: DatasetSummary,
  opts: { subqueryResolutionMs: number; adversarialRange: string; clientTimeoutMs: number },
): HeavyQuery[] {
  const at = String(ds.lastMs / 1000);
  const instant = (id: string, query: string): HeavyQuery => ({
    id,
    title: query,
    path: '/api/v1/query',
    params: { query, time: at },
    adversarial: false,
    clientTimeoutMs: opts.clientTimeoutMs,
  });
  const rate = 'sum by (job_id) (rate(train_step[5m]))';
  const step = ds.options.intervalMs / 1000;
  const adversarial = `max_over_time(vector(1)[${opts.adversarialRange}:1ms])`;
  return [
    {
      ...instant('fleet-gpu-max', fleetGpuMaxQuery(ds)),
      title: 'max_over_time(gpu_…[1h]) or … for every gpu_ metric',
    },
    {
      id: 'fleet-rate-range',
      title: `${rate} over the whole data at step ${step}s`,
      path: '/api/v1/query_range',
      params: { query: rate, start: String(ds.firstMs / 1000), end: at, step: String(step) },
      adversarial: false,
      clientTimeoutMs: opts.clientTimeoutMs,
    },
    instant('regex-names', 'count({__name__=~".+_total"})'),
    subquery(ds, opts.subqueryResolutionMs, opts.clientTimeoutMs),
    {
      id: 'adversarial',
      title: `${adversarial} with timeout=${ADVERSARIAL_TIMEOUT_S}s`,
      path: '/api/v1/query',
      params: { query: adversarial, time: at, timeout: `${ADVERSARIAL_TIMEOUT_S}s` },
      adversarial: true,
      clientTimeoutMs: (ADVERSARIAL_TIMEOUT_S + 5) * 1000,
    },
  ];
}

/** A refusal: the server answered with an error status instead of running the query to the end. */
const isRefusal = (status: string) => /^[45]\d\d$/.test(status);

export interface QueryLoadSummary {
  /** Queries that got an answer (any HTTP status), the adversarial one included. */
  readonly completed: number;
  /** Of the heavy (not adversarial) queries: answered 2xx, and their latency. */
  readonly heavyAnswered: number;
  readonly heavyLatency: LatencySummary;
  /** Heavy queries that got an error status, no answer in time, or a connection error. */
  readonly heavyFailed: number;
  readonly adversarialSent: number;
  readonly adversarialRefused: number;
  /** Time to the refusal of the adversarial queries that were refused. */
  readonly adversarialRefusalLatency: LatencySummary;
  /** Why the adversarial query stopped being sent (it was run instead of refused); undefined if it never was. */
  readonly adversarialRetired: string | undefined;
  /** Queries still running when the phase ended (cut off by the client, not counted above). */
  readonly cutOff: number;
  /** Per query: its statuses with counts, and the first error text of each query. */
  readonly note: string;
}

/**
 * The query clients of the isolation scenario and their tally. A client skips the adversarial query while
 * another client has it in flight, and no client sends it again once a server ran it instead of refusing it
 * (answered 2xx, or no answer within its client timeout): a build without the query limits would otherwise
 * hold several copies of it in memory at once (the 30-day version took 20 GB).
 */
export class QueryLoad {
  private readonly outcomes = new Map<string, { status: string; ms: number }[]>();
  private readonly firstErrors = new Map<string, string>();
  private cutOff = 0;
  private adversarialInFlight = false;
  private adversarialRetired: string | undefined;

  constructor(
    private readonly api: PromApi,
    readonly queries: readonly HeavyQuery[],
  ) {}

  /** Runs `clients` loops until `stop` aborts. Client c starts at query c, so that different queries overlap. */
  async run(clients: number, stop: AbortSignal): Promise<void> {
    await Promise.all(Array.from({ length: clients }, (_, c) => this.client(c, stop)));
  }

  private async client(first: number, stop: AbortSignal): Promise<void> {
    for (let i = first; !stop.aborted; i++) {
      const q = this.queries[i % this.queries.length]!;
      if (q.adversarial && (this.adversarialInFlight || this.adversarialRetired !== undefined)) {
        // Yield to the event loop, so that a mix of nothing but skipped queries cannot spin.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      if (q.adversarial) this.adversarialInFlight = true;
      const started = performance.now();
      const limit = AbortSignal.timeout(q.clientTimeoutMs);
      try {
        const answer = await this.api.send(q.path, q.params, AbortSignal.any([stop, limit]));
        this.record(q, String(answer.status), performance.now() - started, answer.error);
      } catch (err) {
        if (stop.aborted) this.cutOff++;
        else if (limit.aborted)
          this.record(q, 'timeout', performance.now() - started, `no answer within ${q.clientTimeoutMs} ms`);
        else this.record(q, 'error', performance.now() - started, (err as Error).message);
      } finally {
        if (q.adversarial) this.adversarialInFlight = false;
      }
    }
  }

  /** Counts one query's outcome: an HTTP status, 'timeout' (no answer within the client's limit) or 'error'. */
  record(q: HeavyQuery, status: string, ms: number, error = ''): void {
    const list = this.outcomes.get(q.id) ?? [];
    this.outcomes.set(q.id, list);
    list.push({ status, ms });
    if (error && !this.firstErrors.has(q.id))
      this.firstErrors.set(q.id, error.replace(/\s+/g, ' ').slice(0, 160));
    if (q.adversarial && !isRefusal(status) && this.adversarialRetired === undefined) {
      this.adversarialRetired =
        status === 'timeout' || status === 'error'
          ? `not refused: ${error.replace(/\s+/g, ' ').slice(0, 160) || status}; not sent again`
          : `not refused: answered HTTP ${status} after ${(ms / 1000).toFixed(1)} s; not sent again`;
    }
  }

  summary(): QueryLoadSummary {
    const heavyMs: number[] = [];
    const refusalMs: number[] = [];
    let completed = 0;
    let heavyFailed = 0;
    let adversarialSent = 0;
    const parts: string[] = [];
    for (const q of this.queries) {
      const list = this.outcomes.get(q.id) ?? [];
      const counts = new Map<string, number>();
      for (const o of list) {
        counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
        if (/^\d+$/.test(o.status)) completed++;
        const ok = /^2\d\d$/.test(o.status);
        if (q.adversarial) {
          adversarialSent++;
          if (isRefusal(o.status)) refusalMs.push(o.ms);
        } else if (ok) heavyMs.push(o.ms);
        else heavyFailed++;
      }
      const statuses = [...counts].map(([s, n]) => `${s} × ${n}`).join(', ') || 'not sent';
      const err = this.firstErrors.get(q.id);
      parts.push(`\`${q.title}\`: ${statuses}${err ? ` (first error: ${err})` : ''}`);
    }
    return {
      completed,
      heavyAnswered: heavyMs.length,
      heavyLatency: summarizeLatencies(heavyMs),
      heavyFailed,
      adversarialSent,
      adversarialRefused: refusalMs.length,
      adversarialRefusalLatency: summarizeLatencies(refusalMs),
      adversarialRetired: this.adversarialRetired,
      cutOff: this.cutOff,
      note: parts.join('; '),
    };
  }
}

export interface IsolationPhase {
  readonly replay: ReplayResult;
  /** Server CPU over the phase, in cores. */
  readonly serverCores: number;
}

export interface IsolationOutcome {
  /** The pace of both phases (samples/s) and how it was chosen. */
  readonly rate: number;
  readonly rateHow: string;
  readonly seconds: number;
  readonly without: IsolationPhase;
  readonly withQueries: IsolationPhase;
  readonly queries: QueryLoadSummary;
  /** The subquery's resolution and why (refusals of finer ones). */
  readonly subqueryNote: string;
  /** Set when (a)'s data did not become queryable before (b) (b then ran on part of it). */
  readonly drainNote: string | undefined;
}

/** The phases' pace: `--rate` if given, else every series' samples at their interval (the fleet in real time). */
export function isolationRate(ds: DatasetSummary, rate: number): { rate: number; how: string } {
  if (rate > 0) return { rate, how: 'set with --rate' };
  const perSecond = ds.samples / ((ds.options.ticks * ds.options.intervalMs) / 1000);
  return { rate: perSecond, how: 'the fleet in real time: one sample per series per second' };
}

async function ingestPhase(
  ctx: BenchContext,
  sys: System,
  datasetName: string,
  format: PayloadFormat,
  rate: number,
  chunks: { first: number; last: number },
  load: QueryLoad | undefined,
): Promise<IsolationPhase> {
  const meter = new CpuMeter({ server: sys.process.pid }).start();
  const stop = new AbortController();
  const clients = load?.run(QUERY_CLIENTS, stop.signal);
  let replay: ReplayResult;
  try {
    replay = await ctx.generator.replay(datasetName, {
      baseUrl: sys.baseUrl,
      format,
      concurrency: ctx.sizes.concurrency,
      targetSamplesPerSec: rate,
      // A server slower than the pace gets half as long again; what it accepted by then counts.
      maxSeconds: ctx.sizes.isolationSeconds * 1.5,
      chunks,
    });
  } finally {
    stop.abort();
    await clients;
  }
  return { replay, serverCores: meter.stop().cpu.server!.cores };
}

/** Sends the subquery, coarser while the server refuses it (4xx), up to 8 times; its resolution and why. */
async function calibrateSubquery(
  sys: System,
  ds: DatasetSummary,
  clientTimeoutMs: number,
): Promise<{ resolutionMs: number; note: string }> {
  const windowMs = subqueryWindowMs(ds);
  let resolutionMs = finestSubqueryResolutionMs(windowMs);
  const refused: string[] = [];
  for (let i = 0; i < 8; i++) {
    const q = subquery(ds, resolutionMs, clientTimeoutMs);
    const answer = await sys.query
      .send(q.path, q.params, AbortSignal.timeout(clientTimeoutMs))
      .catch((err: Error) => ({ status: 0, error: err.message }));
    if (answer.status < 400 || answer.status >= 500) break;
    refused.push(
      `${resolutionMs} ms: HTTP ${answer.status} ${answer.error.replace(/\s+/g, ' ').slice(0, 160)}`,
    );
    resolutionMs *= 2;
  }
  const points = Math.round(windowMs / resolutionMs);
  return {
    resolutionMs,
    note: `subquery at ${resolutionMs} ms (${points} points per evaluation)${refused.length ? `; refused finer: ${refused.join('; ')}` : ''}`,
  };
}

/** Runs both phases against one (fresh) system holding nothing yet. */
export async function runIsolation(
  ctx: BenchContext,
  sys: System,
  datasetName: string,
  ds: DatasetSummary,
  format: PayloadFormat,
): Promise<IsolationOutcome> {
  const seconds = ctx.sizes.isolationSeconds;
  const { rate, how } = isolationRate(ds, ctx.sizes.rate);
  const half = Math.max(1, Math.floor(ds.chunks / 2));
  const title = SYSTEM_TITLES[sys.name];
  ctx.log(`  ${title}: ingest without queries, ${Math.round(rate)} samples/s …`);
  const without = await ingestPhase(ctx, sys, datasetName, format, rate, { first: 1, last: half }, undefined);
  let drainNote: string | undefined;
  try {
    await waitDrained(sys, ds, ctx.sizes.drainSeconds * 1000, half);
  } catch (err) {
    drainNote = `the first phase's data was not all queryable before the second: ${(err as Error).message.split('\n')[0]}`;
  }
  const clientTimeoutMs = seconds * 2000;
  const sub = await calibrateSubquery(sys, ds, clientTimeoutMs);
  const load = new QueryLoad(
    sys.query,
    heavyQueries(ds, {
      subqueryResolutionMs: sub.resolutionMs,
      adversarialRange: ctx.sizes.adversarialRange,
      clientTimeoutMs,
    }),
  );
  ctx.log(`  ${title}: ingest with ${QUERY_CLIENTS} heavy query clients (${sub.note.split(';')[0]}) …`);
  const withQueries = await ingestPhase(
    ctx,
    sys,
    datasetName,
    format,
    rate,
    { first: half + 1, last: ds.chunks },
    load,
  );
  return {
    rate,
    rateHow: how,
    seconds,
    without,
    withQueries,
    queries: load.summary(),
    subqueryNote: sub.note,
    drainNote,
  };
}

const WITHOUT = 'without queries';
const WITH = `with ${QUERY_CLIENTS} heavy query clients`;

/** The figures of the isolation scenario, in table order. */
export const ISOLATION_FIGURES: [string, string, Better][] = [
  [`accepted samples/s — ${WITHOUT}`, 'samples/s', 'higher'],
  [`accepted samples/s — ${WITH}`, 'samples/s', 'higher'],
  ['accepted samples/s with ÷ without queries (target ≥ 0.90)', '×', 'info'],
  [`ingest ack latency p50 — ${WITHOUT}`, 'ms', 'lower'],
  [`ingest ack latency p99 — ${WITHOUT}`, 'ms', 'lower'],
  [`ingest ack latency max — ${WITHOUT}`, 'ms', 'lower'],
  [`ingest ack latency p50 — ${WITH}`, 'ms', 'lower'],
  [`ingest ack latency p99 — ${WITH} (target < 50 ms)`, 'ms', 'lower'],
  [`ingest ack latency max — ${WITH}`, 'ms', 'lower'],
  [`server CPU — ${WITHOUT}`, 'cores', 'info'],
  [`server CPU — ${WITH}`, 'cores', 'info'],
  ['heavy queries answered (2xx)', 'queries', 'info'],
  ['heavy queries failed (error status, no answer in time)', 'queries', 'info'],
  ['heavy query latency p50 (answered)', 'ms', 'lower'],
  ['heavy query latency p99 (answered)', 'ms', 'lower'],
  ['adversarial queries refused / sent', 'queries', 'info'],
  ['adversarial query: time to refusal, max', 'ms', 'lower'],
];

export const ISOLATION_SCENARIO = 'isolation: ingest with and without heavy queries';

/** Records one system's isolation outcome as figures (and its details). */
export function recordIsolation(results: Results, name: SystemName, o: IsolationOutcome): void {
  const f = ISOLATION_FIGURES;
  const set = (i: number, value: number | undefined, note?: string) =>
    results.set(ISOLATION_SCENARIO, f[i]![0], f[i]![1], f[i]![2], name, value ?? undefined, note);
  const replayNote = (r: ReplayResult) =>
    r.samplesRefused > 0 || r.stoppedByTimeLimit
      ? [
          `${r.samplesAccepted} of ${r.samplesTotal} samples accepted`,
          r.stoppedByTimeLimit ? 'stopped at the time limit (the server fell behind the pace)' : '',
          r.firstError,
        ]
          .filter(Boolean)
          .join('; ')
      : undefined;
  const pace = `paced at ${Math.round(o.rate)} samples/s (${o.rateHow}), ${o.seconds} s per phase`;
  const a = o.without;
  const b = o.withQueries;
  set(0, a.replay.samplesPerSec, [pace, replayNote(a.replay)].filter(Boolean).join('; '));
  set(1, b.replay.samplesPerSec, [replayNote(b.replay), o.drainNote].filter(Boolean).join('; ') || undefined);
  set(2, a.replay.samplesPerSec > 0 ? b.replay.samplesPerSec / a.replay.samplesPerSec : undefined);
  const lat = [a.replay.ackLatencyMs, b.replay.ackLatencyMs];
  lat.forEach((l, p) => {
    set(3 + 3 * p, l.count ? l.p50 : undefined);
    set(4 + 3 * p, l.count ? l.p99 : undefined);
    set(5 + 3 * p, l.count ? l.max : undefined);
  });
  set(9, a.serverCores);
  set(10, b.serverCores);
  const q = o.queries;
  const cut = q.cutOff ? `; ${q.cutOff} still running when the phase ended (not counted)` : '';
  set(11, q.heavyAnswered, `${q.note}${cut}; ${o.subqueryNote}`);
  set(12, q.heavyFailed);
  set(13, q.heavyLatency.count ? q.heavyLatency.p50 : undefined);
  set(14, q.heavyLatency.count ? q.heavyLatency.p99 : undefined);
  set(
    15,
    q.adversarialRefused,
    `${q.adversarialRefused} of ${q.adversarialSent} sent${q.adversarialRetired ? `; ${q.adversarialRetired}` : ''}`,
  );
  set(16, q.adversarialRefusalLatency.count ? q.adversarialRefusalLatency.max : undefined);
  const details = (results.details.isolation ?? {}) as Record<string, unknown>;
  details[name] = o;
  results.details.isolation = details;
}
