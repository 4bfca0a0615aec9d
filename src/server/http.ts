/**
 * The one HTTP server of a trainwatch process: UI, APIs and ingest on one port. Roles add their routes to it
 * while they start; this file owns what they share: error answers, health, readiness and `/metrics`.
 */

import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import helmet from '@fastify/helmet';
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
import { type AccessControlHandle, installAccessControl } from '../auth/index.js';
import { TrainwatchError } from '../model/errors.js';

export interface HttpServerOptions {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Largest body any route accepts unless it sets its own limit. */
  readonly bodyLimit: number;
  /** Timeouts and connection limits against slow or idle clients (config `http`); defaults below. */
  readonly connections?: Partial<ConnectionLimits>;
  /**
   * Whether `/metrics` (served without authentication) shows tenant names in its `tenant` labels
   * (`http.metrics_tenant_labels`). False: series are summed over tenants, the label removed. Default true.
   */
  readonly metricsTenantLabels?: boolean;
  /** HTTPS (config `http.tls`): the files are read when the server is made and again by `reloadTls`. */
  readonly tls?: TlsListenerOptions;
}

/** The listener's TLS settings (config `http.tls`; docs/security.md, "TLS"). */
export interface TlsListenerOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle client certificates must chain to (mutual TLS); needed unless `clientAuth` is `none`. */
  readonly clientCaFile?: string | undefined;
  readonly clientAuth: 'none' | 'request' | 'require';
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

/**
 * What bounds a client that opens connections and then sends slowly or nothing: without these a few
 * connections that declare a large body and send nothing hold server resources forever (issue 16, item 1).
 */
export interface ConnectionLimits {
  /** Longest time from a request's first byte to its last body byte (Node `requestTimeout`); 408 after. */
  readonly requestTimeoutMs: number;
  /** Longest time to receive a request's headers (Node `headersTimeout`). */
  readonly headersTimeoutMs: number;
  /** Open connections per client IP address; beyond it a new connection is closed at once. */
  readonly maxConnectionsPerClient: number;
  /**
   * Open connections that have not yet carried a successful request. Beyond it the oldest such connection is
   * closed (not the new one: refusing new connections would lock out every honest client while an attacker
   * holds the slots).
   */
  readonly maxUnauthenticatedConnections: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  requestTimeoutMs: 60_000,
  headersTimeoutMs: 10_000,
  maxConnectionsPerClient: 256,
  maxUnauthenticatedConnections: 1024,
};

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

/** The name `/-/healthy` and `/-/ready` answer with, where Prometheus says "Prometheus Server". */
export const PROBE_APP_NAME = 'trainwatch';

export interface HttpServer {
  readonly app: FastifyInstance;
  /** The route-permission check every route goes through (src/auth/permissions.ts). */
  readonly access: AccessControlHandle;
  /**
   * True when the listener speaks HTTPS (config `http.tls`): session cookies are then `Secure`, and responses
   * carry Strict-Transport-Security.
   */
  readonly tlsEnabled: boolean;
  /**
   * Reads the certificate, key and client CA files again and serves them to new connections (SIGHUP).
   * Returns false, logs an error and keeps serving the old ones when a file cannot be read or the key does not
   * match the certificate: a half-written renewal must not take the server down. False without TLS.
   */
  reloadTls(): boolean;
  /** Adds a named dependency check to `/readyz` (every check must pass for the process to be ready). */
  addReadinessCheck(name: string, check: ReadinessCheck): void;
  /**
   * Adds metrics kept outside this thread's registry (worker threads' registries) to `/metrics`, in the
   * Prometheus text format; their names must not repeat the registry's.
   */
  addMetricsSource(source: () => Promise<string>): void;
  /**
   * Adds a warning `/readyz` shows under `warnings` without failing readiness (e.g. data lost to disk damage
   * found at start: the process works, but an operator must know). `note` returns undefined when all is well.
   */
  addReadinessWarning(name: string, note: () => string | undefined): void;
  /**
   * Lets the UI answer GET requests for paths no route matched (client-side routes get the app shell).
   * API paths always get the JSON 404.
   */
  setPageFallback(fallback: (req: FastifyRequest, reply: FastifyReply) => unknown): void;
}

