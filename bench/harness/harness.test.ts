/**
 * The benchmark harness's own tests (the benchmarks themselves are not part of `npm test`): the load
 * generator's remote-write payloads decode with an independent decoder (snappyjs + protobufjs) and its
 * native frames with trainwatch's decoder to exactly the simulator's samples; the replayer keeps each job's
 * requests in order, retries 503 and counts refusals; the null-sink ceiling measurement works; the query
 * comparison and the results table say what they should.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/protocol/native.js';
import { defaultFleetOptions, FleetSimulator } from '../../src/simulator/fleet.js';
import { CORES_SCENARIO, coresFigures, recordCores, workerCounts } from '../scenarios/cores.js';
import type { IngestOutcome } from '../scenarios/ingest.js';
import {
  finestSubqueryResolutionMs,
  type HeavyQuery,
  heavyQueries,
  ISOLATION_FIGURES,
  ISOLATION_SCENARIO,
  type IsolationOutcome,
  isolationRate,
  MAX_POINTS_PER_SERIES,
  QueryLoad,
  recordIsolation,
  subqueryWindowMs,
} from '../scenarios/isolation.js';
import { compareResults } from '../scenarios/query.js';
import { buildDataset, type DatasetOptions, DRAIN_MARKER, fleetForSeries, seriesPerJob } from './dataset.js';
import { REPO_ROOT } from './generator.js';
import { startNullSink } from './null-sink.js';
import { procSample } from './proc.js';
import { PromApi } from './prom-api.js';
import { snappy } from './remote-write.js';
import { type ReplayResult, replay } from './replay.js';
import { formatNumber, Results } from './results.js';
import { percentile, summarizeLatencies } from './stats.js';
import { fitTrainwatchConfig } from './systems.js';

// The remote-write 1.0 messages as upstream defines them (prompb/remote.proto, prompb/types.proto; the copies
// in /work/shared/protos/prometheus), reduced to the fields the generator writes.
const schema = protobuf.parse(`
  syntax = "proto3";
  package prometheus;
  message WriteRequest { repeated TimeSeries timeseries = 1; }
  message TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }
  message Label { string name = 1; string value = 2; }
  message Sample { double value = 1; int64 timestamp = 2; }
`).root;
const WriteRequest = schema.lookupType('prometheus.WriteRequest');

interface DecodedSeries {
  labels: Record<string, string>;
  samples: [number, number][];
}

function decodeRemoteWrite(body: Uint8Array): { series: DecodedSeries[]; labelOrderSorted: boolean } {
  const raw = snappy.uncompress(body);
  const msg = WriteRequest.toObject(WriteRequest.decode(raw), { longs: Number, defaults: true }) as {
    timeseries: {
      labels: { name: string; value: string }[];
      samples: { value: number; timestamp: number }[];
    }[];
  };
  let labelOrderSorted = true;
  const series = msg.timeseries.map((ts) => {
    const names = ts.labels.map((l) => l.name);
    if (names.join('\u0000') !== [...names].sort().join('\u0000')) labelOrderSorted = false;
    return {
      labels: Object.fromEntries(ts.labels.map((l) => [l.name, l.value])),
      samples: ts.samples.map((s) => [s.timestamp, s.value] as [number, number]),
    };
  });
  return { series, labelOrderSorted };
}

function decodeNative(body: Uint8Array): DecodedSeries[] {
  const { batch } = decodeFrame(body);
  return batch.series.map((labels, i) => {
    const samples: [number, number][] = [];
    for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
      samples.push([batch.timestamps[j]!, batch.values[j]!]);
    return { labels: { ...labels }, samples };
  });
}

const key = (labels: Record<string, string>) =>
  JSON.stringify(
    Object.keys(labels)
      .sort()
      .map((k) => [k, labels[k]]),
  );

/** Every (series, timestamp) → value in a list of decoded series. */
function flatten(all: DecodedSeries[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of all) for (const [t, v] of s.samples) out.set(`${key(s.labels)}@${t}`, v);
  return out;
}

const options: DatasetOptions = {
  seed: 7,
  jobs: 3,
  nodesPerJob: 2,
  gpusPerNode: 2,
  ticks: 5,
  ticksPerRequest: 2,
  intervalMs: 1000,
  endMs: 1_800_000_000_000,
  tenant: 'bench',
  warmupTicks: 40,
};

