/**
 * The one HTTP server of a trainwatch process: UI, APIs and ingest on one port. Roles add their routes to it
 * while they start; this file owns what they share: error answers, health, readiness and `/metrics`.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { TrainwatchError } from '../model/errors.js';

export interface HttpServerOptions {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Largest body any route accepts unless it sets its own limit. */
  readonly bodyLimit: number;
}

/** Answers in the Prometheus API's error shape: `{status: "error", errorType, error}`. */
function errorBody(errorType: string, error: string): { status: 'error'; errorType: string; error: string } {
  return { status: 'error', errorType, error };
}

/**
 * One dependency of a role that `/readyz` reports: resolves with undefined when it is fine, or with the reason
 * it is not (e.g. "kafka: no broker answered"). It may be called often: keep it cheap (a cached state, or a
 * round trip at most).
 */
export type ReadinessCheck = (signal: AbortSignal) => Promise<string | undefined>;

/** A check that takes longer is reported as not ready ("timed out"). */
const READINESS_TIMEOUT_MS = 2000;

export interface HttpServer {
  readonly app: FastifyInstance;
  /** Adds a named dependency check to `/readyz` (every check must pass for the process to be ready). */
  addReadinessCheck(name: string, check: ReadinessCheck): void;
  /**
   * Adds metrics kept outside this thread's registry (worker threads' registries) to `/metrics`, in the
   * Prometheus text format; their names must not repeat the registry's.
   */
  addMetricsSource(source: () => Promise<string>): void;
  /**
   * Lets the UI answer GET requests for paths no route matched (client-side routes get the app shell).
   * API paths always get the JSON 404.
   */
  setPageFallback(fallback: (req: FastifyRequest, reply: FastifyReply) => unknown): void;
}

export function createHttpServer(opts: HttpServerOptions): HttpServer {
  const app: FastifyInstance = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    // One log line per request would drown the log at fleet scale; self-metrics count requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit,
    // Long-lived SSE streams must not block shutdown forever.
    forceCloseConnections: true,
    return503OnClosing: true,
  });
  const checks = new Map<string, ReadinessCheck>();
  let pageFallback: ((req: FastifyRequest, reply: FastifyReply) => unknown) | undefined;

  app.setErrorHandler((err: FastifyError | TrainwatchError, req, reply) => {
    if (err instanceof TrainwatchError) {
      if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
      return reply.code(err.status).send(errorBody(err.kind.code, err.message));
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      opts.logger.error({ err, url: req.url, method: req.method }, 'request failed');
      return reply.code(status).send(errorBody('internal', 'internal error; see the server log'));
    }
    // Fastify's own client errors (body too large, bad JSON, unsupported media type) keep their status.
    const type = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'payload_too_large' : 'bad_request';
    const message =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is larger than the limit of ${req.routeOptions.bodyLimit ?? opts.bodyLimit} bytes`
        : err.message;
    return reply.code(status).send(errorBody(type, message));
  });

  app.setNotFoundHandler((req, reply) => {
    const url = req.url.split('?')[0]!;
    if (pageFallback && req.method === 'GET' && !url.startsWith('/api/')) return pageFallback(req, reply);
    return reply.code(404).send(errorBody('not_found', `no route for ${req.method} ${url}`));
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // Ready when every role's dependencies are: load balancers and Kubernetes route traffic by this, and
  // autoscalers wait for it. The answer names each check, so an operator sees which dependency is missing.
  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      [...checks].map(async ([name, check]) => {
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), READINESS_TIMEOUT_MS);
        try {
          const problem = await Promise.race([
            check(abort.signal),
            new Promise<string>((resolve) =>
              abort.signal.addEventListener('abort', () => resolve('timed out'), { once: true }),
            ),
          ]);
          return [name, problem ?? 'ok'] as const;
        } catch (err) {
          return [name, (err as Error).message] as const;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const failing = results.filter(([, r]) => r !== 'ok');
    const body = { checks: Object.fromEntries(results) };
    if (failing.length === 0) return { status: 'ready', ...body };
    return reply.code(503).send({
      status: 'not ready',
      reason: failing.map(([n, r]) => `${n}: ${r}`).join('; '),
      ...body,
    });
  });
  const metricsSources: (() => Promise<string>)[] = [];
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    const own = await opts.registry.metrics();
    if (metricsSources.length === 0) return own;
    const more = await Promise.all(metricsSources.map((s) => s().catch(() => '')));
    return [own, ...more].filter((t) => t.length > 0).join('\n');
  });

  return {
    app,
    addReadinessCheck: (name, check) => {
      checks.set(name, check);
    },
    addMetricsSource: (source) => {
      metricsSources.push(source);
    },
    setPageFallback: (fallback) => {
      pageFallback = fallback;
    },
  };
}
