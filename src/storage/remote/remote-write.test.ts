/**
 * The remote-write queue against a scriptable endpoint (test/support/remote-write-server.ts) that decodes every
 * request: what goes on the wire, retries, drops, backpressure and the completion watermark. The same queue
 * against a real VictoriaMetrics is in remote-storage.test.ts.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import {
  type RecordedRequest,
  type RemoteWriteServer,
  startRemoteWriteServer,
} from '../../../test/support/remote-write-server.js';
import { SeriesBatchBuilder, STALE_NAN } from '../../model/batch.js';
import { parseRetryAfter, type RemoteWriteOptions, RemoteWriteQueue } from './remote-write.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function server(answer?: Parameters<typeof startRemoteWriteServer>[0]['answer']) {
  const s = await startRemoteWriteServer(answer ? { answer } : {});
  open.push(s);
  return s;
}

function queue(srv: RemoteWriteServer, opts: Partial<RemoteWriteOptions> = {}): RemoteWriteQueue {
  const q = new RemoteWriteQueue({
    url: srv.url,
    batchSendDeadlineMs: 20,
    minBackoffMs: 5,
    maxBackoffMs: 50,
    ...opts,
  });
  open.push({ close: () => q.close(100) });
  return q;
}

/** Every sample received, per series key (labels as JSON), in arrival order; only 2xx-answered requests. */
function received(reqs: readonly RecordedRequest[]): Map<string, { t: number; bits: string }[]> {
  const out = new Map<string, { t: number; bits: string }[]>();
  for (const r of reqs) {
    if (r.status < 200 || r.status >= 300) continue;
    for (const s of r.series) {
      const key = JSON.stringify(s.labels);
      let list = out.get(key);
      if (!list) {
        list = [];
        out.set(key, list);
      }
      for (const x of s.samples) list.push({ t: x.t, bits: x.bits });
    }
  }
  return out;
}

/** Polls until `cond` holds (a loaded machine may be slow to deliver a request); fails after 10 s. */
async function until(what: string, cond: () => boolean): Promise<void> {
  await waitFor(what, cond, 10_000, 5);
}

function bitsOf(v: number): string {
  const f = new Float64Array(1);
  f[0] = v;
  const u = new Uint32Array(f.buffer);
  return u[1]!.toString(16).padStart(8, '0') + u[0]!.toString(16).padStart(8, '0');
}

function logCapture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => lines.map((l) => JSON.parse(l)) };
}

