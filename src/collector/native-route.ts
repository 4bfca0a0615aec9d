/**
 * `POST /api/v1/ingest`: the native protocol (docs/protocol.md). Reads the body up to the size limit,
 * authenticates, drops retried batches by idempotency key, decodes and validates the whole batch, appends it
 * to the bus, and answers 200 only once the bus made it durable.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth/index.js';
import { Errors, twError } from '../model/errors.js';
import { DecodeError } from '../protocol/bytes.js';
import { type DecodeLimits, decodeFrameHeader, NATIVE_CONTENT_TYPE } from '../protocol/native.js';
import type { IdempotencyWindow } from './idempotency.js';
import { ingestPrincipal } from './ingest-context.js';
import { type IngestEngine, LocalIngest } from './ingest-decoder.js';
import type { CollectorMetrics } from './metrics.js';
import type { TenantLimits } from './tenant-limits.js';
import type { BusWriter } from './to-bus.js';
import type { SeriesLimits } from './validate.js';

export interface NativeIngestDeps {
  readonly auth: Authenticator;
  readonly busWriter: BusWriter;
  readonly idempotency: IdempotencyWindow;
  readonly limits: SeriesLimits &
    DecodeLimits & { readonly maxBodyBytes: number; readonly maxSamplesPerRequest?: number };
  readonly metrics: CollectorMetrics;
  /** Per-tenant active-series and rate limits; absent: none (unit tests of the route alone). */
  readonly tenants?: TenantLimits;
  /** Where frames are decoded (ingest-decoder.ts); absent: on this thread, over `tenants`. */
  readonly engine?: IngestEngine;
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
  const engine =
    deps.engine ??
    new LocalIngest(
      {
        ...deps.limits,
        maxSamplesPerRequest: deps.limits.maxSamplesPerRequest ?? Number.POSITIVE_INFINITY,
        maxInflightBytes: Number.POSITIVE_INFINITY,
      },
      deps.tenants,
    );

  app.post(
    '/api/v1/ingest',
    { bodyLimit: deps.limits.maxBodyBytes, config: { permission: 'ingest' } },
    async (req, reply) => {
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
          // An ingest worker takes the frame's memory (transferred, not copied): its size is read first.
          const frameBytes = frame.length;
          const decoded = await engine.decode({
            protocol: 'native',
            tenant: principal.tenant,
            nowMs: Date.now(),
            body: frame,
            sourceId: header.sourceId,
            sequence: header.sequence,
          });
          await deps.busWriter.writeParts(
            {
              tenant: principal.tenant,
              sourceId: header.sourceId,
              sequence: header.sequence,
              receivedAtMs: Date.now(),
            },
            decoded.parts,
          );
          if (deps.tenants) deps.metrics.activeSeries.set({ tenant: principal.tenant }, decoded.liveSeries);
          const summary: IngestSummary = {
            series: decoded.series,
            samples: decoded.samples,
            events: decoded.events,
          };
          deps.metrics.samples.inc({ protocol: 'native', tenant: principal.tenant }, summary.samples);
          deps.metrics.bytes.inc({ protocol: 'native', tenant: principal.tenant }, frameBytes);
          return summary;
        },
      );
      if (duplicate) deps.metrics.dedupHits.inc({ protocol: 'native' });
      return reply.code(200).send({ status: 'success', data: { ...result, duplicate } });
    },
  );
}

function badPayload(err: unknown): Error {
  if (err instanceof DecodeError) return twError(Errors.badPayload, `malformed native batch: ${err.message}`);
  return err as Error;
}