describe('fleet data set', () => {
  const ds = buildDataset(options);

  it('sizes the fleet for a target number of series', () => {
    const f = fleetForSeries(200_000);
    expect(Math.abs(f.jobs * seriesPerJob(f.nodesPerJob, f.gpusPerNode) - 200_000)).toBeLessThan(
      seriesPerJob(f.nodesPerJob, f.gpusPerNode),
    );
  });

  it('holds one request per job and chunk, chunk by chunk, with the summary adding up', () => {
    // 5 ticks at 2 per request: chunks of 2, 2 and 1 tick.
    expect(ds.summary.chunks).toBe(3);
    expect(ds.requests.map((r) => r.chunk)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(ds.requests.map((r) => r.job)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(ds.summary.samples).toBe(ds.requests.reduce((a, r) => a + r.samples, 0));
    expect(ds.summary.lastChunkJobs).toBe(3);
    expect(ds.summary.lastMs).toBe(options.endMs);
    expect(ds.summary.firstMs).toBe(options.endMs - 4000);
  });

  it('encodes remote-write that an independent decoder reads back to the same samples as the native frames', () => {
    let total = 0;
    for (const r of ds.requests) {
      const rw = decodeRemoteWrite(r.remoteWrite);
      const nat = decodeNative(r.native);
      expect(rw.labelOrderSorted).toBe(true);
      expect(rw.series.length).toBe(r.series);
      const a = flatten(rw.series);
      const b = flatten(nat);
      expect(a.size).toBe(r.samples);
      expect([...a.entries()]).toEqual([...b.entries()]);
      for (const s of rw.series) expect(s.labels.tenant).toBe('bench');
      const marker = rw.series.find((s) => s.labels.__name__ === DRAIN_MARKER)!;
      // The marker sits at the chunk's last tick: ticks 2, 4 and 5.
      const lastTick = Math.min(r.chunk * options.ticksPerRequest, options.ticks);
      expect(marker.samples).toEqual([[ds.summary.firstMs + (lastTick - 1) * options.intervalMs, r.chunk]]);
      total += a.size;
    }
    expect(total).toBe(ds.summary.samples);
  });

  it('carries exactly the simulator’s samples', () => {
    // The same simulator, run independently: every present value of every recorded tick, plus one drain
    // marker per request.
    const sim = new FleetSimulator({
      ...defaultFleetOptions,
      seed: options.seed,
      jobs: options.jobs,
      nodesPerJob: options.nodesPerJob,
      gpusPerNode: options.gpusPerNode,
      intervalMs: options.intervalMs,
      incidents: false,
      cluster: 'bench',
      startMs: options.endMs - (40 + options.ticks) * options.intervalMs,
    });
    for (let i = 0; i < 40; i++) sim.tick();
    const want = new Map<string, number>();
    for (let t = 0; t < options.ticks; t++) {
      sim.tick();
      for (const job of sim.jobs) {
        if (job.phase !== 'running') continue;
        for (const node of job.nodes) {
          node.series.forEach((labels, s) => {
            if (node.present[s])
              want.set(`${key({ ...labels, tenant: 'bench' })}@${sim.nowMs}`, node.values[s]!);
          });
        }
      }
    }
    const got = flatten(ds.requests.flatMap((r) => decodeRemoteWrite(r.remoteWrite).series));
    for (const k of [...got.keys()]) if (k.includes(DRAIN_MARKER)) got.delete(k);
    expect(got.size).toBe(want.size);
    for (const [k, v] of want) expect(got.get(k), k).toBe(v);
  });
});

describe('replay', () => {
  const ds = buildDataset(options);
  let sink: Awaited<ReturnType<typeof startNullSink>>;

  beforeAll(async () => {
    sink = await startNullSink();
  });
  afterAll(() => new Promise<void>((r) => sink.server.close(() => r())));

  it('measures the ceiling against the null sink in both formats', async () => {
    for (const format of ['remote-write', 'native'] as const) {
      const before = { ...sink.stats };
      const r = await replay(ds.requests, {
        baseUrl: `http://127.0.0.1:${sink.port}`,
        format,
        concurrency: 2,
        maxSeconds: 20,
      });
      expect(r.samplesAccepted).toBe(ds.summary.samples);
      expect(r.requestsAccepted).toBe(ds.requests.length);
      expect(r.samplesPerSec).toBeGreaterThan(0);
      expect(sink.stats.requests - before.requests).toBe(ds.requests.length);
      const bytes = ds.requests.reduce(
        (a, q) => a + (format === 'native' ? q.native : q.remoteWrite).length,
        0,
      );
      expect(sink.stats.bytes - before.bytes).toBe(bytes);
      expect(r.bytesSent).toBe(bytes);
    }
  });

  it('keeps each job’s requests in order, retries 503 and counts refusals', async () => {
    const seen: { job: number; chunk: number }[] = [];
    let calls = 0;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        calls++;
        const { series } = decodeRemoteWrite(new Uint8Array(Buffer.concat(chunks)));
        const marker = series.find((s) => s.labels.__name__ === DRAIN_MARKER)!;
        const job = ds.summary.jobIds.indexOf(marker.labels.job_id!);
        const chunk = marker.samples[0]![1];
        // Every third call is overloaded once; job 2's last chunk is refused.
        if (calls % 3 === 0) {
          res.writeHead(503, { 'retry-after': '0' });
          res.end('busy');
          return;
        }
        if (job === 2 && chunk === 3) {
          res.writeHead(400);
          res.end('bad sample');
          return;
        }
        // Answer slowly and in varying order, so that order is kept by the replayer, not by luck.
        setTimeout(
          () => {
            seen.push({ job, chunk });
            res.writeHead(204);
            res.end();
          },
          (job * 7 + chunk * 3) % 10,
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const r = await replay(ds.requests, {
        baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        format: 'remote-write',
        concurrency: 3,
        maxSeconds: 20,
      });
      const refused = ds.requests.find((q) => q.job === 2 && q.chunk === 3)!;
      expect(r.requestsRefused).toBe(1);
      expect(r.samplesRefused).toBe(refused.samples);
      expect(r.samplesAccepted).toBe(ds.summary.samples - refused.samples);
      expect(r.retries).toBeGreaterThan(0);
      expect(r.statusCounts['503']).toBe(r.retries);
      expect(r.firstError).toContain('HTTP 400: bad sample');
      for (let job = 0; job < 3; job++) {
        const chunks = seen.filter((s) => s.job === job).map((s) => s.chunk);
        expect(chunks).toEqual(job === 2 ? [1, 2] : [1, 2, 3]);
      }
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('replays only the chunks asked for and measures each accepted request’s acknowledgement latency', async () => {
    const before = sink.stats.requests;
    const r = await replay(ds.requests, {
      baseUrl: `http://127.0.0.1:${sink.port}`,
      format: 'remote-write',
      concurrency: 2,
      maxSeconds: 20,
      chunks: { first: 2, last: 3 },
    });
    const wanted = ds.requests.filter((q) => q.chunk >= 2);
    expect(r.requestsTotal).toBe(wanted.length);
    expect(r.samplesTotal).toBe(wanted.reduce((a, q) => a + q.samples, 0));
    expect(r.samplesAccepted).toBe(r.samplesTotal);
    expect(sink.stats.requests - before).toBe(wanted.length);
    const l = r.ackLatencyMs;
    expect(l.count).toBe(wanted.length);
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
  });
});

describe('measurements and results', () => {
  it('reads CPU time and memory of a process from /proc', () => {
    const s = procSample(process.pid)!;
    expect(s.cpuSeconds).toBeGreaterThan(0);
    expect(s.rssBytes).toBeGreaterThan(1 << 20);
    expect(s.peakRssBytes).toBeGreaterThanOrEqual(s.rssBytes);
    expect(procSample(2 ** 22 + 12345)).toBeUndefined();
  });

  it('compares query results series by series and value by value', () => {
    const a = [
      {
        metric: { node_id: 'n1' },
        values: [[10, '0.5'] as [number, string], [11, 'NaN'] as [number, string]],
      },
    ];
    expect(compareResults(a, a)).toBeUndefined();
    // trainwatch keeps the tenant out of query results: not a difference.
    expect(compareResults([{ ...a[0]!, metric: { node_id: 'n1', tenant: 'bench' } }], a)).toBeUndefined();
    expect(
      compareResults(
        [
          {
            metric: { node_id: 'n1' },
            values: [
              [10, '0.5000000000001'],
              [11, 'NaN'],
            ],
          },
        ],
        a,
      ),
    ).toBeUndefined();
    expect(
      compareResults(
        [
          {
            metric: { node_id: 'n1' },
            values: [
              [10, '0.6'],
              [11, 'NaN'],
            ],
          },
        ],
        a,
      ),
    ).toMatch(/1 values differ/);
    expect(compareResults([{ metric: { node_id: 'n2' }, values: [[10, '0.5']] }], a)).toMatch(
      /1 of 1 series missing.*1 extra series/,
    );
  });

  it('writes ratios trainwatch ÷ reference in the direction the figure says', () => {
    const r = new Results('test', 'npm run bench -- --quick', process.cwd());
    r.set('ingest', 'accepted samples/s', 'samples/s', 'higher', 'trainwatch', 900_000);
    r.set('ingest', 'accepted samples/s', 'samples/s', 'higher', 'victoriametrics', 600_000);
    r.set(
      'ingest',
      'accepted samples/s',
      'samples/s',
      'higher',
      'prometheus',
      undefined,
      'not available (x)',
    );
    const f = r.figures[0]!;
    expect(r.ratio(f, 'victoriametrics')).toBeCloseTo(1.5);
    expect(r.ratio(f, 'prometheus')).toBeUndefined();
    const md = r.toMarkdown();
    expect(md).toContain(
      '| accepted samples/s | samples/s | higher | 900.0 K | 600.0 K | — [1] | 1.50× | — |',
    );
    expect(md).toContain('1. not available (x)');
    expect(formatNumber(1_234_567)).toBe('1.23 M');
  });

  // Needs the built server (npm test builds it first).
  const built = existsSync(`${REPO_ROOT}/dist/config/schema.js`);
  it.skipIf(!built && !process.env.CI)(
    'fits trainwatch’s configuration to what its build knows',
    async () => {
      const fitted = await fitTrainwatchConfig(
        { log: { level: 'warn', bench_unknown_key: 1 }, bench_unknown_section: { a: 1 } },
        [],
      );
      expect(fitted.config).toEqual({ log: { level: 'warn' } });
      expect(fitted.dropped.sort()).toEqual(['bench_unknown_section', 'log.bench_unknown_key']);
      // A refused value drops its section when the section is optional, and stops the run otherwise.
      const optional = await fitTrainwatchConfig({ log: { level: 'loud' } }, ['log']);
      expect(optional.config).toEqual({});
      expect(optional.dropped[0]).toMatch(/^log \(refused: log\.level/);
      await expect(fitTrainwatchConfig({ log: { level: 'loud' } })).rejects.toThrow(/log\.level/);
    },
  );
});

describe('latency statistics', () => {
  it('takes nearest-rank percentiles and summarizes latencies in any order', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(summarizeLatencies([3, 1, 2])).toEqual({ count: 3, p50: 2, p99: 3, max: 3 });
    const none = summarizeLatencies([]);
    expect(none.count).toBe(0);
    expect(none.max).toBeNaN();
  });
});

describe('isolation scenario', () => {
  const ds = buildDataset({ ...options, ticks: 40, ticksPerRequest: 1 });

  it('builds the query mix over the whole data set, the subquery as fine as the points limit allows', () => {
    const windowMs = subqueryWindowMs(ds.summary);
    expect(windowMs).toBe(60_000);
    const res = finestSubqueryResolutionMs(windowMs);
    expect(windowMs / res).toBeLessThanOrEqual(MAX_POINTS_PER_SERIES);
    expect(windowMs / (res - 1)).toBeGreaterThan(MAX_POINTS_PER_SERIES);
    const qs = heavyQueries(ds.summary, {
      subqueryResolutionMs: res,
      adversarialRange: '30d',
      clientTimeoutMs: 1000,
    });
    expect(qs.map((q) => q.id)).toEqual([
      'fleet-gpu-max',
      'fleet-rate-range',
      'regex-names',
      'fleet-subquery',
      'adversarial',
    ]);
    expect(qs[0]!.params.query).toBe(
      // Every GPU gauge and counter the simulated fleet sends, health counters and link throughput included.
      [
        'gpu_ecc_errors_total',
        'gpu_memory_total_bytes',
        'gpu_memory_used_bytes',
        'gpu_nvlink_receive_bytes_per_second',
        'gpu_nvlink_transmit_bytes_per_second',
        'gpu_pcie_receive_bytes_per_second',
        'gpu_pcie_transmit_bytes_per_second',
        'gpu_power_watts',
        'gpu_sm_clock_hertz',
        'gpu_temperature_celsius',
        'gpu_throttled',
        'gpu_utilization_ratio',
        'gpu_xid_errors_total',
      ]
        .map((n) => `max_over_time(${n}[1h])`)
        .join(' or '),
    );
    const at = String(ds.summary.lastMs / 1000);
    for (const q of qs) expect(q.params.time ?? q.params.end).toBe(at);
    const range = qs.find((q) => q.id === 'fleet-rate-range')!;
    expect(range.path).toBe('/api/v1/query_range');
    expect(range.params).toMatchObject({ start: String(ds.summary.firstMs / 1000), step: '1' });
    expect(qs.find((q) => q.id === 'fleet-subquery')!.params.query).toBe(
      `max_over_time(avg by (job_id) (gpu_utilization_ratio)[1m:${res}ms])`,
    );
    const adversarial = qs.filter((q) => q.adversarial);
    expect(adversarial).toHaveLength(1);
    expect(adversarial[0]!.params).toMatchObject({
      query: 'max_over_time(vector(1)[30d:1ms])',
      timeout: '5s',
    });
  });

  it('paces at the fleet’s real-time rate unless a rate is given', () => {
    const perTick = ds.summary.samples / 40;
    expect(isolationRate(ds.summary, 0).rate).toBeCloseTo(perTick);
    expect(isolationRate(ds.summary, 5000)).toEqual({ rate: 5000, how: 'set with --rate' });
  });

  const query = (id: string, adversarial = false): HeavyQuery => ({
    id,
    title: `q_${id}`,
    path: '/api/v1/query',
    params: { query: `q_${id}` },
    adversarial,
    clientTimeoutMs: 10_000,
  });

  it('tallies answers, refusals and the adversarial query, and stops sending it once a server ran it', () => {
    const heavy = query('heavy');
    const adv = query('adv', true);
    const load = new QueryLoad(new PromApi('http://127.0.0.1:1'), [heavy, adv]);
    load.record(heavy, '200', 30);
    load.record(heavy, '200', 10);
    load.record(heavy, '422', 5, 'too   many\nsamples');
    load.record(adv, '422', 2);
    load.record(adv, '503', 4);
    let s = load.summary();
    expect(s).toMatchObject({
      completed: 5,
      heavyAnswered: 2,
      heavyFailed: 1,
      adversarialSent: 2,
      adversarialRefused: 2,
      adversarialRetired: undefined,
    });
    expect(s.heavyLatency).toEqual({ count: 2, p50: 10, p99: 30, max: 30 });
    expect(s.adversarialRefusalLatency.max).toBe(4);
    expect(s.note).toBe(
      '`q_heavy`: 200 × 2, 422 × 1 (first error: too many samples); `q_adv`: 422 × 1, 503 × 1',
    );
    load.record(adv, '200', 86_000);
    s = load.summary();
    expect(s.adversarialRetired).toBe('not refused: answered HTTP 200 after 86.0 s; not sent again');
    expect(s.adversarialRefused).toBe(2);
    expect(s.adversarialSent).toBe(3);
    // A server that never answers it retires it as well.
    const silent = new QueryLoad(new PromApi('http://127.0.0.1:1'), [adv]);
    silent.record(adv, '422', 3, 'too many samples');
    silent.record(adv, 'timeout', 10_000, 'no answer within 10000 ms');
    expect(silent.summary().adversarialRetired).toBe(
      'not refused: no answer within 10000 ms; not sent again',
    );
  });

  it('runs the clients until stopped; a server that runs the adversarial query gets it once', async () => {
    const seen: string[] = [];
    const stop = new AbortController();
    const server = http.createServer((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams.get('query')!;
      seen.push(q);
      if (seen.length >= 40) stop.abort();
      res.writeHead(q === 'q_heavy2' ? 422 : 200, { 'content-type': 'application/json' });
      res.end('{"status":"success","data":{"resultType":"vector","result":[]}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const api = new PromApi(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const load = new QueryLoad(api, [query('heavy1'), query('heavy2'), query('adv', true)]);
      await load.run(4, stop.signal);
      expect(seen.length).toBeGreaterThanOrEqual(40);
      expect(seen.filter((q) => q === 'q_adv')).toHaveLength(1);
      expect(seen).toContain('q_heavy1');
      const s = load.summary();
      expect(s.adversarialRetired).toMatch(/answered HTTP 200/);
      // Queries in flight at the stop are cut off, not counted: the server may or may not have seen them.
      expect(s.completed).toBeLessThanOrEqual(seen.length);
      expect(seen.length).toBeLessThanOrEqual(s.completed + s.cutOff);
      const refused = seen.filter((q) => q === 'q_heavy2').length;
      expect(s.heavyFailed).toBeLessThanOrEqual(refused);
      expect(s.heavyFailed).toBeGreaterThanOrEqual(refused - s.cutOff);
      expect(s.heavyFailed).toBeGreaterThan(0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('writes the two phases side by side with the targets', () => {
    const phase = (samplesPerSec: number, p99: number): IsolationOutcome['without'] => ({
      replay: {
        samplesPerSec,
        samplesAccepted: 1000,
        samplesTotal: 1000,
        samplesRefused: 0,
        stoppedByTimeLimit: false,
        firstError: '',
        ackLatencyMs: { count: 100, p50: 2, p99, max: p99 * 2 },
      } as unknown as ReplayResult,
      serverCores: 0.5,
    });
    const load = new QueryLoad(new PromApi('http://127.0.0.1:1'), [query('adv', true)]);
    load.record(query('adv', true), '422', 12);
    const outcome: IsolationOutcome = {
      rate: 40_000,
      rateHow: 'the fleet in real time',
      seconds: 20,
      without: phase(40_000, 8),
      withQueries: phase(36_000, 80),
      queries: load.summary(),
      subqueryNote: 'subquery at 6 ms',
      drainNote: undefined,
    };
    const r = new Results('test', 'npm run bench -- --quick', process.cwd());
    recordIsolation(r, 'trainwatch', outcome);
    recordIsolation(r, 'victoriametrics', { ...outcome, withQueries: phase(40_000, 9) });
    expect(r.figures.map((f) => f.name)).toEqual(ISOLATION_FIGURES.map((f) => f[0]));
    const md = r.toMarkdown();
    expect(md).toContain(`## ${ISOLATION_SCENARIO}`);
    expect(md).toContain(
      '| accepted samples/s with ÷ without queries (target ≥ 0.90) | × | info | 0.90 | 1.00 | — |',
    );
    expect(md).toContain(
      '| ingest ack latency p99 — with 4 heavy query clients (target < 50 ms) | ms | lower | 80.0 | 9.00 | — | 8.89× | — |',
    );
    expect(md).toContain('| adversarial queries refused / sent | queries | info | 1.00 [');
    expect(md).toContain('paced at 40000 samples/s (the fleet in real time), 20 s per phase');
  });
});

describe('cores scenario', () => {
  it('runs 1, 2, powers of two and every core', () => {
    expect(workerCounts(1)).toEqual([1, 2]);
    expect(workerCounts(2)).toEqual([1, 2]);
    expect(workerCounts(6)).toEqual([1, 2, 4, 6]);
    expect(workerCounts(16)).toEqual([1, 2, 4, 8, 16]);
  });

  it('shows the curve, a build without processor.workers, and VictoriaMetrics beside each count', () => {
    const outcome = (samplesPerSec: number): IngestOutcome =>
      ({
        replay: { samplesPerSec, samplesAccepted: samplesPerSec * 10 },
        serverCpuSeconds: 10,
        wallSeconds: 10,
      }) as unknown as IngestOutcome;
    const r = new Results('test', 'npm run bench', process.cwd());
    recordCores(
      r,
      [
        { workers: 1, outcome: outcome(100_000), note: undefined },
        { workers: 2, outcome: outcome(180_000), note: undefined },
      ],
      { outcome: outcome(400_000), note: 'VictoriaMetrics: all cores' },
    );
    expect(r.figures.map((f) => f.name)).toEqual([...coresFigures(1), ...coresFigures(2)].map((f) => f[0]));
    let md = r.toMarkdown();
    expect(md).toContain(`## ${CORES_SCENARIO}`);
    expect(md).toContain(
      '| accepted samples/s — 2 processor workers | samples/s | higher | 180.0 K | 400.0 K [1] | — | 0.45× | — |',
    );
    expect(md).toContain(
      '| speed-up over 1 worker — 2 processor workers | × | info | 1.80 | — | — | — | — |',
    );

    const old = new Results('test', 'npm run bench', process.cwd());
    recordCores(
      old,
      [
        {
          workers: 1,
          outcome: outcome(100_000),
          note: 'this build’s configuration has no processor.workers',
        },
        { workers: 2, outcome: undefined, note: 'not measured: no processor.workers' },
      ],
      { unavailable: 'not available (x)' },
    );
    md = old.toMarkdown();
    expect(md).toContain(
      '| accepted samples/s — 1 processor worker | samples/s | higher | 100.0 K [1] | — [2] |',
    );
    expect(md).toContain('| accepted samples/s — 2 processor workers | samples/s | higher | — [3] | — [2] |');
    expect(md).toContain('1. this build’s configuration has no processor.workers');
  });
});