describe('RemoteWriteQueue on the wire', () => {
  it('sends remote-write 1.0 with sorted labels, the tenant label set, per-series order and exact value bits', async () => {
    const srv = await server();
    const q = queue(srv, {
      shards: 3,
      maxSamplesPerSend: 7,
      headers: { 'X-Scope-OrgID': 'org-1' },
      bearerToken: 'sekret',
    });
    const b = new SeriesBatchBuilder();
    // The batch's own tenant label is overwritten; an empty label is no label (Prometheus).
    b.addSeries({ __name__: 'm', tenant: 'spoofed', z: '1', a: '2', empty: '' });
    const ts: number[] = [];
    // A typed array: V8 canonicalises NaNs stored in plain arrays, which would quiet the staleness marker.
    const vs = Float64Array.of(
      0.1,
      -2.5,
      Number.NaN,
      STALE_NAN,
      1e-300,
      Number.POSITIVE_INFINITY,
      123456.789,
      -0,
      5e-324,
    );
    for (let i = 0; i < 40; i++) {
      const t = 1_700_000_000_000 + (i % 2 === 0 ? i * 1000 : -i); // out of order on purpose: order is kept
      ts.push(t);
      b.add(t, vs[i % vs.length]!);
    }
    // Varint edges: 7-bit group and 32-bit half boundaries, the largest safe integer, negatives (10 bytes).
    const edges = [
      -5000,
      0,
      127,
      128,
      2 ** 28,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 35,
      2 ** 49,
      Number.MAX_SAFE_INTEGER,
      -1,
      -(2 ** 40),
    ];
    b.addSeries({ __name__: 'neg' });
    for (const t of edges) b.add(t, 1);
    for (let s = 0; s < 20; s++) b.addSeries({ __name__: 'many', s: String(s) }).add(1_700_000_000_000, s);
    const stats = await q.append('team-a', b.build());
    expect(stats).toEqual({ series: 22, samples: 72, duplicates: 0 });
    await q.flush();

    expect(q.stats()).toMatchObject({ sent: 72, dropped: 0, retried: 0, pending: 0 });
    for (const r of srv.requests) {
      expect(r.headers['content-encoding']).toBe('snappy');
      expect(r.headers['content-type']).toBe('application/x-protobuf');
      expect(r.headers['x-prometheus-remote-write-version']).toBe('0.1.0');
      expect(r.headers['x-scope-orgid']).toBe('org-1');
      expect(r.headers.authorization).toBe('Bearer sekret');
      expect(r.sampleCount).toBeLessThanOrEqual(7);
      for (const s of r.series) expect(Object.keys(s.labels)).toEqual(Object.keys(s.labels).sort());
    }
    const got = received(srv.requests);
    const m = got.get(JSON.stringify({ __name__: 'm', a: '2', tenant: 'team-a', z: '1' }))!;
    expect(m.map((x) => x.t)).toEqual(ts);
    expect(m.map((x) => x.bits)).toEqual(ts.map((_, i) => bitsOf(vs[i % vs.length]!)));
    expect(m[3]!.bits).toBe('7ff0000000000002'); // the staleness marker, bit for bit
    expect(got.get(JSON.stringify({ __name__: 'neg', tenant: 'team-a' }))!.map((x) => x.t)).toEqual(edges);
    expect(got.size).toBe(22);
  });

  it('copies what it keeps: the caller may reuse the batch arrays once append resolved', async () => {
    const srv = await server();
    const q = queue(srv, { batchSendDeadlineMs: 200 });
    const b = new SeriesBatchBuilder().addSeries({ __name__: 'reuse' }).add(1000, 1.5).add(2000, 2.5).build();
    await q.append('t', b);
    (b.timestamps as Float64Array).fill(9);
    (b.values as Float64Array).fill(9);
    await q.flush();
    const [s] = [...received(srv.requests).values()];
    expect(s).toEqual([
      { t: 1000, bits: bitsOf(1.5) },
      { t: 2000, bits: bitsOf(2.5) },
    ]);
  });

  it('sends a partial batch after batchSendDeadlineMs without a flush', async () => {
    const srv = await server();
    const q = queue(srv, { batchSendDeadlineMs: 30, maxSamplesPerSend: 1000 });
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'x' }, 1, 1).build());
    await until('the deadline to send the request', () => srv.requests.length === 1);
  });

  it('drops interned series idle for seriesIdleMs', async () => {
    const srv = await server();
    const q = queue(srv, { seriesIdleMs: 20 });
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'a' }, 1, 1).build());
    await q.flush();
    // Only the clock moves on (past seriesIdleMs): the sweep reads Date.now, timers stay real for the HTTP.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 40 });
    try {
      await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'b' }, 1, 1).build());
    } finally {
      vi.useRealTimers();
    }
    expect(q.cachedSeries()).toBe(1);
    await q.flush();
    expect(received(srv.requests).size).toBe(2);
  });
});

