/**
 * `POST /api/v1/ingest`: the native protocol (docs/protocol.md). Reads the body up to the size limit,
 * authenticates, drops retried batches by idempotency key, decodes and validates the whole batch, appends it
 * to the bus, and answers 200 only once the bus made it durable.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth/index.js';
import type { SeriesBatch } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import { formatSeries } from '../model/labels.js';
import { DecodeError } from '../protocol/bytes.js';
import {
  type DecodeLimits,
  decodeFrameHeader,
  decodePayload,
  framePayload,
  NATIVE_CONTENT_TYPE,
} from '../protocol/native.js';
import type { IdempotencyWindow } from './idempotency.js';
import { ingestPrincipal } from './ingest-context.js';
import type { CollectorMetrics } from './metrics.js';
import { SeriesKeyBuilder } from './series-key.js';
import type { TenantLimits } from './tenant-limits.js';
import type { BusWriter } from './to-bus.js';
import { type SeriesLimits, validateBatch } from './validate.js';

export interface NativeIngestDeps {
  readonly auth: Authenticator;
  readonly busWriter: BusWriter;
  readonly idempotency: IdempotencyWindow;
  readonly limits: SeriesLimits &
    DecodeLimits & { readonly maxBodyBytes: number; readonly maxSamplesPerRequest?: number };
  readonly metrics: CollectorMetrics;
  /** Per-tenant active-series and rate limits; absent: none (unit tests of the route alone). */
  readonly tenants?: TenantLimits;
}

export interface IngestSummary {
  readonly series: number;
  readonly samples: number;
  readonly events: number;
}

export function registerNativeIngest(app: FastifyInstance, deps: NativeIngestDeps): void {
  if (!app.hasContentTypeParser(NATIVE_CONTENT_TYPE)) {
    app.addContentTypeParser(
      NATIVE_CONTENT_TYPE,
      { parseAs: 'buffer', bodyLimit: deps.limits.maxBodyBytes },
      (_req, body, done) => done(null, body),
    );
  }
  const keys = new SeriesKeyBuilder();

  app.post('/api/v1/ingest', { bodyLimit: deps.limits.maxBodyBytes }, async (req, reply) => {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (contentType !== NATIVE_CONTENT_TYPE) {
      throw twError(
        Errors.unsupportedMediaType,
        `Content-Type must be ${NATIVE_CONTENT_TYPE}, got ${JSON.stringify(contentType)}`,
      );
    }
    const principal = ingestPrincipal(req, deps.auth);
    const frame = req.body as Buffer;
    if (!Buffer.isBuffer(frame) || frame.length === 0)
      throw twError(Errors.badPayload, 'the request has no body: send one native frame');
    let header: ReturnType<typeof decodeFrameHeader>;
    try {
      header = decodeFrameHeader(frame);
    } catch (err) {
      throw badPayload(err);
    }

    const { result, duplicate } = await deps.idempotency.run(
      principal.tenant,
      header.sourceId,
      header.sequence,
      async () => {
        let decoded: ReturnType<typeof decodePayload>;
        let payload: Uint8Array;
        try {
          payload = framePayload(frame, header, deps.limits);
          decoded = decodePayload(payload, deps.limits);
        } catch (err) {
          throw badPayload(err);
        }
        const nowMs = Date.now();
        const maxSamples = deps.limits.maxSamplesPerRequest ?? Number.POSITIVE_INFINITY;
        if (decoded.batch.sampleCount > maxSamples) {
          throw twError(
            Errors.limitExceeded,
            `limit ingest.max_samples_per_request exceeded: the batch has ${decoded.batch.sampleCount} samples, ` +
              `the limit is ${maxSamples}; send smaller batches`,
          );
        }
        validateBatch(decoded.batch, decoded.events, deps.limits, nowMs);
        if (deps.tenants) {
          chargeTenant(deps.tenants, principal.tenant, decoded.batch, keys, nowMs);
          deps.metrics.activeSeries.set(
            { tenant: principal.tenant },
            deps.tenants.get(principal.tenant, nowMs).registry.live,
          );
        }
        await deps.busWriter.write(
          {
            tenant: principal.tenant,
            sourceId: header.sourceId,
            sequence: header.sequence,
            receivedAtMs: Date.now(),
          },
          decoded.batch,
          decoded.events,
          payload,
        );
        const summary: IngestSummary = {
          series: decoded.batch.series.length,
          samples: decoded.batch.sampleCount,
          events: decoded.events.length,
        };
        deps.metrics.samples.inc({ protocol: 'native', tenant: principal.tenant }, summary.samples);
        deps.metrics.bytes.inc({ protocol: 'native', tenant: principal.tenant }, frame.length);
        return summary;
      },
    );
    if (duplicate) deps.metrics.dedupHits.inc({ protocol: 'native' });
    return reply.code(200).send({ status: 'success', data: { ...result, duplicate } });
  });
}

function badPayload(err: unknown): Error {
  if (err instanceof DecodeError) return twError(Errors.badPayload, `malformed native batch: ${err.message}`);
  return err as Error;
}

/**
 * Counts the batch's series against the tenant's active-series limit and its samples against the rate
 * limit. Refuses the whole batch (nothing counted) when either is exceeded.
 */
function chargeTenant(
  tenants: TenantLimits,
  tenant: string,
  batch: SeriesBatch,
  keys: SeriesKeyBuilder,
  nowMs: number,
): void {
  const state = tenants.get(tenant, nowMs);
  const registry = state.registry;
  registry.beginRequest(nowMs);
  try {
    for (let i = 0; i < batch.series.length; i++) {
      const labels = batch.series[i]!;
      keys.beginStrings();
      for (const name in labels) keys.addStrings(name, labels[name]!);
      keys.finish();
      const ref = registry.resolve(keys, nowMs);
      for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
        registry.noteSampleTime(ref, batch.timestamps[j]!);
    }
    if (batch.sampleCount > 0)
      tenants.chargeSamples(state, tenant, batch.sampleCount, formatSeries(batch.series[0]!), nowMs);
  } catch (err) {
    registry.rollbackRequest();
    throw err;
  }
}
