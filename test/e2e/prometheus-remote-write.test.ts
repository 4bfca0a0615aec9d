/**
 * A real Prometheus (Debian's `prometheus`, 2.42) scrapes a real `prometheus-node-exporter` and itself every
 * second and remote-writes to trainwatch with an ingest token. After a short run, the same series with the
 * same samples (timestamps and values) are read from trainwatch's API as from Prometheus's own, and the
 * metric metadata Prometheus sends (remote-write 1.0 `metadata`) answers `/api/v1/metadata` as Prometheus's.
 *
 * Needs `apt-get install -y prometheus prometheus-node-exporter` (in .ci/run's APT_PACKAGES). Under CI=true
 * the binaries must be there; elsewhere the test is skipped with that message when they are missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { freePort, tempDir, waitFor } from '../support/helpers.js';

const INSTALL = 'apt-get update && apt-get install -y prometheus prometheus-node-exporter';
const haveBinaries = ['prometheus', 'prometheus-node-exporter'].every(
  (b) => spawnSync('sh', ['-c', `command -v ${b}`]).status === 0,
);
if (!haveBinaries && process.env.CI === 'true') {
  throw new Error(`prometheus and prometheus-node-exporter are required under CI: ${INSTALL}`);
}
if (!haveBinaries) console.warn(`skipping the Prometheus remote-write test: run \`${INSTALL}\``);

const METRICS = [
  'up',
  'node_load1',
  'node_memory_MemTotal_bytes',
  'node_cpu_seconds_total',
  'prometheus_tsdb_head_series',
  'scrape_samples_scraped',
];

const children: ChildProcess[] = [];
let tw: Trainwatch;
let readToken: string;
let promUrl: string;
let output = '';

function startChild(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  children.push(child);
  return child;
}

beforeAll(async () => {
  if (!haveBinaries) return;
  const dir = tempDir('tw-prom-');
  const meta = new MetaStore(path.join(dir, 'meta.db'));
  const tokens = new TokenStore(meta);
  const ingestToken = tokens.create({ tenant: 'platform', scope: 'ingest', name: 'prometheus' }).token;
  readToken = tokens.create({ tenant: 'platform', scope: 'read' }).token;
  meta.close();
  tw = await startTrainwatch(
    loadConfig({
      flags: { listen: '127.0.0.1:0', data_dir: dir, processor: { checkpoint_interval_ms: 200 } },
    }),
    pino({ level: 'silent' }),
  );

  const nodePort = await freePort();
  startChild('prometheus-node-exporter', [
    `--web.listen-address=127.0.0.1:${nodePort}`,
    '--collector.disable-defaults',
    '--collector.cpu',
    '--collector.meminfo',
    '--collector.loadavg',
  ]);
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{ targets: ['127.0.0.1:${nodePort}'] }]
  - job_name: prometheus
    static_configs: [{ targets: ['127.0.0.1:${promPort}'] }]
remote_write:
  - url: ${tw.url}/api/v1/write
    authorization: { type: Bearer, credentials: ${ingestToken} }
    queue_config: { batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s }
    metadata_config: { send: true, send_interval: 1s }
`,
  );
  startChild('prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${path.join(dir, 'prom-data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn',
  ]);
}, 60_000);

afterAll(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  }
  await tw?.stop();
});

type PromMatrix = { metric: Record<string, string>; values: [number, string][] }[];

function seriesKey(labels: Record<string, string>): string {
  const { tenant: _t, ...rest } = labels;
  return JSON.stringify(Object.fromEntries(Object.entries(rest).sort()));
}

function parseValue(v: string | number): number {
  if (typeof v === 'number') return v;
  if (v === '+Inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(v);
}

describe.skipIf(!haveBinaries)('Prometheus remote-write to trainwatch', () => {
  it('makes the same series and samples queryable from trainwatch as from Prometheus', async () => {
    // Let Prometheus scrape a few times and ship them.
    await waitFor(
      'samples of both scrape jobs in trainwatch',
      async () => {
        const res = await fetch(`${tw.url}/api/tw/v1/series?metric=up&start=${Date.now() - 60_000}`, {
          headers: { authorization: `Bearer ${readToken}` },
        });
        const body = (await res.json()) as { data?: { series: { v: unknown[] }[] } };
        const s = body.data?.series ?? [];
        return s.length === 2 && s.every((x) => x.v.length >= 4) ? true : undefined;
      },
      45_000,
      500,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nprocess output:\n${output}`);
    });

    // A window that remote-write has certainly delivered: it ends a few seconds before now.
    const end = Date.now() - 3000;
    const start = end - 20_000;
    const query = `{__name__=~"${METRICS.join('|')}"}[30s]`;
    const promRes = await fetch(
      `${promUrl}/api/v1/query?query=${encodeURIComponent(query)}&time=${end / 1000}`,
    );
    const prom = ((await promRes.json()) as { data: { result: PromMatrix } }).data.result;
    const expected = new Map<string, [number, number][]>();
    for (const s of prom) {
      const pts = s.values
        .map(([t, v]) => [Math.round(t * 1000), parseValue(v)] as [number, number])
        .filter(([t]) => t >= start && t <= end);
      if (pts.length) expected.set(seriesKey(s.metric), pts);
    }
    expect(expected.size).toBeGreaterThanOrEqual(METRICS.length);

    const actual = new Map<string, [number, number][]>();
    for (const metric of METRICS) {
      const res = await fetch(`${tw.url}/api/tw/v1/series?metric=${metric}&start=${start}&end=${end}`, {
        headers: { authorization: `Bearer ${readToken}` },
      });
      const body = (await res.json()) as {
        data: { series: { labels: Record<string, string>; t: number[]; v: (number | string)[] }[] };
      };
      for (const s of body.data.series) {
        expect(s.labels.tenant).toBe('platform');
        actual.set(
          seriesKey(s.labels),
          s.t.map((t, i) => [t, parseValue(s.v[i]!)] as [number, number]),
        );
      }
    }
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [key, pts] of expected) expect(actual.get(key), key).toEqual(pts);
  }, 90_000);

  it("answers /api/v1/metadata with the type, help and unit Prometheus sent, as Prometheus's own API does", async () => {
    const names = ['node_load1', 'node_cpu_seconds_total', 'prometheus_tsdb_head_series'];
    const ofPrometheus = async (name: string) =>
      ((await (await fetch(`${promUrl}/api/v1/metadata?metric=${name}`)).json()) as { data: object }).data;
    const ofTrainwatch = async (name: string) =>
      (
        (await (
          await fetch(`${tw.url}/api/v1/metadata?metric=${name}`, {
            headers: { authorization: `Bearer ${readToken}` },
          })
        ).json()) as { data: object }
      ).data;
    for (const name of names) {
      const expected = await waitFor(`Prometheus's metadata of ${name}`, async () => {
        const d = (await ofPrometheus(name)) as Record<string, unknown[]>;
        return d[name]?.length ? d : undefined;
      });
      const got = await waitFor(
        `trainwatch's metadata of ${name} as Prometheus's`,
        async () => {
          const d = await ofTrainwatch(name);
          return JSON.stringify(d) === JSON.stringify(expected) ? d : undefined;
        },
        30_000,
        500,
      ).catch(async () => ofTrainwatch(name));
      expect(got, name).toEqual(expected);
    }
  }, 90_000);
});
