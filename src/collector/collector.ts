/**
 * The collector's front door: every ingest route in one encapsulated Fastify scope, sharing
 * - body reading: raw bytes for every content type (each route checks its own and answers 415 clearly),
 *   with the size limit enforced while reading;
 * - authentication from the headers before anything else, so unauthenticated callers cost no budget;
 * - an in-flight budget (`ingest.max_inflight_bytes`): a request that would take the bytes being processed
 *   beyond it is answered 503 with Retry-After before its body is read, so memory stays bounded when the bus
 *   cannot keep up and clients back off;
 * - self-metrics: request latency by protocol, rejections by protocol and reason.
 *
 * Routes: `POST /api/v1/ingest` (native), `POST /api/v1/write` (Prometheus remote-write 1.0/2.0),
 * `POST /v1/metrics` (OTLP/HTTP).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Errors, twError } from '../model/errors.js';
import type { IdempotencyWindow } from './idempotency.js';
import { type CollectorDeps, ingestPrincipal, protocolOfUrl, rejectionReason } from './ingest-context.js';
import { type IngestEngine, LocalIngest } from './ingest-decoder.js';
import { registerNativeIngest } from './native-route.js';
import { registerOtlp } from './otlp.js';
import { registerRemoteWrite } from './remote-write.js';

export interface CollectorOptions extends Omit<CollectorDeps, 'engine'> {
  /** Where bodies are decoded: the ingest workers (ingest-workers.ts); absent: this thread. */
  readonly engine?: IngestEngine;
  readonly idempotency: IdempotencyWindow;
  /**
   * Why ingest should pause now (the processors fell behind the bus), or undefined. A request is then answered
   * 503 with Retry-After before its body is read: clients back off (the agent buffers on disk) instead of the
   * bus growing without bound and detection falling minutes behind.
   */
  readonly backpressure?: () => { reason: string; retryAfterSeconds: number } | undefined;
}

const INFLIGHT = Symbol('trainwatch.inflightBytes');
const COUNTED = Symbol('trainwatch.inflightRequest');
type WithInflight = FastifyRequest & { [INFLIGHT]?: number; [COUNTED]?: boolean };

export function registerCollector(app: FastifyInstance, opts: CollectorOptions): void {
  const { limits, metrics } = opts;
  const deps: CollectorDeps = { ...opts, engine: opts.engine ?? new LocalIngest(limits, opts.tenants) };
  let inflight = 0;

  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes },
      (_req, body, done) => done(null, body),
    );

    const backpressure = opts.backpressure;
    if (backpressure)
      scope.addHook('onRequest', async () => {
        const pause = backpressure();
        if (pause) throw twError(Errors.unavailable, pause.reason, pause.retryAfterSeconds);
      });

    scope.addHook('onRequest', async (req: WithInflight, reply) => {
      // Credentials first, from the headers alone: a caller without them is answered 401 before it holds
      // any in-flight budget, and its connection is closed rather than its body read (issue 16, item 1).
      try {
        ingestPrincipal(req, opts.auth);
      } catch (err) {
        reply.header('connection', 'close');
        throw err;
      }
      const declared = Number(req.headers['content-length']);
      const size =
        Number.isFinite(declared) && declared >= 0
          ? Math.min(declared, limits.maxBodyBytes)
          : limits.maxBodyBytes;
      // A lone request larger than the budget still passes: the body limit bounds it.
      if (inflight > 0 && inflight + size > limits.maxInflightBytes) {
        throw twError(
          Errors.unavailable,
          `trainwatch is overloaded: ${inflight} bytes of requests are in process and the limit is ` +
            `${limits.maxInflightBytes} (ingest.max_inflight_bytes); retry after 1 s`,
          1,
        );
      }
      inflight += size;
      req[INFLIGHT] = size;
      metrics.inflightBytes.set(inflight);
      req[COUNTED] = true;
      metrics.inflightRequests.inc();
    });
    const release = async (req: WithInflight) => {
      const size = req[INFLIGHT];
      if (size) {
        req[INFLIGHT] = 0;
        inflight -= size;
        metrics.inflightBytes.set(inflight);
      }
      if (req[COUNTED]) {
        req[COUNTED] = false;
        metrics.inflightRequests.dec();
      }
    };
    scope.addHook('onResponse', async (req, reply) => {
      await release(req);
      const protocol = protocolOfUrl(req.routeOptions.url);
      if (protocol) metrics.latency.observe({ protocol }, reply.elapsedTime / 1000);
    });
    scope.addHook('onRequestAbort', release);
    scope.addHook('onError', async (req, _reply, error) => {
      const protocol = protocolOfUrl(req.routeOptions.url);
      if (protocol) metrics.rejected.inc({ protocol, reason: rejectionReason(error) });
    });

    registerNativeIngest(scope, {
      auth: opts.auth,
      busWriter: opts.busWriter,
      idempotency: opts.idempotency,
      limits,
      metrics,
      tenants: opts.tenants,
      engine: deps.engine,
    });
    registerRemoteWrite(scope, deps);
    registerOtlp(scope, deps);
  });
}
