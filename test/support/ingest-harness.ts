/**
 * An in-process collector for ingest tests: the real routes on a Fastify app, writing to a bus that keeps
 * records in memory (optionally slowed down or bounded), so a test can see exactly what would reach the
 * processor, decoded with the same codec the processor uses.
 */
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { type Authenticator, TokenAuthenticator } from '../../src/auth/index.js';
import {
  type AppendResult,
  type BusProducer,
  decodeBusRecordHeader,
  hashPartitionKey,
} from '../../src/bus/index.js';
import {
  BusWriter,
  createCollectorMetrics,
  IdempotencyWindow,
  type IngestEngine,
  registerCollector,
  TenantLimits,
  type TenantLimitsConfig,
} from '../../src/collector/index.js';
import type { IngestLimits } from '../../src/collector/ingest-context.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { Errors, twError } from '../../src/model/errors.js';
import type { LabelSet } from '../../src/model/labels.js';
import { decodePayload } from '../../src/protocol/native.js';
import { type ConnectionLimits, createHttpServer } from '../../src/server/http.js';
import { tempDir } from './helpers.js';

export interface StoredRecord {
  readonly key: string;
  readonly tenant: string;
  readonly series: { labels: LabelSet; t: number[]; v: Float64Array }[];
}

/** A bus in memory: appends resolve after `delayMs`; beyond `maxPending` queued appends it refuses (503). */
export class MemoryBus implements BusProducer {
  readonly partitionCount = 4;
  readonly records: { key: string; record: Uint8Array }[] = [];
  pending = 0;
  maxPendingSeen = 0;

  constructor(
    public delayMs = 0,
    public maxPending = Number.POSITIVE_INFINITY,
  ) {}

  partitionOf(key: string): number {
    return hashPartitionKey(key) % this.partitionCount;
  }
  async append(key: string, record: Uint8Array): Promise<AppendResult> {
    if (this.pending >= this.maxPending)
      throw twError(Errors.unavailable, 'the bus write queue is full (test bus)', 1);
    this.pending++;
    this.maxPendingSeen = Math.max(this.maxPendingSeen, this.pending);
    try {
      // Simulated broker latency (the slow bus under test), not a wait for an event.
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      this.records.push({ key, record: record.slice() });
      return { partition: this.partitionOf(key), offset: this.records.length - 1 };
    } finally {
      this.pending--;
    }
  }

  /** Every record decoded as the processor would see it. */
  stored(): StoredRecord[] {
    return this.records.map(({ key, record }) => {
      const h = decodeBusRecordHeader(record);
      const { batch } = decodePayload(record.subarray(h.payloadStart), {
        maxPayloadBytes: 1 << 30,
        maxLabelsPerSeries: 1000,
        maxLabelValueBytes: 1 << 20,
      });
      return {
        key,
        tenant: h.tenant,
        series: batch.series.map((labels, i) => ({
          labels,
          t: Array.from(batch.timestamps.subarray(batch.offsets[i]!, batch.offsets[i + 1]!)),
          v: batch.values.slice(batch.offsets[i]!, batch.offsets[i + 1]!),
        })),
      };
    });
  }

  /** tenant → "name{labels}" → [t, v][] over every record. */
  samples(tenant: string): Map<string, [number, number][]> {
    const out = new Map<string, [number, number][]>();
    for (const r of this.stored()) {
      if (r.tenant !== tenant) continue;
      for (const s of r.series) {
        const { tenant: _t, ...rest } = s.labels;
        const key = JSON.stringify(Object.fromEntries(Object.entries(rest).sort()));
        const list = out.get(key) ?? [];
        for (let i = 0; i < s.t.length; i++) list.push([s.t[i]!, s.v[i]!]);
        out.set(key, list);
      }
    }
    return out;
  }
}

export const DEFAULT_TEST_LIMITS: IngestLimits = {
  maxBodyBytes: 1 << 20,
  maxPayloadBytes: 4 << 20,
  maxLabelsPerSeries: 20,
  maxLabelValueBytes: 200,
  maxLabelNameBytes: 64,
  maxSamplesPerRequest: 10_000,
  maxInflightBytes: 64 << 20,
};

export interface HarnessOptions {
  limits?: Partial<IngestLimits>;
  maxActiveSeries?: number;
  samplesPerSecond?: number;
  samplesBurst?: number;
  bus?: MemoryBus;
  /** Scopes anonymous requests get (as tenant `anon`); tokens always work. */
  anonymousScopes?: ('ingest' | 'read' | 'admin')[];
  auth?: Authenticator;
  /** The collector's pause when processors lag (registerCollector's `backpressure`). */
  backpressure?: () => { reason: string; retryAfterSeconds: number } | undefined;
  /** `storage.out_of_order_window` the collector enforces (default: none). */
  outOfOrderWindowMs?: number;
  /** Timeouts and connection limits of the HTTP server (defaults: the server's). */
  connections?: Partial<ConnectionLimits>;
  /** Where bodies are decoded (default: this thread, over the returned `tenants`). */
  engine?: IngestEngine;
}

/** The tenant limits {@link collectorHarness} configures for these options (ingest workers get the same). */
export function harnessTenantLimits(opts: HarnessOptions = {}): TenantLimitsConfig {
  return {
    maxActiveSeries: opts.maxActiveSeries ?? 100_000,
    activeSeriesTtlMs: 15 * 60_000,
    samplesPerSecond: opts.samplesPerSecond ?? 1e9,
    samplesBurst: opts.samplesBurst ?? 1e9,
    series: { ...DEFAULT_TEST_LIMITS, ...opts.limits },
    ...(opts.outOfOrderWindowMs !== undefined ? { outOfOrderWindowMs: opts.outOfOrderWindowMs } : {}),
  };
}

export function collectorHarness(opts: HarnessOptions = {}) {
  const bus = opts.bus ?? new MemoryBus();
  const registry = new Registry();
  const tokens = new TokenStore(new MetaStore(path.join(tempDir('tw-ingest-'), 'meta.db')));
  const auth =
    opts.auth ??
    new TokenAuthenticator(tokens, {
      tenant: 'anon',
      scopes: new Set(opts.anonymousScopes ?? ['ingest', 'read']),
    });
  const limits = { ...DEFAULT_TEST_LIMITS, ...opts.limits };
  const server = createHttpServer({
    logger: pino({ level: 'silent' }),
    registry,
    bodyLimit: limits.maxBodyBytes,
    ...(opts.connections ? { connections: opts.connections } : {}),
  });
  const { app, access } = server;
  access.use(auth);
  const tenants = new TenantLimits(harnessTenantLimits(opts));
  registerCollector(app, {
    auth,
    busWriter: new BusWriter(bus),
    idempotency: new IdempotencyWindow(100),
    tenants,
    limits,
    metrics: createCollectorMetrics(registry),
    ...(opts.backpressure ? { backpressure: opts.backpressure } : {}),
    ...(opts.engine ? { engine: opts.engine } : {}),
  });
  return { app, server, bus, tokens, registry, tenants };
}
