/**
 * `POST /api/v1/ingest`: the native protocol (docs/protocol.md). Reads the body up to the size limit,
 * authenticates, drops retried batches by idempotency key, decodes and validates the whole batch, appends it
 * to the bus, and answers 200 only once the bus made it durable.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth/index.js';
import { Errors, twError } from '../model/errors.js';
import { DecodeError } from '../protocol/bytes.js';
import {
  type DecodeLimits,
  decodeFrameHeader,
  decodePayload,
  framePayload,
  NATIVE_CONTENT_TYPE,
} from '../protocol/native.js';
import type { IdempotencyWindow } from './idempotency.js';
import type { CollectorMetrics } from './metrics.js';
import type { BusWriter } from './to-bus.js';
import { type SeriesLimits, validateBatch } from './validate.js';

export interface NativeIngestDeps {
  readonly auth: Authenticator;
  readonly busWriter: BusWriter;
  readonly idempotency: IdempotencyWindow;
  readonly limits: SeriesLimits & DecodeLimits & { readonly maxBodyBytes: number };
  readonly metrics: CollectorMetrics;
}

export interface IngestSummary {
  readonly series: number;
  readonly samples: number;
  readonly events: number;
}

export function registerNativeIngest(app: FastifyInstance, deps: NativeIngestDeps): void {
  app.addContentTypeParser(
    NATIVE_CONTENT_TYPE,
    { parseAs: 'buffer', bodyLimit: deps.limits.maxBodyBytes },
    (_req, body, done) => done(null, body),
  );

  app.post('/api/v1/ingest', { bodyLimit: deps.limits.maxBodyBytes }, async (req, reply) => {
    const started = performance.now();
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (contentType !== NATIVE_CONTENT_TYPE) {
      deps.metrics.rejected.inc({ protocol: 'native', reason: 'content_type' });
      throw twError(
        Errors.unsupportedMediaType,
        `Content-Type must be ${NATIVE_CONTENT_TYPE}, got ${JSON.stringify(contentType)}`,
      );
    }
    const principal = deps.auth.authenticate({ authorization: req.headers.authorization }, 'ingest');
    const frame = req.body as Buffer;
    let header: ReturnType<typeof decodeFrameHeader>;
    try {
      header = decodeFrameHeader(frame);
    } catch (err) {
      throw badPayload(err, deps.metrics);
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
          throw badPayload(err, deps.metrics);
        }
        try {
          validateBatch(decoded.batch, decoded.events, deps.limits, Date.now());
        } catch (err) {
          deps.metrics.rejected.inc({ protocol: 'native', reason: 'invalid_series' });
          throw err;
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
    deps.metrics.latency.observe({ protocol: 'native' }, (performance.now() - started) / 1000);
    return reply.code(200).send({ status: 'success', data: { ...result, duplicate } });
  });
}

function badPayload(err: unknown, metrics: CollectorMetrics): Error {
  if (err instanceof DecodeError) {
    metrics.rejected.inc({ protocol: 'native', reason: 'bad_payload' });
    return twError(Errors.badPayload, `malformed native batch: ${err.message}`);
  }
  return err as Error;
}
