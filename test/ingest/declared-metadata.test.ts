/**
 * Declared metric metadata leaves the decoding thread only when new or changed (ingest-decoder.ts,
 * declared-metadata.ts): a sender that repeats its metadata in every request, as remote-write 2.0 does on
 * every series, costs no message, string or store write after the first request.
 */
import { describe, expect, it } from 'vitest';
import {
  DeclaredMetadataMemory,
  MAX_DECLARED_METRICS_PER_TENANT,
  TenantLimits,
} from '../../src/collector/index.js';
import { IngestDecoder } from '../../src/collector/ingest-decoder.js';
import { DEFAULT_TEST_LIMITS, harnessTenantLimits } from '../support/ingest-harness.js';
import { snappyCompress, writeRequestV1, writeRequestV2 } from '../support/wire.js';

const now = Date.now();

function rw2(help: string, t: number): Uint8Array {
  return snappyCompress(
    writeRequestV2(
      ['a', 'b', 'c'].map((q) => ({
        labels: { __name__: 'queue_depth', job_id: 'j', queue: q },
        samples: [[t, 1]] as const,
        metadata: { type: 2, help, unit: '' },
      })),
    ),
  );
}

describe('declared metadata in the ingest decoder', () => {
  it('passes an entry on once, again when it changes, and per tenant', () => {
    const decoder = new IngestDecoder(DEFAULT_TEST_LIMITS, new TenantLimits(harnessTenantLimits()));
    const decode = (tenant: string, body: Uint8Array) =>
      decoder.decode({ protocol: 'remote_write', tenant, nowMs: now, body, version: 2 });
    // Three series of one metric name: one entry.
    expect(decode('t1', rw2('Jobs waiting.', now)).metadata).toEqual([
      ['queue_depth', 'gauge', 'Jobs waiting.', ''],
    ]);
    expect(decode('t1', rw2('Jobs waiting.', now + 1)).metadata).toBeUndefined();
    expect(decode('t1', rw2('Jobs queued.', now + 2)).metadata).toEqual([
      ['queue_depth', 'gauge', 'Jobs queued.', ''],
    ]);
    expect(decode('t2', rw2('Jobs queued.', now + 3)).metadata).toEqual([
      ['queue_depth', 'gauge', 'Jobs queued.', ''],
    ]);
  });

  it('finds each metric name once in a 2.0 request whatever the order of series and labels', () => {
    const decoder = new IngestDecoder(DEFAULT_TEST_LIMITS, new TenantLimits(harnessTenantLimits()));
    const series = ['a', 'b', 'a', 'c', 'b'].map((name, i) => ({
      // `__name__` last: the decoder does not rely on Prometheus's sorted labels.
      labels: { job_id: 'j', idx: String(i), __name__: `metric_${name}` },
      samples: [[now, i]] as const,
      metadata: { type: 2, help: `help ${name}`, unit: 'bytes' },
    }));
    const body = snappyCompress(writeRequestV2(series));
    const result = decoder.decode({ protocol: 'remote_write', tenant: 't', nowMs: now, body, version: 2 });
    expect(result.metadata).toEqual([
      ['metric_a', 'gauge', 'help a', 'bytes'],
      ['metric_b', 'gauge', 'help b', 'bytes'],
      ['metric_c', 'gauge', 'help c', 'bytes'],
    ]);
  });

  it('forgets the entries of a refused request, so that the retry passes them on', () => {
    const decoder = new IngestDecoder(DEFAULT_TEST_LIMITS, new TenantLimits(harnessTenantLimits()));
    const v1 = (t: number) =>
      snappyCompress(
        writeRequestV1(
          [{ labels: { __name__: 'jobs_total', job_id: 'j' }, samples: [[t, 1]] }],
          [{ type: 1, family: 'jobs_total', help: 'Jobs run.', unit: '' }],
        ),
      );
    // A timestamp far in the future: the request is refused after its metadata was read.
    expect(() =>
      decoder.decode({
        protocol: 'remote_write',
        tenant: 't',
        nowMs: now,
        body: v1(now + 3_600_000),
        version: 1,
      }),
    ).toThrow(/in the future/);
    const retry = decoder.decode({
      protocol: 'remote_write',
      tenant: 't',
      nowMs: now,
      body: v1(now),
      version: 1,
    });
    expect(retry.metadata).toEqual([['jobs_total', 'counter', 'Jobs run.', '']]);
  });

  it('ignores empty declarations and bounds the names it remembers per tenant', () => {
    const memory = new DeclaredMetadataMemory();
    memory.begin('t');
    memory.note('nothing_said', 'unknown', '', '');
    expect(memory.take()).toBeUndefined();
    for (let i = 0; i < MAX_DECLARED_METRICS_PER_TENANT + 5; i++) memory.note(`m${i}`, 'gauge', '', '');
    expect(memory.take()).toHaveLength(MAX_DECLARED_METRICS_PER_TENANT);
    // A known name may still change.
    memory.note('m0', 'counter', '', '');
    expect(memory.take()).toEqual([['m0', 'counter', '', '']]);
  });
});
