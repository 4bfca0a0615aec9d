/**
 * Differential test against a real Prometheus: the fleet simulator's data (plus classic histogram buckets and a
 * resetting counter) is loaded into Prometheus (Debian package, blocks written by `promtool tsdb
 * create-blocks-from openmetrics`) and into trainwatch's TSDB; every query below runs on both through the
 * HTTP API, as instant queries at three times and as a range query, and the results must agree series for
 * series (relative tolerance 1e-6).
 *
 * Debian ships Prometheus 2.42, whose range windows include their left boundary where Prometheus 3's (and
 * trainwatch's) exclude it. Sample timestamps are therefore offset by a few milliseconds from whole seconds,
 * so no sample falls on a window boundary and both versions must give the same answer. Functions that only
 * exist in Prometheus 3 are covered by the upstream test files instead; `holt_winters` is compared with its
 * Prometheus 3 name `double_exponential_smoothing`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Authenticator,
  installAccessControl,
  type Principal,
  type Scope,
} from '../../src/auth/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { LabelSet } from '../../src/model/labels.js';
import { registerPromApi } from '../../src/query/prom-api.js';
import { shardedMemoryTsdb } from '../../src/query/promql/test-script.js';
import { defaultFleetOptions, FleetSimulator } from '../../src/simulator/index.js';
import type { Storage } from '../../src/storage/index.js';
import { freePort, tempDir, waitFor } from '../support/helpers.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const INSTALL = 'apt-get update && apt-get install -y prometheus';
const available = existsSync(PROMETHEUS) && existsSync(PROMTOOL);
const inCI = process.env.CI === 'true';

const START = Date.UTC(2024, 2, 10, 12, 0, 0); // a fixed hour of data
const INTERVAL = 15_000;
const TICKS = 240; // one hour
/** Ticks simulated before the recorded hour, so every job is running when it starts. */
const WARMUP_TICKS = 60;
const sec = (ms: number) => ms / 1000;
const AT = START + 30 * 60_000 + 17_000;

