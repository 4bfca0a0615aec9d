/**
 * The fuzz share through the real HTTP server (issue 16: "no crash, no 5xx, no hang past the deadline"):
 * HTTP_RUNS requests (2,000 by default; FUZZ_RUNS scales it) by `inject()` into a whole trainwatch in this
 * process — routes, authentication, content types, compression, decoders, the bus, the processor, storage and
 * the PromQL API — drawn from the same mutations and grammar as the in-process fuzz, so that the mapping of
 * every decoder error to a 4xx answer is checked end to end.
 *
 * Invariants: every request is answered with a status below 500 (a PromQL query may stop at its own deadline
 * with 503 `timeout`, as Prometheus answers; none is expected with these budgets and each is counted), within
 * CASE_DEADLINE_MS; and the server still answers a valid write and read at the end.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { NATIVE_CONTENT_TYPE } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { CASE_DEADLINE_MS, HTTP_RUNS, mutate, prng, randomMutations } from '../support/fuzz-harness.js';
import { frameOf, NOW, nativeSeeds, otlpSeeds, rwSeeds } from '../support/fuzz-seeds.js';
import { tempDir } from '../support/helpers.js';
import { queryOf } from '../support/promql-grammar.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

let tw: Trainwatch;

beforeAll(async () => {
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: tempDir('tw-fuzz-http-'),
        bus: { fsync: 'never' },
        processor: { workers: 0, checkpoint_interval_ms: 50 },
        query: { workers: 0, timeout: '2s', max_subquery_points: 2000, max_samples: 200_000 },
        auth: { anonymous_scopes: ['ingest', 'read'] },
      },
    }),
    pino({ level: 'silent' }),
  );
}, 60_000);

afterAll(async () => {
  await tw?.stop();
});

interface Case {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  readonly what: string;
}

describe('the HTTP server under fuzzed requests', () => {
  it(`answers ${HTTP_RUNS} fuzzed ingest and query requests below 500, none slow`, async () => {
    const rw = rwSeeds();
    const rwCompressed = rw.map(snappyCompress);
    const native = nativeSeeds();
    const otlp = await otlpSeeds();
    const kinds = [
      (r: () => number, seed: number): Case => {
        const inner = r() < 0.6;
        const body = inner
          ? snappyCompress(mutate(rw[seed % rw.length]!, randomMutations(r)))
          : mutate(rwCompressed[seed % rw.length]!, randomMutations(r));
        return {
          method: 'POST',
          url: '/api/v1/write',
          headers: RW1_HEADERS,
          body: Buffer.from(body),
          what: 'remote-write',
        };
      },
      (r: () => number, seed: number): Case => {
        const whole = r() < 0.3;
        const body = whole
          ? mutate(native.frames[seed % native.frames.length]!, randomMutations(r))
          : frameOf(
              mutate(native.payloads[seed % native.payloads.length]!, randomMutations(r)),
              'http-fuzz',
              seed >>> 0,
            );
        return {
          method: 'POST',
          url: '/api/v1/ingest',
          headers: { 'content-type': NATIVE_CONTENT_TYPE },
          body: Buffer.from(body),
          what: 'native',
        };
      },
      (r: () => number, seed: number): Case => {
        const json = r() < 0.5;
        const seeds = json ? otlp.json : otlp.proto;
        return {
          method: 'POST',
          url: '/v1/metrics',
          headers: { 'content-type': json ? 'application/json' : 'application/x-protobuf' },
          body: Buffer.from(mutate(seeds[seed % seeds.length]!, randomMutations(r))),
          what: json ? 'OTLP JSON' : 'OTLP protobuf',
        };
      },
      (r: () => number, seed: number): Case => {
        const q = encodeURIComponent(queryOf(seed));
        const end = Math.floor(NOW / 1000);
        const url =
          r() < 0.3
            ? `/api/v1/query_range?query=${q}&start=${end - 600}&end=${end}&step=${1 + Math.floor(r() * 120)}`
            : `/api/v1/query?query=${q}&time=${end}`;
        return { method: 'GET', url, headers: {}, what: 'PromQL' };
      },
    ];
    const statuses = new Map<string, number>();
    let timeouts = 0;
    let slowest = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer(), async (seed) => {
        const r = prng(seed);
        const c = kinds[(seed >>> 0) % kinds.length]!(r, seed >>> 0);
        const began = performance.now();
        const res = await tw.app.inject({
          method: c.method,
          url: c.url,
          headers: c.headers,
          ...(c.body ? { payload: c.body } : {}),
        });
        const ms = performance.now() - began;
        slowest = Math.max(slowest, ms);
        const key = `${c.what} ${res.statusCode}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        const timedOut = c.what === 'PromQL' && res.statusCode === 503 && res.json().errorType === 'timeout';
        if (timedOut) timeouts++;
        else
          expect(
            res.statusCode,
            `${c.what} seed ${seed} ${c.url.slice(0, 300)}: ${res.body.slice(0, 500)}`,
          ).toBeLessThan(500);
        expect(ms, `${c.what} seed ${seed} took ${ms} ms`).toBeLessThan(CASE_DEADLINE_MS);
      }),
      { numRuns: HTTP_RUNS, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) },
    );
    const summary = [...statuses]
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ');
    console.log(
      `fuzz HTTP: ${HTTP_RUNS} requests (${summary}); ${timeouts} PromQL timeouts; slowest ${slowest.toFixed(1)} ms`,
    );
    // Each kind got some requests through (a fuzz that only ever hits the first check tests nothing else).
    for (const what of ['remote-write', 'native', 'PromQL'])
      expect(
        [...statuses].some(([k]) => k.startsWith(`${what} 2`)),
        `${what}: some accepted`,
      ).toBe(true);

    // Still serving: a valid write, then a read of it.
    const ok = writeRequestV1([{ labels: { __name__: 'after_fuzz', k: 'v' }, samples: [[Date.now(), 42]] }]);
    const write = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      payload: Buffer.from(snappyCompress(ok)),
    });
    expect(write.statusCode, write.body).toBe(204);
  }, 600_000);
});
