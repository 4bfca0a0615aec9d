/**
 * RemoteStorage against a real VictoriaMetrics (Debian's `victoria-metrics` 1.79; skipped with the install
 * command when absent, required under CI=true): what is appended for two tenants comes back exactly, each
 * tenant sees only its own series, replays do not duplicate, failures of the TSDB are retried or dropped as
 * they should be. Error mapping of the read path is checked against scripted endpoints.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import { startRemoteWriteServer } from '../../../test/support/remote-write-server.js';
import {
  requireVictoriaMetrics,
  startVictoriaMetrics,
  type VictoriaMetrics,
} from '../../../test/support/victoria-metrics.js';
import { isStaleNaN, type SeriesBatch, SeriesBatchBuilder, STALE_NAN } from '../../model/batch.js';
import { TrainwatchError } from '../../model/errors.js';
import { LabelMatcher } from '../../model/labels.js';
import { SampleBuffer } from '../codec/chunk.js';
import type { SelectedSeries } from '../storage.js';
import { type RemoteFlavor, RemoteStorage } from './remote-storage.js';

const haveVm = requireVictoriaMetrics('RemoteStorage tests');

/** An hour ago, on a whole second: well inside retention, never in the future. */
const BASE = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
/** Non-integers VictoriaMetrics stores exactly (it keeps about 12 significant decimal digits: see docs). */
const VALUES = Float64Array.of(0.1, -2.5, 1234.5678, 1e-6, 42, 0.3, 7.25, -0.001);

const eq = (name: string, value: string) => new LabelMatcher('=', name, value);
const re = (name: string, value: string) => new LabelMatcher('=~', name, value);

function batchFor(tenant: string, offset: number): SeriesBatch {
  const b = new SeriesBatchBuilder();
  for (const node of ['n1', 'n2']) {
    b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: `job-${tenant}`, node_id: node, gpu: '0' });
    for (let i = 0; i < VALUES.length; i++)
      b.add(BASE + offset + i * 1000, VALUES[i]! + (node === 'n2' ? 1 : 0));
  }
  b.addSeries({ __name__: 'train_loss', job_id: `job-${tenant}` });
  for (let i = 0; i < VALUES.length; i++) b.add(BASE + offset + i * 1500 + 7, VALUES[VALUES.length - 1 - i]!);
  return b.build();
}

interface ReadSeries {
  labels: Record<string, string>;
  t: number[];
  v: number[];
}

function read(series: readonly SelectedSeries[]): ReadSeries[] {
  return series.map((s) => {
    const it = s.iterator();
    const t: number[] = [];
    const v: number[] = [];
    while (it.next()) {
      t.push(it.t);
      v.push(it.v);
    }
    return { labels: { ...s.labels }, t, v };
  });
}

/** What batchFor wrote for `tenant`, in the order a select answers (series sorted by labels). */
function expected(tenant: string, offset: number): ReadSeries[] {
  const out: ReadSeries[] = [];
  for (const node of ['n1', 'n2'])
    out.push({
      labels: { __name__: 'gpu_utilization_ratio', gpu: '0', job_id: `job-${tenant}`, node_id: node, tenant },
      t: Array.from(VALUES, (_, i) => BASE + offset + i * 1000),
      v: Array.from(VALUES, (x) => x + (node === 'n2' ? 1 : 0)),
    });
  out.push({
    labels: { __name__: 'train_loss', job_id: `job-${tenant}`, tenant },
    t: Array.from(VALUES, (_, i) => BASE + offset + i * 1500 + 7),
    v: Array.from(VALUES, (_, i) => VALUES[VALUES.length - 1 - i]!),
  });
  return out;
}

