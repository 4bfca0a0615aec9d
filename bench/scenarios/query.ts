/**
 * Query: a fixed set of dashboard queries over the ingested window, as range queries (one point per step,
 * as a chart asks), each run `queryRepeats` times after one warm-up run. Figures: median and p99 latency per
 * query. The warm-up results are compared across systems: Prometheus, the reference implementation of
 * PromQL, is the yardstick.
 *
 * Range windows are 15 s (about what Grafana's $__rate_interval gives for 1 s samples), so that most points
 * of the short benchmark window are computed from full windows.
 */
import type { BenchContext } from '../harness/context.js';
import type { DatasetSummary } from '../harness/dataset.js';
import type { PromSeries } from '../harness/prom-api.js';
import { percentile } from '../harness/stats.js';
import type { System, SystemName } from '../harness/systems.js';

export interface DashboardQuery {
  readonly id: string;
  readonly title: string;
  readonly promql: string;
}

export function dashboardQueries(ds: DatasetSummary): DashboardQuery[] {
  const job = ds.jobIds[0]!;
  return [
    {
      id: 'fleet-gpu-util-by-node',
      title: 'fleet: average GPU utilization per job and node',
      promql: 'avg by (job_id, node_id) (gpu_utilization_ratio)',
    },
    {
      id: 'job-gpu-util-by-node',
      title: 'one job: average GPU utilization per node',
      promql: `avg by (node_id) (gpu_utilization_ratio{job_id="${job}"})`,
    },
    {
      id: 'job-max-loss',
      title: 'one job: max_over_time of the loss per rank',
      promql: `max_over_time(train_loss{job_id="${job}"}[15s])`,
    },
    {
      id: 'fleet-network-rate',
      title: 'fleet: rate of a counter (network transmit) per job',
      promql: 'sum by (job_id) (rate(host_network_transmit_bytes_total[15s]))',
    },
    {
      id: 'fleet-topk-memory',
      title: 'fleet: top 10 GPUs by memory used',
      promql: 'topk(10, gpu_memory_used_bytes)',
    },
  ];
}

/**
 * Start, end and step (seconds) of the dashboard's range: the ingested window. Evaluation times fall half an
 * interval after a sample, never on one: Prometheus 2 (Debian's) closes range windows on the left, Prometheus
 * 3 (whose tests trainwatch's engine passes) opens them, and a sample exactly on the edge would make the two
 * differ for reasons that have nothing to do with the engines' quality.
 */
export function queryWindow(ds: DatasetSummary): { start: number; end: number; step: number } {
  const interval = ds.options.intervalMs / 1000;
  const span = (ds.lastMs - ds.firstMs) / 1000;
  const step = Math.max(interval, Math.round(span / 60 / interval) * interval);
  const start = Math.ceil(ds.firstMs / 1000 / step) * step + interval / 2;
  const end = start + Math.floor((ds.lastMs / 1000 - start) / step) * step;
  return { start, end, step };
}

export type QueryResults = Record<string, PromSeries[] | string>;

/** Runs the query set against one system; returns each query's warm-up result (or its error). */
export async function runQueries(ctx: BenchContext, sys: System): Promise<QueryResults> {
  const ds = ctx.dataset;
  const queries = dashboardQueries(ds);
  const { start, end, step } = queryWindow(ds);
  const out: QueryResults = {};
  const available = await sys.query.available();
  if (available !== true) {
    for (const q of queries) {
      const why = `not available (${available})`;
      out[q.id] = why;
      for (const stat of ['median', 'p99']) {
        ctx.results.set('query', `${q.title} — ${stat}`, 'ms', 'lower', sys.name, undefined, why);
      }
    }
    return out;
  }
  const times = new Map<string, number[]>();
  for (const q of queries) {
    try {
      out[q.id] = await sys.query.range(q.promql, start, end, step);
      times.set(q.id, []);
    } catch (err) {
      out[q.id] = `error: ${(err as Error).message}`;
    }
  }
  for (let i = 0; i < ctx.sizes.queryRepeats; i++) {
    for (const q of queries) {
      const t = times.get(q.id);
      if (!t) continue;
      const t0 = performance.now();
      try {
        await sys.query.range(q.promql, start, end, step);
        t.push(performance.now() - t0);
      } catch (err) {
        out[q.id] = `error: ${(err as Error).message}`;
        times.delete(q.id);
      }
    }
  }
  for (const q of queries) {
    const t = (times.get(q.id) ?? []).sort((a, b) => a - b);
    const failed = typeof out[q.id] === 'string' ? (out[q.id] as string) : undefined;
    ctx.results.set(
      'query',
      `${q.title} — median`,
      'ms',
      'lower',
      sys.name,
      t.length ? percentile(t, 50) : undefined,
      failed,
    );
    ctx.results.set(
      'query',
      `${q.title} — p99`,
      'ms',
      'lower',
      sys.name,
      t.length ? percentile(t, 99) : undefined,
      failed,
    );
  }
  ctx.log(
    `  ${sys.name}: ${queries.length} queries × ${ctx.sizes.queryRepeats} runs over [${start}, ${end}] step ${step}s`,
  );
  return out;
}