export function createHttpServer(opts: HttpServerOptions): HttpServer {
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.connections };
  const serverOptions = {
    // Node ignores a request timeout shorter than the headers timeout: the headers must come first anyway.
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
    connectionsCheckingInterval: Math.max(
      50,
      Math.min(30_000, Math.floor(Math.min(limits.requestTimeoutMs, limits.headersTimeoutMs) / 4)),
    ),
  };
  const tls = opts.tls;
  const app: FastifyInstance = Fastify({
    // Node closes a request whose headers or body do not arrive in time (408), checking every
    // `connectionsCheckingInterval`; its default interval (30 s) would let short timeouts run long.
    requestTimeout: limits.requestTimeoutMs,
    // Fastify hands `https` to https.createServer, which takes the http server's options as well.
    ...(tls
      ? {
          https: {
            ...serverOptions,
            ...readTlsFiles(tls),
            minVersion: tls.minVersion,
            // `request`: a client without a certificate (or with one the CA does not verify) still connects
            // and may use a token; the authenticator only trusts `socket.authorized` certificates.
            requestCert: tls.clientAuth !== 'none',
            rejectUnauthorized: tls.clientAuth === 'require',
          },
        }
      : { http: serverOptions }),
    loggerInstance: opts.logger as FastifyBaseLogger,
    // One log line per request would drown the log at fleet scale; self-metrics count requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit,
    // Long-lived SSE streams must not block shutdown forever.
    forceCloseConnections: true,
    return503OnClosing: true,
  });
  limitConnections(app, limits, opts.logger, tls !== undefined);
  // Headers first, so that answers the access check refuses carry them too.
  registerSecurityHeaders(app, tls !== undefined);
  // Before any route: each route must declare its permission, checked in one onRequest hook.
  const access = installAccessControl(app);
  const checks = new Map<string, ReadinessCheck>();
  const warnings = new Map<string, () => string | undefined>();
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

  app.get('/healthz', { config: { permission: 'public' } }, async () => ({ status: 'ok' }));

  /** Runs every readiness check (each bounded by READINESS_TIMEOUT_MS): `[name, "ok" | why not]` pairs. */
  const runReadinessChecks = () =>
    Promise.all(
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

  // Ready when every role's dependencies are: load balancers and Kubernetes route traffic by this, and
  // autoscalers wait for it. The answer names each check, so an operator sees which dependency is missing.
  app.get('/readyz', { config: { permission: 'public' } }, async (_req, reply) => {
    const results = await runReadinessChecks();
    const failing = results.filter(([, r]) => r !== 'ok');
    const warned = [...warnings].flatMap(([name, note]) => {
      const w = note();
      return w === undefined ? [] : [[name, w] as const];
    });
    const body = {
      checks: Object.fromEntries(results),
      ...(warned.length > 0 ? { warnings: Object.fromEntries(warned) } : {}),
    };
    if (failing.length === 0) return { status: 'ready', ...body };
    return reply.code(503).send({
      status: 'not ready',
      reason: failing.map(([n, r]) => `${n}: ${r}`).join('; '),
      ...body,
    });
  });

  // Prometheus's own probes (web/web.go), for tools and Kubernetes manifests written for Prometheus:
  // `/-/healthy` answers 200 while the process serves; `/-/ready` follows the `/readyz` checks, answering
  // 503 "Service Unavailable" while any fails. Plain text, with Prometheus's wording (its app name replaced);
  // HEAD (Fastify's HEAD route for every GET route) answers the same status without a body, as Prometheus does.
  const plainText = (reply: FastifyReply, status: number, text: string) =>
    reply.code(status).header('content-type', 'text/plain; charset=utf-8').send(text);
  app.get('/-/healthy', { config: { permission: 'public' } }, async (_req, reply) =>
    plainText(reply, 200, `${PROBE_APP_NAME} is Healthy.\n`),
  );
  app.get('/-/ready', { config: { permission: 'public' } }, async (_req, reply) => {
    const ready = (await runReadinessChecks()).every(([, r]) => r === 'ok');
    return plainText(
      reply,
      ready ? 200 : 503,
      ready ? `${PROBE_APP_NAME} is Ready.\n` : 'Service Unavailable',
    );
  });
  const metricsSources: (() => Promise<string>)[] = [];
  // Public for scrapers; tenant names are hidden unless http.metrics_tenant_labels allows them.
  app.get('/metrics', { config: { permission: 'public' } }, async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    const own = await opts.registry.metrics();
    const more = await Promise.all(metricsSources.map((s) => s().catch(() => '')));
    const text = [own, ...more].filter((t) => t.length > 0).join('\n');
    return opts.metricsTenantLabels === false ? withoutTenantLabel(text) : text;
  });

  return {
    app,
    access,
    tlsEnabled: tls !== undefined,
    reloadTls: () => {
      if (!tls) return false;
      try {
        const files = readTlsFiles(tls);
        // Throws (and changes nothing) when the key does not match the certificate or a PEM is malformed.
        (app.server as unknown as { setSecureContext(o: SecureContextOptions): void }).setSecureContext({
          ...files,
          minVersion: tls.minVersion,
        });
      } catch (err) {
        opts.logger.error(
          { err, certFile: tls.certFile, keyFile: tls.keyFile },
          'TLS reload failed; still serving the previous certificate: %s',
          (err as Error).message,
        );
        return false;
      }
      opts.logger.info({ certFile: tls.certFile }, 'TLS certificate, key and client CA reloaded');
      return true;
    },
    addReadinessCheck: (name, check) => {
      checks.set(name, check);
    },
    addMetricsSource: (source) => {
      metricsSources.push(source);
    },
    addReadinessWarning: (name, note) => {
      warnings.set(name, note);
    },
    setPageFallback: (fallback) => {
      pageFallback = fallback;
    },
  };
}

/**
 * Per-client and unauthenticated connection limits. A connection counts as unauthenticated until one of its
 * requests got an answer below 400 (an accepted token, or anonymous access the policy allows).
 */
