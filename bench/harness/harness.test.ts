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
import { compareResults } from '../scenarios/query.js';
import { buildDataset, type DatasetOptions, DRAIN_MARKER, fleetForSeries, seriesPerJob } from './dataset.js';
import { REPO_ROOT } from './generator.js';
import { startNullSink } from './null-sink.js';
import { procSample } from './proc.js';
import { snappy } from './remote-write.js';
import { replay } from './replay.js';
import { formatNumber, Results } from './results.js';
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