describe.skipIf(!haveVm).each<RemoteFlavor>(['victoriametrics', 'prometheus'])(
  'RemoteStorage on VictoriaMetrics (flavor %s)',
  (flavor) => {
    let vm: VictoriaMetrics;
    let storage: RemoteStorage;
    const lo = BASE - 60_000;
    const hi = BASE + 120_000;

    beforeAll(async () => {
      vm = await startVictoriaMetrics();
      storage = new RemoteStorage({
        writeUrl: vm.writeUrl,
        readUrl: vm.url,
        flavor,
        queue: { shards: 2, maxSamplesPerSend: 5, batchSendDeadlineMs: 50 },
      });
      await storage.appender.append('a', batchFor('a', 0));
      await storage.appender.append('b', batchFor('b', 500));
      await storage.checkpoint(new Map([[0, 10]]));
      await vm.forceFlush();
    });

    afterAll(async () => {
      await storage?.close();
      await vm?.stop();
    });

    it('returns exactly what was appended: labels with tenant, order, bit-exact values', async () => {
      expect(storage.queue.stats()).toMatchObject({ sent: 48, dropped: 0, pending: 0 });
      const a = await storage.querier('a', lo, hi).select([re('__name__', '.+')]);
      expect(a.warnings).toEqual([]);
      const got = read(a.series);
      expect(got).toEqual(expected('a', 0));
      for (let k = 0; k < got.length; k++) {
        const want = expected('a', 0)[k]!;
        for (let i = 0; i < want.v.length; i++) expect(Object.is(got[k]!.v[i], want.v[i])).toBe(true);
      }
      const b = await storage.querier('b', lo, hi).select([eq('__name__', 'train_loss')]);
      expect(read(b.series)).toEqual([expected('b', 500)[2]]);
    });

    it("never shows a tenant another tenant's series", async () => {
      const qa = storage.querier('a', lo, hi);
      const all = await qa.select([re('job_id', '.+')]);
      expect(all.series.map((s) => s.labels.tenant)).toEqual(['a', 'a', 'a']);
      expect((await qa.select([eq('tenant', 'b')])).series).toEqual([]);
      expect((await qa.select([re('tenant', 'b|c')])).series).toEqual([]);
      expect((await qa.select([eq('job_id', 'job-b')])).series).toEqual([]);
      // A tenant matcher that accepts the querier's own tenant is satisfied, not widened.
      const wide = await qa.select([re('tenant', '.*'), eq('__name__', 'train_loss')]);
      expect(wide.series.map((s) => s.labels.tenant)).toEqual(['a']);
      expect(await qa.labelValues('job_id')).toEqual(['job-a']);
      expect(await qa.labelValues('tenant')).toEqual(['a']);
      expect(await qa.labelValues('job_id', [eq('tenant', 'b')])).toEqual([]);
      // The admin querier (tenant null) sees both.
      const admin = await storage.querier(null, lo, hi).select([eq('__name__', 'train_loss')]);
      expect(admin.series.map((s) => s.labels.tenant)).toEqual(['a', 'b']);
    });

    it('label names and values within the tenant', async () => {
      const qa = storage.querier('a', lo, hi);
      expect(await qa.labelNames()).toEqual(['__name__', 'gpu', 'job_id', 'node_id', 'tenant']);
      expect(await qa.labelNames([eq('__name__', 'train_loss')])).toEqual(['__name__', 'job_id', 'tenant']);
      expect(await qa.labelValues('node_id')).toEqual(['n1', 'n2']);
      expect(await qa.labelValues('__name__')).toEqual(['gpu_utilization_ratio', 'train_loss']);
    });

    it('honours hint ranges, seek and readSamples', async () => {
      const qa = storage.querier('a', lo, hi);
      const set = await qa.select([eq('node_id', 'n1')], { minT: BASE + 2000, maxT: BASE + 4000 });
      expect(read(set.series)[0]!.t).toEqual([BASE + 2000, BASE + 3000, BASE + 4000]);
      const full = (await qa.select([eq('node_id', 'n1')])).series[0]!;
      const it = full.iterator();
      expect(it.seek(BASE + 2500)).toBe(true);
      expect([it.t, it.v]).toEqual([BASE + 3000, VALUES[3]]);
      expect(it.next()).toBe(true);
      expect(it.t).toBe(BASE + 4000);
      expect(it.seek(BASE + 1_000_000)).toBe(false);
      const buf = new SampleBuffer(2);
      expect(full.readSamples!(buf)).toBe(VALUES.length);
      expect(Array.from(buf.v.subarray(0, buf.n))).toEqual(Array.from(VALUES));
    });

    it('a replayed batch leaves no duplicate (dedup.minScrapeInterval=1ms)', async () => {
      await storage.appender.append('a', batchFor('a', 0));
      await storage.checkpoint(new Map());
      await vm.forceFlush();
      const a = await storage.querier('a', lo, hi).select([re('__name__', '.+')]);
      expect(read(a.series)).toEqual(expected('a', 0));
    });

    it('an abort signal cancels a select', async () => {
      const ac = new AbortController();
      ac.abort(new Error('client went away'));
      await expect(
        storage.querier('a', lo, hi).select([eq('job_id', 'job-a')], undefined, ac.signal),
      ).rejects.toThrow('client went away');
    });
  },
);

