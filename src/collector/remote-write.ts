/**
 * `POST /api/v1/write`: Prometheus remote-write 1.0 (`Content-Type: application/x-protobuf`,
 * `Content-Encoding: snappy`) and 2.0 (`...;proto=io.prometheus.write.v2.Request`).
 *
 * Status codes follow the remote-write specification, which Prometheus acts on: 204 once every sample is
 * durable in the bus; 400/413/415 when the request is wrong (Prometheus drops it: retrying cannot help);
 * 401/403 for credentials; 429 when the tenant is over its sample rate (Prometheus 2.x drops 429s unless
 * `queue_config.retry_on_http_429` is set; Prometheus 3 retries them) and 503 with Retry-After when
 * trainwatch is overloaded (always retried). Remote-write 2.0 answers carry the
 * `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers.
 */
import type { FastifyInstance } from 'fastify';
import { Errors, twError } from '../model/errors.js';
import { type CollectorDeps, ingestPrincipal, parseContentType, requireBody } from './ingest-context.js';

export const REMOTE_WRITE_V1_PROTO = 'prometheus.WriteRequest';
export const REMOTE_WRITE_V2_PROTO = 'io.prometheus.write.v2.Request';

export function registerRemoteWrite(app: FastifyInstance, deps: CollectorDeps): void {
  app.post(
    '/api/v1/write',
    { bodyLimit: deps.limits.maxBodyBytes, config: { permission: 'ingest' } },
    async (req, reply) => {
      // The ingest routes' preamble (twin: otlp.ts:registerOtlp): principal, then the Content-Type each accepts.
      const principal = ingestPrincipal(req, deps.auth);
      const { type, params } = parseContentType(req.headers['content-type']);
      if (type !== 'application/x-protobuf') {
        throw twError(
          Errors.unsupportedMediaType,
          `Content-Type must be application/x-protobuf (remote-write 1.0) or ` +
            `application/x-protobuf;proto=${REMOTE_WRITE_V2_PROTO} (2.0), got ${JSON.stringify(req.headers['content-type'] ?? '')}`,
        );
      }
      const proto = params.get('proto') ?? REMOTE_WRITE_V1_PROTO;
      if (proto !== REMOTE_WRITE_V1_PROTO && proto !== REMOTE_WRITE_V2_PROTO) {
        throw twError(
          Errors.unsupportedMediaType,
          `proto=${proto} is not supported: this server accepts ${REMOTE_WRITE_V1_PROTO} and ${REMOTE_WRITE_V2_PROTO}`,
        );
      }
      const encoding = String(req.headers['content-encoding'] ?? 'snappy')
        .trim()
        .toLowerCase();
      if (encoding !== 'snappy') {
        throw twError(
          Errors.unsupportedMediaType,
          `Content-Encoding must be snappy, got ${JSON.stringify(encoding)}`,
        );
      }
      const body = requireBody(req.body, 'a snappy-compressed remote-write request');
      // An ingest worker takes the body's memory (transferred, not copied): its size is read first.
      const bodyBytes = body.length;
      const version = proto === REMOTE_WRITE_V2_PROTO ? 2 : 1;
      const nowMs = Date.now();
      const decoded = await deps.engine.decode({
        protocol: 'remote_write',
        tenant: principal.tenant,
        nowMs,
        body,
        version,
      });
      // Metadata is kept whatever becomes of the samples: it describes the metric, not this request.
      if (decoded.metadata) deps.declaredMetadata?.noteDeclared(principal.tenant, decoded.metadata);
      const { samples, histograms, exemplars } = decoded;

      await deps.busWriter.writeParts(
        { tenant: principal.tenant, sourceId: '', sequence: 0, receivedAtMs: nowMs },
        decoded.parts,
      );

      const m = deps.metrics;
      m.samples.inc({ protocol: 'remote_write', tenant: principal.tenant }, samples);
      m.bytes.inc({ protocol: 'remote_write', tenant: principal.tenant }, bodyBytes);
      if (histograms > 0) m.notStored.inc({ protocol: 'remote_write', kind: 'native_histogram' }, histograms);
      if (exemplars > 0) m.notStored.inc({ protocol: 'remote_write', kind: 'exemplar' }, exemplars);
      m.activeSeries.set({ tenant: principal.tenant }, decoded.liveSeries);
      if (version === 2) {
        reply.header('X-Prometheus-Remote-Write-Samples-Written', String(samples));
        reply.header('X-Prometheus-Remote-Write-Histograms-Written', '0');
        reply.header('X-Prometheus-Remote-Write-Exemplars-Written', '0');
      }
      return reply.code(204).send();
    },
  );
}