function limitConnections(
  app: FastifyInstance,
  limits: ConnectionLimits,
  logger: Logger,
  tls: boolean,
): void {
  const perClient = new Map<string, number>();
  // Insertion order is age: the first entry is the oldest unauthenticated connection.
  const unauthenticated = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '';
    const open = perClient.get(client) ?? 0;
    if (open >= limits.maxConnectionsPerClient) {
      logger.warn(
        { client, open },
        'closed a new connection from %s: it has %d open (http.max_connections_per_client)',
        client,
        open,
      );
      socket.destroy();
      return;
    }
    perClient.set(client, open + 1);
    if (!tls) trackUnauthenticated(socket);
    socket.once('close', () => {
      const n = (perClient.get(client) ?? 1) - 1;
      if (n <= 0) perClient.delete(client);
      else perClient.set(client, n);
    });
  });
  // Over TLS the requests arrive on the TLS socket wrapped around the TCP one: track that one, from the end
  // of its handshake (a handshake that never ends is closed by Node's TLS handshake timeout).
  if (tls) app.server.on('secureConnection', (socket: TLSSocket) => trackUnauthenticated(socket));
  function trackUnauthenticated(socket: Socket): void {
    if (unauthenticated.size >= limits.maxUnauthenticatedConnections) {
      const oldest = unauthenticated.values().next().value!;
      unauthenticated.delete(oldest);
      logger.warn(
        { client: oldest.remoteAddress },
        'closed the oldest unauthenticated connection (http.max_unauthenticated_connections)',
      );
      oldest.destroy();
    }
    unauthenticated.add(socket);
    socket.once('close', () => unauthenticated.delete(socket));
  }
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode < 400) unauthenticated.delete(req.raw.socket);
  });
}

/** The PEM contents of the TLS files; a file that cannot be read is an error naming its `http.tls` key. */
function readTlsFiles(tls: TlsListenerOptions): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (file: string, key: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`http.tls.${key}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return {
    cert: read(tls.certFile, 'cert_file'),
    key: read(tls.keyFile, 'key_file'),
    ...(tls.clientCaFile ? { ca: read(tls.clientCaFile, 'client_ca_file') } : {}),
  };
}

/**
 * The UI's Content-Security-Policy. The built UI (dist/ui) loads only its own script and style files: no
 * inline script, no inline style element or attribute (its components set styles through the CSSOM, which
 * CSP does not govern), no eval. Images may be data: URLs (icons); nothing is loaded from another origin.
 */
export const CONTENT_SECURITY_POLICY: Readonly<Record<string, readonly string[]>> = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
};

/**
 * Security headers on every answer (@fastify/helmet): the CSP above, no framing, no MIME sniffing, no
 * Referer leaving the site, HSTS only over TLS (over plain HTTP it would be ignored, and a browser that
 * remembered it from a TLS listener on the same host would refuse the plain one). API answers are never
 * cached: they carry tenant data, and a shared cache or the browser's disk must not keep it.
 */
function registerSecurityHeaders(app: FastifyInstance, tls: boolean): void {
  void app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        ...Object.fromEntries(Object.entries(CONTENT_SECURITY_POLICY).map(([k, v]) => [k, [...v]])),
        // Upgrading over plain HTTP would send the UI's own requests to an https:// port nobody serves.
        ...(tls ? { 'upgrade-insecure-requests': [] } : {}),
      },
    },
    hsts: tls ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: { action: 'deny' },
    crossOriginOpenerPolicy: { policy: 'same-origin' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    crossOriginEmbedderPolicy: false,
  });
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/api/') && !reply.hasHeader('cache-control'))
      reply.header('cache-control', 'no-store');
    return payload;
  });
}

const TENANT_LABEL = /(\{|,)tenant="(?:[^"\\]|\\.)*"(,?)/;

/**
 * The Prometheus text exposition without `tenant` labels: samples that differ only by tenant are summed
 * (right for counters, gauges of totals and histogram buckets alike), so that an unauthenticated scrape
 * learns no tenant names (issue 16, item 7). Lines keep their order; a family's lines stay together.
 */
export function withoutTenantLabel(text: string): string {
  const out: (string | { key: string })[] = [];
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = line.startsWith('#') ? null : TENANT_LABEL.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const stripped =
      line.slice(0, m.index) + (m[1] === '{' ? '{' : m[2] ? ',' : '') + line.slice(m.index + m[0].length);
    const space = stripped.lastIndexOf(' ');
    const key = stripped.slice(0, space).replace('{}', '');
    const raw = stripped.slice(space + 1);
    const value =
      raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw);
    const prev = sums.get(key);
    if (prev === undefined) out.push({ key });
    sums.set(key, (prev ?? 0) + value);
  }
  const format = (v: number) =>
    v === Number.POSITIVE_INFINITY ? '+Inf' : v === Number.NEGATIVE_INFINITY ? '-Inf' : String(v);
  return out.map((l) => (typeof l === 'string' ? l : `${l.key} ${format(sums.get(l.key)!)}`)).join('\n');
}