describe.skipIf(!haveVm)('RemoteStorage: staleness markers and failures against VictoriaMetrics', () => {
  let vm: VictoriaMetrics;
  beforeAll(async () => {
    vm = await startVictoriaMetrics();
  });
  afterAll(async () => {
    await vm?.stop();
  });

  it('a staleness marker reads back as the marker (victoriametrics flavor)', async () => {
    const storage = new RemoteStorage({ writeUrl: vm.writeUrl, readUrl: vm.url, flavor: 'victoriametrics' });
    try {
      const b = new SeriesBatchBuilder().addSeries({ __name__: 'stale_test' });
      b.add(BASE, 1)
        .add(BASE + 1000, STALE_NAN)
        .add(BASE + 2000, 3);
      await storage.appender.append('s', b.build());
      await storage.checkpoint(new Map());
      await vm.forceFlush();
      const [s] = (await storage.querier('s', BASE, BASE + 5000).select([eq('__name__', 'stale_test')]))
        .series;
      const it = s!.iterator();
      // A typed array: a plain array would canonicalise the marker's NaN payload.
      const vals = new Float64Array(3);
      for (let i = 0; it.next(); i++) vals[i] = it.v;
      expect(vals[0]).toBe(1);
      expect(isStaleNaN(vals[1]!)).toBe(true);
      expect(vals[2]).toBe(3);
      const buf = new SampleBuffer();
      s!.readSamples!(buf);
      expect(isStaleNaN(buf.v[1]!)).toBe(true);
    } finally {
      await storage.close();
    }
  });

  it('a TSDB answering 500 then recovering gets every sample exactly once', async () => {
    const proxy = await startRemoteWriteServer({
      forwardTo: vm.writeUrl,
      answer: (r) => (r.index < 3 ? { status: 500, body: 'storage is restarting' } : 'forward'),
    });
    const storage = new RemoteStorage({
      writeUrl: proxy.url,
      readUrl: vm.url,
      flavor: 'victoriametrics',
      queue: { shards: 1, maxSamplesPerSend: 10, minBackoffMs: 5, maxBackoffMs: 20 },
    });
    try {
      const b = new SeriesBatchBuilder().addSeries({ __name__: 'retry_test' });
      for (let i = 0; i < 30; i++) b.add(BASE + i * 10, i / 4);
      await storage.appender.append('r', b.build());
      await storage.checkpoint(new Map());
      expect(proxy.requests.slice(0, 3).map((r) => r.status)).toEqual([500, 500, 500]);
      expect(proxy.acceptedSamples()).toBe(30);
      const seen = new Set<number>();
      for (const r of proxy.requests.filter((x) => x.status === 204))
        for (const s of r.series) for (const x of s.samples) seen.add(x.t);
      expect(seen.size).toBe(30);
      await vm.forceFlush();
      const [s] = (await storage.querier('r', BASE, BASE + 1000).select([eq('__name__', 'retry_test')]))
        .series;
      expect(read([s!])[0]!.v).toEqual(Array.from({ length: 30 }, (_, i) => i / 4));
      expect(storage.queue.stats()).toMatchObject({ sent: 30, dropped: 0, retried: 30 });
    } finally {
      await storage.close();
      await proxy.close();
    }
  });

  it('a 400 from the TSDB drops the request, counted, without a retry storm', async () => {
    const proxy = await startRemoteWriteServer({
      forwardTo: vm.writeUrl,
      answer: (r) => (r.index === 0 ? { status: 400, body: 'too many labels' } : 'forward'),
    });
    const storage = new RemoteStorage({
      writeUrl: proxy.url,
      readUrl: vm.url,
      queue: { shards: 1, maxSamplesPerSend: 10 },
    });
    try {
      const b = new SeriesBatchBuilder().addSeries({ __name__: 'drop_test' });
      for (let i = 0; i < 10; i++) b.add(BASE + i, i);
      await storage.appender.append('d', b.build());
      await storage.checkpoint(new Map());
      await storage.appender.append(
        'd',
        new SeriesBatchBuilder().addSample({ __name__: 'drop_test' }, BASE + 50, 5).build(),
      );
      await storage.checkpoint(new Map());
      expect(proxy.requests.map((r) => r.status)).toEqual([400, 204]);
      expect(storage.queue.stats()).toMatchObject({ sent: 1, dropped: 10, retried: 0 });
    } finally {
      await storage.close();
      await proxy.close();
    }
  });

  it('checkpoint waits while the buffer is full and the TSDB is down, then completes', async () => {
    let down = true;
    const proxy = await startRemoteWriteServer({
      forwardTo: vm.writeUrl,
      answer: () => (down ? { status: 503, body: 'down' } : 'forward'),
    });
    const storage = new RemoteStorage({
      writeUrl: proxy.url,
      readUrl: vm.url,
      flavor: 'victoriametrics',
      queue: { shards: 1, maxSamplesPerSend: 10, capacity: 10, minBackoffMs: 5, maxBackoffMs: 20 },
    });
    try {
      const b = new SeriesBatchBuilder().addSeries({ __name__: 'bp_test' });
      for (let i = 0; i < 35; i++) b.add(BASE + i, i);
      let appended = false;
      const appending = storage.appender.append('p', b.build()).then(() => {
        appended = true;
      });
      // The TSDB has refused a request (retried with backoff) while the queue holds its capacity.
      await waitFor('a refused request and a full queue', () =>
        proxy.requests.length >= 1 && storage.queue.pendingSamples() === 10 ? true : undefined,
      );
      await new Promise(setImmediate);
      expect(appended).toBe(false);
      expect(storage.queue.pendingSamples()).toBe(10);
      down = false;
      await appending;
      await storage.checkpoint(new Map());
      await vm.forceFlush();
      const [s] = (await storage.querier('p', BASE, BASE + 100).select([eq('__name__', 'bp_test')])).series;
      expect(read([s!])[0]!.t).toEqual(Array.from({ length: 35 }, (_, i) => BASE + i));
    } finally {
      await storage.close();
      await proxy.close();
    }
  });
});