describe('RemoteWriteQueue failures', () => {
  it('retries 5xx with backoff and delivers every sample exactly once', async () => {
    let failures = 0;
    const srv = await server((r) => {
      if (r.index < 3) {
        failures++;
        return { status: 503, body: 'ingester not ready' };
      }
      return { status: 204 };
    });
    const registry = new Registry();
    const q = queue(srv, { shards: 1, maxSamplesPerSend: 50, registry, name: 'tsdb' });
    const b = new SeriesBatchBuilder();
    for (let s = 0; s < 4; s++) {
      b.addSeries({ __name__: 'r', s: String(s) });
      for (let i = 0; i < 25; i++) b.add(i * 1000, i + s / 10);
    }
    await q.append('t', b.build());
    await q.flush();
    expect(failures).toBe(3);
    expect(srv.acceptedSamples()).toBe(100);
    const got = received(srv.requests);
    for (const [, samples] of got)
      expect(samples.map((x) => x.t)).toEqual(Array.from({ length: 25 }, (_, i) => i * 1000));
    expect(q.stats()).toMatchObject({ sent: 100, dropped: 0, failedRequests: 3, retried: 150 });
    const text = await registry.metrics();
    expect(text).toContain('trainwatch_remote_write_samples_sent_total{remote_name="tsdb"} 100');
    expect(text).toContain('trainwatch_remote_write_samples_retried_total{remote_name="tsdb"} 150');
    expect(text).toContain(
      'trainwatch_remote_write_samples_failed_total{remote_name="tsdb",reason="http_5xx"} 150',
    );
    expect(text).toContain('trainwatch_remote_write_samples_pending{remote_name="tsdb"} 0');
    expect(text).toContain('trainwatch_remote_write_shards{remote_name="tsdb"} 1');
    expect(text).toMatch(/trainwatch_remote_write_send_duration_seconds_count\{remote_name="tsdb"\} 5/);
  });

  it('retries network errors (nothing listening), losing and dropping nothing', async () => {
    const srv = await server((r) => (r.index === 0 ? { status: 500 } : { status: 200 }));
    const q = queue(srv, { url: 'http://127.0.0.1:1/api/v1/write', requestTimeoutMs: 500 });
    // Port 1 refuses connections: the queue retries, and nothing is lost or dropped meanwhile.
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'n' }, 1, 1).build());
    await until('failed attempts', () => q.stats().failedRequests > 1);
    expect(q.stats()).toMatchObject({ sent: 0, dropped: 0, pending: 1 });
  });

  it('honours Retry-After on 429', async () => {
    const srv = await server((r) =>
      r.index === 0 ? { status: 429, headers: { 'Retry-After': '1' }, body: 'slow down' } : { status: 204 },
    );
    const q = queue(srv);
    const times: number[] = [];
    const started = Date.now();
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'x' }, 1, 1).build());
    await q.flush();
    times.push(Date.now() - started);
    expect(srv.requests).toHaveLength(2);
    expect(times[0]).toBeGreaterThanOrEqual(950);
    expect(q.stats()).toMatchObject({ sent: 1, retried: 1 });
  });

  it('drops a request the TSDB refuses with 400: counted, logged with the status and message, not retried', async () => {
    const srv = await server((r) =>
      r.index === 0 ? { status: 400, body: 'out of bounds: timestamp too old' } : { status: 204 },
    );
    const { logger, lines } = logCapture();
    const registry = new Registry();
    const q = queue(srv, { shards: 1, maxSamplesPerSend: 10, logger, registry, name: 'vm' });
    const bad = new SeriesBatchBuilder();
    bad.addSeries({ __name__: 'old' });
    for (let i = 0; i < 10; i++) bad.add(i, i);
    await q.append('t', bad.build());
    await q.flush();
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'fine' }, 1, 1).build());
    await q.flush();
    expect(srv.requests.map((r) => r.status)).toEqual([400, 204]);
    expect(q.stats()).toMatchObject({ sent: 1, dropped: 10, retried: 0, failedRequests: 1, pending: 0 });
    const err = lines().find((l) => l.status === 400)!;
    expect(err.msg).toContain('HTTP 400');
    expect(err.msg).toContain('out of bounds: timestamp too old');
    expect(await registry.metrics()).toContain(
      'trainwatch_remote_write_samples_dropped_total{remote_name="vm",reason="http_4xx"} 10',
    );
  });

  it('drops samples with non-integral timestamps, counted', async () => {
    const srv = await server();
    const q = queue(srv);
    const b = new SeriesBatchBuilder()
      .addSeries({ __name__: 'x' })
      .add(1.5, 1)
      .add(Number.NaN, 1)
      .add(3, 1)
      .build();
    expect((await q.append('t', b)).samples).toBe(1);
    await q.flush();
    expect(q.stats()).toMatchObject({ sent: 1, dropped: 2 });
  });
});