/** Each pair is [trainwatch query, Prometheus 2.42 query] when they differ only by a renamed function. */
const QUERIES: (string | [string, string])[] = [
  // selectors, offset, @
  'gpu_utilization_ratio',
  'gpu_utilization_ratio{gpu="0"}',
  'gpu_utilization_ratio{node_id=~".*-1", gpu!="1"}',
  '{__name__=~"host_.*", __name__!~".*bytes.*"}',
  'train_loss offset 5m',
  'train_loss offset -2m',
  `train_loss @ ${sec(AT)}`,
  `gpu_power_watts offset 1m @ ${sec(AT)}`,
  'gpu_power_watts @ start()',
  'gpu_power_watts @ end()',
  'host_memory_used_bytes[5m]',
  'train_step[2m] offset 1m',
  // counters
  'rate(host_network_receive_bytes_total[1m])',
  'rate(host_network_receive_bytes_total[5m])',
  'irate(host_network_transmit_bytes_total[2m])',
  'increase(host_network_transmit_bytes_total[10m])',
  'rate(requests_total[5m])',
  'increase(requests_total[15m])',
  'irate(requests_total[1m])',
  'resets(requests_total[30m])',
  'rate(train_step[3m])',
  'changes(gpu_throttled[30m])',
  'delta(gpu_temperature_celsius[10m])',
  'idelta(gpu_temperature_celsius[2m])',
  'deriv(gpu_memory_used_bytes[10m])',
  'predict_linear(gpu_memory_used_bytes[10m], 3600)',
  ['double_exponential_smoothing(train_loss[10m], 0.5, 0.3)', 'holt_winters(train_loss[10m], 0.5, 0.3)'],
  // *_over_time
  'avg_over_time(gpu_utilization_ratio[5m])',
  'min_over_time(gpu_temperature_celsius[10m])',
  'max_over_time(gpu_temperature_celsius[10m])',
  'sum_over_time(gpu_throttled[15m])',
  'count_over_time(train_loss[5m])',
  'quantile_over_time(0.9, gpu_power_watts[10m])',
  'quantile_over_time(0, gpu_power_watts[10m])',
  'stddev_over_time(train_samples_per_second[10m])',
  'stdvar_over_time(train_samples_per_second[10m])',
  'last_over_time(train_loss[5m])',
  'present_over_time(eval_loss[5m])',
  'absent_over_time(train_loss[5m])',
  'absent_over_time(nonexistent_metric{job_id="x"}[5m])',
  // math
  'abs(-train_loss)',
  'ceil(gpu_temperature_celsius / 7)',
  'floor(gpu_temperature_celsius / 7)',
  'round(gpu_power_watts, 5)',
  'round(train_loss)',
  'sqrt(gpu_power_watts)',
  'exp(clamp_max(train_loss, 10))',
  'ln(gpu_power_watts)',
  'log2(gpu_memory_used_bytes)',
  'log10(gpu_memory_used_bytes)',
  'sgn(gpu_utilization_ratio - 0.5)',
  'clamp(gpu_utilization_ratio, 0.2, 0.8)',
  'clamp_min(train_loss, 1)',
  'clamp_max(train_loss, 1)',
  'sin(gpu_utilization_ratio)',
  'cos(gpu_utilization_ratio)',
  'tan(gpu_utilization_ratio)',
  'asin(gpu_utilization_ratio)',
  'acos(gpu_utilization_ratio)',
  'atan(train_loss)',
  'sinh(gpu_utilization_ratio)',
  'cosh(gpu_utilization_ratio)',
  'tanh(train_loss)',
  'asinh(train_loss)',
  'acosh(gpu_utilization_ratio + 1)',
  'atanh(gpu_utilization_ratio * 0.5)',
  'deg(gpu_utilization_ratio)',
  'rad(gpu_temperature_celsius)',
  'pi() * 2',
  // time
  'time()',
  'timestamp(train_loss)',
  'timestamp(rate(train_step[5m]))',
  'hour()',
  'minute()',
  'month()',
  'year()',
  'day_of_month()',
  'day_of_week()',
  'day_of_year()',
  'days_in_month()',
  'minute(timestamp(train_loss))',
  // labels and conversions
  'label_replace(gpu_utilization_ratio, "host", "$1", "node_id", "(.*)-[0-9]+")',
  'label_replace(gpu_utilization_ratio, "node_id", "", "node_id", ".*")',
  'label_join(gpu_power_watts, "id", "/", "job_id", "node_id", "gpu")',
  'vector(1)',
  'vector(time())',
  'scalar(sum(gpu_power_watts))',
  'scalar(gpu_power_watts)',
  'sort(gpu_power_watts)',
  'sort_desc(gpu_power_watts)',
  'absent(nonexistent_metric{job_id="x", node_id=~"a.*"})',
  'absent(train_loss)',
  // classic histograms
  'histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))',
  'histogram_quantile(0.5, sum by (le) (rate(request_duration_seconds_bucket[5m])))',
  'histogram_quantile(0.99, sum by (le, path) (increase(request_duration_seconds_bucket[10m])))',
  'histogram_quantile(1.5, sum by (le) (rate(request_duration_seconds_bucket[5m])))',
  // aggregations
  'sum(gpu_power_watts)',
  'sum by (job_id) (gpu_power_watts)',
  'avg by (node_id) (gpu_utilization_ratio)',
  'min(gpu_temperature_celsius)',
  'max without (gpu, gpu_uuid, rank) (gpu_temperature_celsius)',
  'count(gpu_utilization_ratio)',
  'count by (job_id) (train_loss)',
  'group by (job_id, node_id) (gpu_power_watts)',
  'stddev by (job_id) (gpu_power_watts)',
  'stdvar(gpu_power_watts)',
  'topk(3, gpu_power_watts)',
  'bottomk(2, gpu_temperature_celsius)',
  'topk by (job_id) (1, gpu_power_watts)',
  'quantile(0.75, gpu_utilization_ratio)',
  'quantile by (job_id) (0.5, gpu_power_watts)',
  'count_values("value", gpu_throttled)',
  'count_values by (job_id) ("loss", round(train_loss))',
  'sum by (job_id) (rate(train_step[5m])) * 60',
  // Prometheus 2.42 breaks ties between aggregated series of a range query in Go's random map order, so the
  // value ranked must have no ties: the simulator's network counters grow alike on equal nodes, power is noisy.
  'topk(1, sum by (job_id) (rate(host_network_transmit_bytes_total[5m])) / sum by (job_id) (avg_over_time(gpu_power_watts[5m])))',
  // binary operators
  'gpu_memory_used_bytes / 2 ^ 30',
  '100 * gpu_utilization_ratio',
  'gpu_power_watts - 1',
  'gpu_power_watts % 7',
  'gpu_utilization_ratio ^ 2',
  'rate(host_network_receive_bytes_total[5m]) atan2 rate(host_network_transmit_bytes_total[5m])',
  '2 * 3 + 4 / 5 - 2 ^ 3 % 5',
  'gpu_memory_used_bytes / gpu_memory_total_bytes',
  'train_samples_per_second / ignoring(local_rank) train_tokens_per_second',
  'sum by (job_id) (gpu_power_watts) / on(job_id) count by (job_id) (gpu_power_watts)',
  'gpu_power_watts / on(job_id) group_left sum by (job_id) (gpu_power_watts)',
  'gpu_utilization_ratio * on(job_id, node_id) group_left host_cpu_utilization_ratio',
  'gpu_utilization_ratio * on(job_id, node_id) group_left(cluster) host_cpu_utilization_ratio',
  'host_cpu_utilization_ratio * on(job_id, node_id) group_right gpu_utilization_ratio',
  'gpu_power_watts + on(job_id, node_id) gpu_power_watts',
  '-gpu_power_watts',
  'gpu_utilization_ratio > 0.5',
  'gpu_utilization_ratio > bool 0.5',
  '0.5 < gpu_utilization_ratio',
  'gpu_temperature_celsius == bool 60',
  'gpu_throttled != 0',
  'gpu_temperature_celsius <= 55',
  'gpu_temperature_celsius >= bool 55',
  'gpu_temperature_celsius > on(job_id, node_id) group_left avg by (job_id, node_id) (gpu_temperature_celsius)',
  'gpu_power_watts > bool ignoring(gpu, gpu_uuid, rank) group_left max without (gpu, gpu_uuid, rank) (gpu_power_watts) * 0.9',
  '1 < bool 2',
  'gpu_utilization_ratio > 0.5 and gpu_temperature_celsius > 50',
  'gpu_utilization_ratio and on(job_id) train_loss > 2',
  'gpu_utilization_ratio > 0.9 or gpu_utilization_ratio < 0.1',
  'train_loss or eval_loss',
  'gpu_utilization_ratio unless gpu_throttled > 0',
  'gpu_utilization_ratio unless ignoring(gpu, gpu_uuid, rank) host_cpu_utilization_ratio > 0.5',
  // subqueries
  'max_over_time(rate(host_network_receive_bytes_total[1m])[10m:30s])',
  'avg_over_time(gpu_utilization_ratio[15m:1m])',
  'min_over_time(sum by (job_id) (gpu_power_watts)[10m:])',
  'rate(train_step[5m:30s])',
  'sum_over_time(gpu_throttled[10m:1m] offset 5m)',
  `max_over_time(gpu_power_watts[5m:1m] @ ${sec(AT)})`,
  'deriv(avg by (job_id) (gpu_memory_used_bytes)[10m:1m])',
];