/**
 * Identity of a result series. The `tenant` label is left out: trainwatch treats the tenant as its isolation
 * boundary (set from the credentials, not shown in query results), while the references store it as an
 * ordinary label.
 */
function seriesKey(metric: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(metric)
      .filter((k) => k !== 'tenant')
      .sort()
      .map((k) => [k, metric[k]]),
  );
}

function sameValue(a: string, b: string): boolean {
  if (a === b) return true;
  const x = Number(a);
  const y = Number(b);
  if (Number.isNaN(x) && Number.isNaN(y)) return true;
  return Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x), Math.abs(y));
}

/** Compares one system's results with the reference's; undefined when they agree. */
export function compareResults(got: PromSeries[], want: PromSeries[]): string | undefined {
  const w = new Map(want.map((s) => [seriesKey(s.metric), s]));
  const g = new Map(got.map((s) => [seriesKey(s.metric), s]));
  const missing = [...w.keys()].filter((k) => !g.has(k));
  const extra = [...g.keys()].filter((k) => !w.has(k));
  let pointsDiffer = 0;
  let pointsMissing = 0;
  let example = '';
  for (const [k, ws] of w) {
    const gs = g.get(k);
    if (!gs) continue;
    const wv = ws.values ?? (ws.value ? [ws.value] : []);
    const gv = new Map((gs.values ?? (gs.value ? [gs.value] : [])).map(([t, v]) => [t, v]));
    for (const [t, v] of wv) {
      const other = gv.get(t);
      if (other === undefined) pointsMissing++;
      else if (!sameValue(other, v)) {
        pointsDiffer++;
        if (!example) example = `e.g. ${k} at ${t}: ${other} instead of ${v}`;
      }
    }
  }
  if (!missing.length && !extra.length && !pointsDiffer && !pointsMissing) return undefined;
  const parts: string[] = [];
  if (missing.length) parts.push(`${missing.length} of ${w.size} series missing (e.g. ${missing[0]})`);
  if (extra.length) parts.push(`${extra.length} extra series (e.g. ${extra[0]})`);
  if (pointsMissing) parts.push(`${pointsMissing} points missing`);
  if (pointsDiffer) parts.push(`${pointsDiffer} values differ (${example})`);
  return parts.join('; ');
}

/**
 * Records, per system and query, whether its result matched Prometheus's. `incomplete` names the systems
 * that did not accept the whole data set: their results are not comparable.
 */
export function recordAgreement(
  ctx: BenchContext,
  all: Partial<Record<SystemName, QueryResults>>,
  incomplete: Partial<Record<SystemName, string>> = {},
): void {
  const reference = all.prometheus;
  const queries = dashboardQueries(ctx.dataset);
  const agreement: Record<string, Record<string, string>> = {};
  for (const q of queries) {
    agreement[q.id] = {};
    const want = reference?.[q.id];
    for (const [name, res] of Object.entries(all) as [SystemName, QueryResults][]) {
      if (name === 'prometheus') continue;
      const got = res[q.id];
      let verdict: string;
      if (typeof want !== 'object') verdict = 'not compared: no Prometheus result';
      else if (typeof got !== 'object') verdict = `not compared: ${got}`;
      else if (incomplete.prometheus) verdict = `not compared: Prometheus ${incomplete.prometheus}`;
      else if (incomplete[name]) verdict = `not compared: ${incomplete[name]}`;
      else verdict = compareResults(got, want) ?? `same ${want.length} series and values as Prometheus`;
      agreement[q.id]![name] = verdict;
      const ok = verdict.startsWith('same');
      ctx.results.set(
        'query agreement',
        `${q.title}: same series and values as Prometheus`,
        'yes = 1',
        'info',
        name,
        verdict.startsWith('not compared') ? undefined : ok ? 1 : 0,
        ok ? undefined : verdict,
      );
    }
  }
  ctx.results.details.queryAgreement = agreement;
  ctx.results.details.queries = queries;
}