describe('RemoteWriteQueue backpressure and watermark', () => {
  function gate() {
    let open!: () => void;
    const opened = new Promise<void>((r) => {
      open = r;
    });
    return { open, opened };
  }

  it('makes append wait while the buffer is full, and resumes when the TSDB answers', async () => {
    const g = gate();
    const srv = await server(async () => {
      await g.opened;
      return { status: 204 };
    });
    const q = queue(srv, { shards: 1, maxSamplesPerSend: 10, capacity: 10 });
    const b = new SeriesBatchBuilder().addSeries({ __name__: 'bp' });
    for (let i = 0; i < 50; i++) b.add(i, i);
    let done = false;
    const appending = q.append('t', b.build()).then((s) => {
      done = true;
      return s;
    });
    // Full: one request in flight at the TSDB, the buffer holding one more, and append still waiting.
    await until(
      'the first request and a full buffer',
      () => srv.requests.length === 1 && q.pendingSamples() === 10,
    );
    await new Promise(setImmediate);
    expect(done).toBe(false);
    expect(q.pendingSamples()).toBe(10); // bounded: one full request in flight, nothing more buffered
    expect(srv.requests).toHaveLength(1);
    g.open();
    expect((await appending).samples).toBe(50);
    await q.flush();
    const [samples] = [...received(srv.requests).values()];
    expect(samples!.map((x) => x.t)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('an abort signal cancels an append waiting for room', async () => {
    const g = gate();
    const srv = await server(async () => {
      await g.opened;
      return { status: 204 };
    });
    const q = queue(srv, { shards: 1, maxSamplesPerSend: 5, capacity: 5 });
    const b = new SeriesBatchBuilder().addSeries({ __name__: 'ab' });
    for (let i = 0; i < 20; i++) b.add(i, i);
    const ac = new AbortController();
    const appending = q.append('t', b.build(), ac.signal);
    await until('the append to wait for room', () => srv.requests.length === 1 && q.pendingSamples() === 5);
    ac.abort(new Error('processor shutting down'));
    await expect(appending).rejects.toThrow('processor shutting down');
    g.open();
    await q.flush();
    expect(srv.acceptedSamples()).toBe(5);
  });

  it('flush resolves only once the TSDB acknowledged everything enqueued before it', async () => {
    const g = gate();
    const srv = await server(async (r) => {
      if (r.index === 0) await g.opened;
      return { status: 204 };
    });
    const q = queue(srv, { shards: 2, batchSendDeadlineMs: 60_000 });
    const b = new SeriesBatchBuilder();
    for (let s = 0; s < 10; s++) b.addSample({ __name__: 'w', s: String(s) }, 1, 1);
    await q.append('t', b.build());
    const mark = q.mark();
    let flushed = false;
    const waiting = q.waitFor(mark).then(() => {
      flushed = true;
    });
    // The first request is held at the TSDB, so the mark cannot be reached yet.
    await until('the held request', () => srv.requests.length >= 1);
    await new Promise(setImmediate);
    expect(flushed).toBe(false);
    g.open();
    await waiting;
    expect(srv.acceptedSamples()).toBe(10);
    // A mark taken now is already reached.
    await q.waitFor(q.mark());
  });

  it('a flush abort signal rejects without losing the samples', async () => {
    const g = gate();
    const srv = await server(async () => {
      await g.opened;
      return { status: 204 };
    });
    const q = queue(srv);
    await q.append('t', new SeriesBatchBuilder().addSample({ __name__: 'x' }, 1, 1).build());
    await expect(q.flush(AbortSignal.timeout(50))).rejects.toThrow();
    g.open();
    await q.flush();
    expect(q.stats()).toMatchObject({ sent: 1, pending: 0 });
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
