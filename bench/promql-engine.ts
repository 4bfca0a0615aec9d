/**
 * PromQL engine latency: dashboard-style queries over the fleet simulator's data, run by trainwatch's engine
 * (in process, and through its HTTP API) and — when Debian's `prometheus` is installed — by Prometheus over
 * the same samples, in one run on this machine. Prints a table and writes the figures and the ratios
 * trainwatch ÷ Prometheus (HTTP round trip, median of the runs) to bench/results/promql-engine-<date>.json.
 *
 *   npx tsx bench/promql-engine.ts                 # ≈1,000 series × 6 h at 15 s (≈1.4 M samples)
 *   npx tsx bench/promql-engine.ts --jobs 12 --hours 12 --runs 7
 *
 * Timings are wall-clock on a shared machine: compare the ratios of one run, not absolute numbers.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import type { Authenticator, Principal, Scope } from '../src/auth/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { registerPromApi } from '../src/query/prom-api.js';
import { PromqlEngine, tenantQueryable } from '../src/query/promql/index.js';
import { memoryTsdb } from '../src/query/promql/test-script.js';
import { defaultFleetOptions, FleetSimulator } from '../src/simulator/index.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '8' },
    hours: { type: 'string', default: '6' },
    runs: { type: 'string', default: '5' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
  },
});
const JOBS = Number(args.jobs);
const HOURS = Number(args.hours);
const RUNS = Number(args.runs);
const INTERVAL = 15_000;
const END = Math.floor(Date.UTC(2024, 5, 1) / 60_000) * 60_000;
const START = END - HOURS * 3_600_000;
const STEP = Math.max(60_000, Math.round((END - START) / 360 / 60_000) * 60_000); // ~360 points, as a panel

const QUERIES: { name: string; query: string; range: boolean }[] = [
  { name: 'steps/s per job', query: 'sum by (job_id) (rate(train_step[5m]))', range: true },
  { name: 'GPU util per node', query: 'avg by (job_id, node_id) (gpu_utilization_ratio)', range: true },
  { name: 'max temp 10m', query: 'max_over_time(gpu_temperature_celsius[10m])', range: true },
  { name: 'top 5 jobs by power', query: 'topk(5, avg by (job_id) (gpu_power_watts))', range: true },
  {
    name: 'p90 step time 15m',
    query: 'quantile_over_time(0.9, train_step_duration_seconds[15m])',
    range: true,
  },
  {
    name: 'net rx peak (subquery)',
    query: 'max_over_time(rate(host_network_receive_bytes_total[1m])[30m:1m])',
    range: true,
  },
  { name: 'memory fraction', query: 'gpu_memory_used_bytes / gpu_memory_total_bytes', range: false },
  { name: 'util avg 1h', query: 'avg_over_time(gpu_utilization_ratio[1h])', range: false },
  {
    name: 'idle GPUs',
    query: 'count by (job_id) (avg_over_time(gpu_utilization_ratio[10m]) < 0.1)',
    range: false,
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeIt(run: () => Promise<unknown> | unknown): Promise<number> {
  await run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return median(times);
}

interface Series {
  labels: Record<string, string>;
  ts: number[];
  vs: number[];
}

function fleet(): Series[] {
  const byKey = new Map<string, Series>();
  const sim = new FleetSimulator({
    ...defaultFleetOptions,
    seed: 5,
    jobs: JOBS,
    nodesPerJob: 4,
    gpusPerNode: 4,
    intervalMs: INTERVAL,
    minSteps: 1_000_000,
    maxSteps: 2_000_000,
    startMs: START - 40 * INTERVAL,
  });
  for (let i = 0; i < 40; i++) sim.tick();
  for (let t = START; t <= END; t += INTERVAL) {
    sim.tick();
    for (const node of sim.activeNodes()) {
      for (let s = 0; s < node.series.length; s++) {
        if (!node.present[s]) continue;
        const labels = node.series[s]!;
        const k = JSON.stringify(labels);
        let ser = byKey.get(k);
        if (!ser) {
          ser = { labels: { ...labels }, ts: [], vs: [] };
          byKey.set(k, ser);
        }
        ser.ts.push(sim.nowMs);
        ser.vs.push(node.values[s]!);
      }
    }
  }
  return [...byKey.values()];
}

function openMetrics(series: Series[]): string {
  const byName = new Map<string, Series[]>();
  for (const s of series) byName.set(s.labels.__name__!, [...(byName.get(s.labels.__name__!) ?? []), s]);
  const out: string[] = [];
  for (const [name, list] of byName) {
    for (const s of list) {
      const l = Object.entries(s.labels)
        .filter(([k]) => k !== '__name__')
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      for (let i = 0; i < s.ts.length; i++) {
        const v = s.vs[i]!;
        const f = Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);
        out.push(`${name}{${l}} ${f} ${(s.ts[i]! / 1000).toFixed(3)}`);
      }
    }
  }
  out.push('# EOF');
  return `${out.join('\n')}\n`;
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  const series = fleet();
  const samples = series.reduce((n, s) => n + s.ts.length, 0);
  process.stdout.write(
    `data: ${series.length} series, ${samples} samples, ${HOURS} h at 15 s; panel step ${STEP / 1000} s\n`,
  );

  const storage = await memoryTsdb();
  const b = new SeriesBatchBuilder(samples);
  for (const s of series) {
    b.addSeries(s.labels);
    for (let i = 0; i < s.ts.length; i++) b.add(s.ts[i]!, s.vs[i]!);
  }
  storage.appender.append('bench', b.build());
  const engine = new PromqlEngine();
  const source = tenantQueryable(storage, 'bench');
  const auth: Authenticator = {
    authenticate: (_c, scope: Scope): Principal => ({
      tenant: 'bench',
      scopes: new Set([scope]),
      via: 'bench',
    }),
  };
  const app = Fastify();
  registerPromApi(app, { auth, storage });
  const twPort = await freePort();
  await app.listen({ host: '127.0.0.1', port: twPort });

  let prom: ChildProcess | undefined;
  let promUrl: string | undefined;
  const work = mkdtempSync(path.join(os.tmpdir(), 'tw-promql-bench-'));
  if (existsSync('/usr/bin/prometheus') && existsSync('/usr/bin/promtool')) {
    writeFileSync(path.join(work, 'data.om'), openMetrics(series));
    mkdirSync(path.join(work, 'tsdb'));
    execFileSync(
      '/usr/bin/promtool',
      ['tsdb', 'create-blocks-from', 'openmetrics', path.join(work, 'data.om'), path.join(work, 'tsdb')],
      {
        stdio: 'ignore',
      },
    );
    writeFileSync(path.join(work, 'prometheus.yml'), 'global: {}\n');
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      '/usr/bin/prometheus',
      [
        `--config.file=${path.join(work, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(work, 'tsdb')}`,
        '--storage.tsdb.retention.time=100y',
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const ok = await fetch(`${promUrl}/-/ready`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } else {
    process.stdout.write(
      'prometheus not installed (apt-get install -y prometheus): trainwatch figures only\n',
    );
  }

  const rows: Record<string, unknown>[] = [];
  const urlFor = (q: (typeof QUERIES)[number]) =>
    q.range
      ? `/api/v1/query_range?query=${encodeURIComponent(q.query)}&start=${START / 1000}&end=${END / 1000}&step=${STEP / 1000}`
      : `/api/v1/query?query=${encodeURIComponent(q.query)}&time=${END / 1000}`;
  for (const q of QUERIES) {
    const inProcess = await timeIt(() =>
      q.range
        ? engine.rangeQuery(source, q.query, START, END, STEP)
        : engine.instantQuery(source, q.query, END),
    );
    const stats = (
      await (q.range
        ? engine.rangeQuery(source, q.query, START, END, STEP)
        : engine.instantQuery(source, q.query, END))
    ).stats;
    const twHttp = await timeIt(() => fetch(`http://127.0.0.1:${twPort}${urlFor(q)}`).then((r) => r.text()));
    const promHttp = promUrl
      ? await timeIt(() => fetch(`${promUrl}${urlFor(q)}`).then((r) => r.text()))
      : undefined;
    rows.push({
      name: q.name,
      query: q.query,
      kind: q.range ? 'range' : 'instant',
      samplesRead: stats.samplesRead,
      trainwatchEngineMs: +inProcess.toFixed(2),
      trainwatchHttpMs: +twHttp.toFixed(2),
      prometheusHttpMs: promHttp === undefined ? null : +promHttp.toFixed(2),
      ratio: promHttp === undefined ? null : +(twHttp / promHttp).toFixed(2),
      samplesPerSecond: Math.round(stats.samplesRead / (inProcess / 1000)),
    });
    const r = rows[rows.length - 1]!;
    process.stdout.write(
      `${q.name.padEnd(26)} engine ${String(r.trainwatchEngineMs).padStart(8)} ms  http ${String(r.trainwatchHttpMs).padStart(8)} ms  prometheus ${String(r.prometheusHttpMs ?? '-').padStart(8)} ms  ratio ${r.ratio ?? '-'}\n`,
    );
  }
  const ratios = rows.map((r) => r.ratio).filter((x): x is number => typeof x === 'number');
  const geomean = ratios.length
    ? Math.exp(ratios.reduce((s, r) => s + Math.log(r), 0) / ratios.length)
    : null;
  process.stdout.write(
    `geometric mean of ratios (trainwatch ÷ prometheus, HTTP): ${geomean?.toFixed(2) ?? '-'}\n`,
  );

  mkdirSync(args.out!, { recursive: true });
  const file = path.join(args.out!, `promql-engine-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        command: `npx tsx bench/promql-engine.ts --jobs ${JOBS} --hours ${HOURS} --runs ${RUNS}`,
        date: new Date().toISOString(),
        machine: {
          cores: os.cpus().length,
          cpu: os.cpus()[0]?.model,
          node: process.version,
          load: os.loadavg()[0],
        },
        data: { series: series.length, samples, hours: HOURS, intervalMs: INTERVAL, stepMs: STEP },
        geomeanRatio: geomean,
        rows,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`wrote ${file}\n`);

  if (prom?.pid) {
    process.kill(prom.pid, 'SIGTERM');
    await new Promise((r) => prom!.once('exit', r));
  }
  await app.close();
  await storage.close();
  rmSync(work, { recursive: true, force: true });
}

await main();
