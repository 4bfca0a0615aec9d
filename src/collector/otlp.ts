/**
 * `POST /v1/metrics`: OTLP/HTTP metrics, protobuf (`application/x-protobuf`) or JSON (`application/json`),
 * optionally gzip-compressed, as every OpenTelemetry SDK and the Collector's `otlphttp` exporter send them.
 *
 * Answers follow the OTLP/HTTP specification: 200 with an `ExportMetricsServiceResponse` in the request's
 * encoding; when some data points could not be stored (exponential or delta histograms, invalid series),
 * its `partial_success` says how many and why, and the rest is stored. 400 when the request cannot be
 * decoded, 415 for other encodings, 401/403 for credentials, 429/503 with Retry-After when the tenant is
 * over its rate or trainwatch is overloaded (OTLP exporters retry those).
 */
import type { FastifyInstance } from 'fastify';
import { Errors, twError } from '../model/errors.js';
import { type CollectorDeps, ingestPrincipal, parseContentType, requireBody } from './ingest-context.js';

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/** `ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; }` in protobuf. */
export function encodeOtlpResponse(rejected: number, message: string): Uint8Array {
  if (rejected === 0) return new Uint8Array(0);
  const msg = Buffer.from(message);
  const inner: number[] = [0x08, ...varint(rejected), 0x12, ...varint(msg.length), ...msg];
  return Uint8Array.from([0x0a, ...varint(inner.length), ...inner]);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

export function registerOtlp(app: FastifyInstance, deps: CollectorDeps): void {
  app.post(
    '/v1/metrics',
    { bodyLimit: deps.limits.maxBodyBytes, config: { permission: 'ingest' } },
    async (req, reply) => {
      // The ingest routes' preamble (twin: remote-write.ts:registerRemoteWrite): principal, then the Content-Type each accepts.
      const principal = ingestPrincipal(req, deps.auth);
      const { type } = parseContentType(req.headers['content-type']);
      if (type !== PROTOBUF && type !== JSON_TYPE) {
        throw twError(
          Errors.unsupportedMediaType,
          `Content-Type must be ${PROTOBUF} or ${JSON_TYPE} (OTLP/HTTP), got ${JSON.stringify(req.headers['content-type'] ?? '')}`,
        );
      }
      const encoding = String(req.headers['content-encoding'] ?? 'identity')
        .trim()
        .toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') {
        throw twError(
          Errors.unsupportedMediaType,
          `Content-Encoding must be gzip or absent, got ${JSON.stringify(encoding)}`,
        );
      }
      const body = requireBody(req.body, 'an OTLP ExportMetricsServiceRequest');
      // An ingest worker takes the body's memory (transferred, not copied): its size is read first.
      const bodyBytes = body.length;
      const nowMs = Date.now();
      const result = await deps.engine.decode({
        protocol: 'otlp',
        tenant: principal.tenant,
        nowMs,
        body,
        json: type === JSON_TYPE,
        gzip: encoding === 'gzip',
      });
      if (result.metadata) deps.declaredMetadata?.noteDeclared(principal.tenant, result.metadata);
      const samples = result.samples;
      try {
        await deps.busWriter.writeParts(
          { tenant: principal.tenant, sourceId: '', sequence: 0, receivedAtMs: nowMs },
          result.parts,
        );
      } catch (err) {
        // Not stored: take the delta sums back, so that the exporter's retry does not count them twice.
        if (result.undo) deps.engine.undo(principal.tenant, result.undo);
        throw err;
      }

      const m = deps.metrics;
      m.samples.inc({ protocol: 'otlp', tenant: principal.tenant }, samples);
      m.bytes.inc({ protocol: 'otlp', tenant: principal.tenant }, bodyBytes);
      if (result.unsupportedPoints > 0)
        m.notStored.inc({ protocol: 'otlp', kind: 'unsupported_point' }, result.unsupportedPoints);
      if (result.rejectedPoints > result.unsupportedPoints) {
        m.notStored.inc(
          { protocol: 'otlp', kind: 'invalid_point' },
          result.rejectedPoints - result.unsupportedPoints,
        );
      }
      m.activeSeries.set({ tenant: principal.tenant }, result.liveSeries);

      const message = result.rejectedPoints > 0 ? (result.firstError ?? '') : '';
      if (type === JSON_TYPE) {
        reply.type(JSON_TYPE);
        return reply
          .code(200)
          .send(
            result.rejectedPoints > 0
              ? { partialSuccess: { rejectedDataPoints: result.rejectedPoints, errorMessage: message } }
              : {},
          );
      }
      reply.type(PROTOBUF);
      return reply.code(200).send(Buffer.from(encodeOtlpResponse(result.rejectedPoints, message)));
    },
  );
}