describe('RemoteStorage read errors', () => {
  /** A read endpoint answering `status`/`body`, or never answering when status is 0. */
  async function endpoint(status: number, body: string) {
    const pending: http.ServerResponse[] = [];
    const srv = http.createServer((req, res) => {
      req.resume();
      if (status === 0) pending.push(res);
      else res.writeHead(status, { 'Content-Type': 'application/json' }).end(body);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    return {
      url,
      /** Requests held unanswered so far (status 0). */
      held: () => pending.length,
      close: () =>
        new Promise<void>((r) => {
          srv.closeAllConnections();
          srv.close(() => r());
        }),
    };
  }

  async function storageFor(readUrl: string, flavor: RemoteFlavor = 'prometheus') {
    return new RemoteStorage({
      writeUrl: 'http://127.0.0.1:1/api/v1/write',
      readUrl,
      flavor,
      queryTimeoutMs: 2000,
    });
  }

  it('4xx rejects with badRequest naming the TSDB message; 5xx and network errors with unavailable', async () => {
    const bad = await endpoint(
      422,
      JSON.stringify({ status: 'error', errorType: '422', error: 'unknown func foo' }),
    );
    const down = await endpoint(503, 'overloaded');
    const s1 = await storageFor(bad.url);
    const s2 = await storageFor(down.url, 'victoriametrics');
    const s3 = await storageFor('http://127.0.0.1:1');
    try {
      const e1 = await s1
        .querier('a', 0, 1000)
        .select([eq('x', '1')])
        .catch((e) => e);
      expect(e1).toBeInstanceOf(TrainwatchError);
      expect(e1.kind.code).toBe('bad_request');
      expect(e1.message).toContain('unknown func foo');
      const e2 = await s2
        .querier('a', 0, 1000)
        .labelNames()
        .catch((e) => e);
      expect(e2.kind.code).toBe('unavailable');
      expect(e2.message).toContain('HTTP 503');
      const e3 = await s3
        .querier('a', 0, 1000)
        .select([eq('x', '1')])
        .catch((e) => e);
      expect(e3.kind.code).toBe('unavailable');
      expect(e3.message).toContain('unreachable');
    } finally {
      for (const s of [s1, s2, s3]) await s.close();
      await bad.close();
      await down.close();
    }
  });

  it('an abort signal cancels a select in flight', async () => {
    const hang = await endpoint(0, '');
    const s = await storageFor(hang.url);
    try {
      const ac = new AbortController();
      const started = Date.now();
      const selecting = s.querier('a', 0, 1000).select([eq('x', '1')], undefined, ac.signal);
      // Abort once the read is in flight at the TSDB, which holds it unanswered.
      await waitFor('the read at the TSDB', () => (hang.held() > 0 ? true : undefined));
      ac.abort(new Error('query deadline'));
      await expect(selecting).rejects.toThrow('query deadline');
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      await s.close();
      await hang.close();
    }
  });

  it('sends the configured headers and auth with reads (Mimir X-Scope-OrgID)', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const srv = http.createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () =>
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"success","data":["a"]}'),
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const s = new RemoteStorage({
      writeUrl: 'http://127.0.0.1:1/api/v1/write',
      readUrl: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/prometheus/`,
      headers: { 'X-Scope-OrgID': 'trainwatch' },
      basicAuth: { username: 'u', password: 'p' },
    });
    try {
      expect(await s.querier('a', 0, 1000).labelValues('tenant')).toEqual(['a']);
      expect(seen[0]!['x-scope-orgid']).toBe('trainwatch');
      expect(seen[0]!.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    } finally {
      await s.close();
      srv.closeAllConnections();
      srv.close();
    }
  });

  it('a querier never asks the TSDB for another tenant', async () => {
    const forms: string[] = [];
    const srv = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        forms.push(decodeURIComponent(body.replace(/\+/g, ' ')));
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(
          JSON.stringify({
            status: 'success',
            data: {
              resultType: 'matrix',
              // A misbehaving backend returns another tenant's series: it must be dropped.
              result: [
                { metric: { __name__: 'm', tenant: 'b' }, values: [[1, '1']] },
                { metric: { __name__: 'm', tenant: 'a' }, values: [[1, '2']] },
              ],
            },
          }),
        );
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const s = await storageFor(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`);
    try {
      const set = await s.querier('a', 0, 2000).select([eq('__name__', 'm'), re('tenant', 'a|b')]);
      expect(set.series.map((x) => x.labels.tenant)).toEqual(['a']);
      expect(forms[0]).toContain('query={__name__="m",tenant="a"}[2001ms]');
      expect(forms[0]).not.toContain('a|b');
    } finally {
      await s.close();
      srv.closeAllConnections();
      srv.close();
    }
  });
});