interface PromLike {
  status: string;
  data?: { resultType: string; result: unknown };
  errorType?: string;
  error?: string;
}

type Points = Map<string, [number, number][]>;

function num(s: string): number {
  if (s === 'NaN') return Number.NaN;
  if (s === '+Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

function keyOf(metric: Record<string, string>): string {
  return JSON.stringify(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Normalises a result to series key → points, whatever its type. */
function points(r: PromLike): Points {
  const out: Points = new Map();
  const d = r.data!;
  if (d.resultType === 'scalar' || d.resultType === 'string') {
    const [t, v] = d.result as [number, string];
    out.set('scalar', [[t, num(v)]]);
    return out;
  }
  for (const s of d.result as {
    metric: Record<string, string>;
    value?: [number, string];
    values?: [number, string][];
  }[]) {
    const vals = s.value ? [s.value] : s.values!;
    out.set(
      keyOf(s.metric),
      vals.map(([t, v]) => [t, num(v)]),
    );
  }
  return out;
}

function close(a: number, b: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a === b) return true;
  const diff = Math.abs(a - b);
  return diff <= 1e-6 * Math.max(Math.abs(a), Math.abs(b)) || diff < 1e-12;
}

/** Differences between two results, for the failure message; empty when they agree. */
function compare(query: string, tw: PromLike, prom: PromLike, ordered: boolean): string[] {
  if (prom.status !== 'success' || tw.status !== 'success') {
    if (prom.status === tw.status) return [];
    return [
      `${query}: prometheus ${prom.status} ${prom.error ?? ''}, trainwatch ${tw.status} ${tw.error ?? ''}`,
    ];
  }
  if (prom.data!.resultType !== tw.data!.resultType)
    return [`${query}: resultType prometheus ${prom.data!.resultType}, trainwatch ${tw.data!.resultType}`];
  const p = points(prom);
  const t = points(tw);
  const diffs: string[] = [];
  for (const [k, pv] of p) {
    const tv = t.get(k);
    if (!tv) {
      diffs.push(`${query}: series ${k} missing in trainwatch`);
      continue;
    }
    if (pv.length !== tv.length) {
      diffs.push(`${query}: series ${k}: ${pv.length} points in prometheus, ${tv.length} in trainwatch`);
      continue;
    }
    for (let i = 0; i < pv.length; i++) {
      if (pv[i]![0] !== tv[i]![0] || !close(pv[i]![1], tv[i]![1])) {
        diffs.push(
          `${query}: series ${k} at ${pv[i]![0]}: prometheus ${pv[i]![1]}, trainwatch ${tv[i]![1]} at ${tv[i]![0]}`,
        );
        break;
      }
    }
  }
  for (const k of t.keys()) if (!p.has(k)) diffs.push(`${query}: extra series ${k} in trainwatch`);
  if (ordered && diffs.length === 0) {
    const pv = [...p.values()].map((x) => x[0]![1]);
    const tv = [...t.values()].map((x) => x[0]![1]);
    if (!pv.every((v, i) => close(v, tv[i]!))) diffs.push(`${query}: order differs`);
  }
  return diffs.slice(0, 3);
}

/** The simulator's hour of fleet data, plus histogram buckets and a counter with resets. */
function fleetData(): Map<string, { labels: LabelSet; ts: number[]; vs: number[] }> {
  const series = new Map<string, { labels: LabelSet; ts: number[]; vs: number[] }>();
  const add = (labels: LabelSet, t: number, v: number) => {
    const k = keyOf(labels);
    let s = series.get(k);
    if (!s) {
      s = { labels, ts: [], vs: [] };
      series.set(k, s);
    }
    s.ts.push(t);
    s.vs.push(v);
  };
  // Per-series offsets of a few ms keep every sample off whole seconds (see the file comment).
  const jitter = (labels: LabelSet) => {
    let h = 7;
    for (const c of keyOf(labels)) h = (h * 31 + c.charCodeAt(0)) % 9973;
    return 1 + (h % 997);
  };
  const sim = new FleetSimulator({
    ...defaultFleetOptions,
    seed: 11,
    jobs: 3,
    nodesPerJob: 2,
    gpusPerNode: 2,
    intervalMs: INTERVAL,
    incidentDelayMs: 10 * 60_000,
    // Jobs outlive the hour, so counters span every window (Prometheus 2.42 and 3 extrapolate a counter that
    // starts inside a window differently); incidents still stop, spike and throttle series.
    minSteps: 50_000,
    maxSteps: 60_000,
    startMs: START - WARMUP_TICKS * INTERVAL - INTERVAL,
  });
  for (let tick = 0; tick < WARMUP_TICKS; tick++) sim.tick();
  for (let tick = 0; tick < TICKS; tick++) {
    sim.tick();
    for (const node of sim.activeNodes()) {
      for (let s = 0; s < node.series.length; s++) {
        if (!node.present[s]) continue;
        const labels = node.series[s]!;
        add(labels, sim.nowMs + jitter(labels), node.values[s]!);
      }
    }
  }
  const bounds = ['0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf'];
  for (const p of ['/api', '/ui']) {
    const counts = new Array(bounds.length).fill(0);
    let resets = 0;
    for (let tick = 0; tick < TICKS; tick++) {
      const t = START + tick * INTERVAL;
      // A deterministic spread of observations per tick; buckets are cumulative.
      for (let k = 0; k < 20; k++) {
        const x = (((tick * 7919 + k * 104729 + (p === '/ui' ? 13 : 0)) % 1000) / 1000) ** 2 * 3;
        for (let b = 0; b < bounds.length; b++)
          if (b === bounds.length - 1 || x <= Number(bounds[b])) counts[b]++;
      }
      for (let b = 0; b < bounds.length; b++) {
        const labels = { __name__: 'request_duration_seconds_bucket', path: p, le: bounds[b]! };
        add(labels, t + jitter(labels), counts[b]);
      }
      const labels = { __name__: 'requests_total', path: p };
      if (tick % 70 === 69) resets = tick * 3;
      add(labels, t + jitter(labels), tick * 5 - resets + (p === '/ui' ? 2 : 0));
    }
  }
  return series;
}

function formatOm(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function toOpenMetrics(data: ReturnType<typeof fleetData>): string {
  const byName = new Map<string, { labels: LabelSet; ts: number[]; vs: number[] }[]>();
  for (const s of data.values()) {
    const name = s.labels.__name__!;
    byName.set(name, [...(byName.get(name) ?? []), s]);
  }
  const lines: string[] = [];
  for (const [name, list] of byName) {
    for (const s of list) {
      const labels = Object.entries(s.labels)
        .filter(([k]) => k !== '__name__')
        .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
        .join(',');
      for (let i = 0; i < s.ts.length; i++)
        lines.push(`${name}{${labels}} ${formatOm(s.vs[i]!)} ${(s.ts[i]! / 1000).toFixed(3)}`);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

let prom: ChildProcess | undefined;
let promUrl = '';
let dir = '';
let storage: Storage | undefined;
let app: FastifyInstance | undefined;

const anyTenant: Authenticator = {
  authenticate: (_c, scope: Scope): Principal => ({ tenant: 'diff', scopes: new Set([scope]), via: 'test' }),
};

describe.skipIf(!available && !inCI)('trainwatch and Prometheus give the same answers', () => {
  beforeAll(async () => {
    if (!available) throw new Error(`Prometheus is not installed (CI must install it: ${INSTALL})`);
    const data = fleetData();
    dir = tempDir('tw-promdiff-');
    writeFileSync(path.join(dir, 'data.om'), toOpenMetrics(data));
    mkdirSync(path.join(dir, 'tsdb'));
    execFileSync(
      PROMTOOL,
      ['tsdb', 'create-blocks-from', 'openmetrics', path.join(dir, 'data.om'), path.join(dir, 'tsdb')],
      {
        stdio: 'pipe',
      },
    );
    writeFileSync(path.join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 15s\n');
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      PROMETHEUS,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
        '--storage.tsdb.retention.time=100y',
        `--web.listen-address=127.0.0.1:${port}`,
        '--query.lookback-delta=5m',
      ],
      { stdio: 'ignore' },
    );

    // Three storage shards read through ports, as the processor workers keep them: answers across shards
    // must match Prometheus's as one shard's do.
    storage = await shardedMemoryTsdb(3);
    const b = new SeriesBatchBuilder();
    for (const s of data.values()) {
      b.addSeries(s.labels);
      for (let i = 0; i < s.ts.length; i++) b.add(s.ts[i]!, s.vs[i]!);
    }
    await storage.appender.append('diff', b.build());
    app = Fastify();
    installAccessControl(app, anyTenant);
    registerPromApi(app, { auth: anyTenant, storage });
    await app.ready();
    await waitFor(
      'prometheus to be ready',
      async () => {
        const r = await fetch(`${promUrl}/-/ready`).catch(() => undefined);
        return r?.ok ? true : undefined;
      },
      60_000,
      200,
    );
  }, 120_000);

  afterAll(async () => {
    if (prom?.pid !== undefined && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      process.kill(prom.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (prom.exitCode === null) process.kill(prom.pid, 'SIGKILL');
    }
    await app?.close();
    await storage?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`covers at least 100 queries`, () => {
    expect(QUERIES.length).toBeGreaterThanOrEqual(100);
  });

  it('answers every query as Prometheus does (instant at three times, and as a range query)', async () => {
    const diffs: string[] = [];
    let compared = 0;
    let nonEmpty = 0;
    for (const q of QUERIES) {
      const [twQuery, promQuery] = typeof q === 'string' ? [q, q] : q;
      const ordered = /^sort(_desc)?\(/.test(twQuery);
      const requests: string[] = [];
      // Evaluation times off the minute, so subquery grids (multiples of their step) never meet a window edge.
      for (const t of [
        START + 20 * 60_000 + 7_000,
        START + 41 * 60_000 + 13_000,
        START + 59 * 60_000 + 29_000,
      ])
        requests.push(`/api/v1/query?time=${sec(t)}`);
      const from = START + 10 * 60_000 + 11_000;
      requests.push(`/api/v1/query_range?start=${sec(from)}&end=${sec(from + 49 * 60_000)}&step=45`);
      for (const r of requests) {
        const promRes = (await (
          await fetch(`${promUrl}${r}&query=${encodeURIComponent(promQuery)}`)
        ).json()) as PromLike;
        const twRes = (
          await app!.inject({ method: 'GET', url: `${r}&query=${encodeURIComponent(twQuery)}` })
        ).json() as PromLike;
        diffs.push(
          ...compare(`${twQuery} (${r.split('?')[0]})`, twRes, promRes, ordered && r.includes('/query?')),
        );
        compared++;
        if (promRes.status === 'success' && points(promRes).size > 0) nonEmpty++;
      }
    }
    process.stdout.write(
      `prometheus differential: ${QUERIES.length} queries, ${compared} comparisons (${nonEmpty} non-empty), ${diffs.length} differences\n`,
    );
    expect(diffs).toEqual([]);
    // Most comparisons must have data, or the test would prove little.
    expect(nonEmpty).toBeGreaterThan(compared * 0.8);
  }, 240_000);

  it('labels, label values and series lookups match', async () => {
    const range = `start=${sec(START)}&end=${sec(START + 3_600_000)}`;
    for (const path of [
      `/api/v1/labels?${range}`,
      `/api/v1/label/__name__/values?${range}`,
      `/api/v1/label/job_id/values?${range}`,
      `/api/v1/label/rank/values?match[]=${encodeURIComponent('train_loss')}&${range}`,
      `/api/v1/series?match[]=${encodeURIComponent('gpu_throttled')}&match[]=${encodeURIComponent('{__name__=~"host_.*",node_id=~".*-0"}')}&${range}`,
    ]) {
      const p = (await (await fetch(`${promUrl}${path}`)).json()) as { status: string; data: unknown[] };
      const t = (await app!.inject({ method: 'GET', url: path })).json() as {
        status: string;
        data: unknown[];
      };
      expect(t.status, path).toBe(p.status);
      const norm = (xs: unknown[]) =>
        xs.map((x) => (typeof x === 'string' ? x : keyOf(x as Record<string, string>))).sort();
      expect(norm(t.data), path).toEqual(norm(p.data));
      expect(t.data.length, path).toBeGreaterThan(0);
    }
  });
});

describe.skipIf(available || inCI)('Prometheus differential test', () => {
  it.skip(`needs Prometheus: ${INSTALL}`, () => {});
});
