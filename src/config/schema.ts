/**
 * trainwatch's configuration: one YAML file, overridable by `TRAINWATCH_*` environment variables and by
 * command-line flags (flags win). Keys are snake_case as in Prometheus's own configuration. Every key has a
 * default, so an empty file (or none) is a valid configuration.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { alertingConfigSchema } from '../alerting/index.js';
import { parseDuration } from '../model/duration.js';
import { detectorsConfigSchema } from '../processor/index.js';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9470')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

const byteSize = z.number().int().positive();

/** A duration such as `90s`, `2h`, `15d` (or a number of ms), parsed to ms, at least `minMs`. */
function durationString(def: string, minMs: number) {
  return z
    .union([z.string(), z.number().int().nonnegative()])
    .default(def)
    .transform((v, ctx) => {
      let ms: number;
      try {
        ms = typeof v === 'number' ? v : parseDuration(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
      if (ms < minMs) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${minMs} ms (got ${JSON.stringify(v)})` });
        return z.NEVER;
      }
      return ms;
    });
}

/** A tenant name, as everywhere else in the configuration. */
const tenantName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a tenant name: lowercase letters, digits, _ and -');

/** What one group (claim value) grants: a role in a tenant (docs/sso.md). */
const oidcGrant = z.object({ tenant: tenantName, role: z.enum(['viewer', 'editor', 'admin']) }).strict();

/**
 * One OpenID Connect provider users may sign in with (docs/sso.md): Keycloak, Okta, Google, Dex, Entra ID…
 * The code flow with PKCE (S256), state and nonce; the ID token's signature is checked against the
 * provider's JWKS. Roles come from one claim of the ID token (or of userinfo when the ID token lacks it).
 */
const oidcProvider = z
  .object({
    /** In URLs (`/api/tw/v1/auth/oidc/<id>/login`) and in user ids (`<id>|<sub>`): keep it stable. */
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be lowercase letters, digits, _ and - (at most 32)'),
    /** What the login page's button says: "Sign in with <name>". */
    name: z.string().min(1).max(64),
    /** The Issuer Identifier; discovery reads `<issuer>/.well-known/openid-configuration`. */
    issuer: z.url(),
    client_id: z.string().min(1),
    /** The client secret, or `client_secret_file` (a mounted secret) so it never sits in the configuration. */
    client_secret: z.string().min(1).optional(),
    client_secret_file: z.string().min(1).optional(),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be one scope name'))
      .default(['openid', 'profile', 'email']),
    /**
     * Where the provider sends the browser back; must be registered there. Default: this server's own
     * `/api/tw/v1/auth/oidc/<id>/callback` under the URL the browser used (set it behind a proxy).
     */
    redirect_uri: z.url().optional(),
    /** The `aud` the ID token must hold (default: `client_id`). */
    audience: z.string().min(1).optional(),
    /** Allow an `http://` issuer (a provider on loopback in tests and labs); never in production. */
    allow_insecure_http: z.boolean().default(false),
    claims: z
      .object({
        /** The claim holding the user's groups or roles, a list or one string; a dotted path reaches nested claims (Keycloak's `realm_access.roles`). */
        tenant_roles_claim: z.string().min(1).default('groups'),
        /** Group → grant(s): `team-a-admins: {tenant: team-a, role: admin}`. The highest role per tenant wins. */
        mapping: z
          .record(
            z.string().min(1),
            z.preprocess((v) => (Array.isArray(v) ? v : [v]), z.array(oidcGrant).min(1)),
          )
          .default({}),
        /**
         * A regular expression with named groups `tenant` and `role` for groups that say both
         * (`^tw-(?<tenant>[a-z0-9-]+)-(?<role>viewer|editor|admin)$`), besides `mapping`.
         */
        pattern: z
          .string()
          .min(1)
          .refine((p) => {
            try {
              const re = new RegExp(p);
              return /\(\?<tenant>/.test(re.source) && /\(\?<role>/.test(re.source);
            } catch {
              return false;
            }
          }, 'must be a regular expression with named groups (?<tenant>…) and (?<role>…)')
          .optional(),
        /** Members of this group are operators (every tenant's admin, and cluster routes). */
        operator_group: z.string().min(1).optional(),
        /** The claim shown as the user's name (falls back to `email`, then `sub`). */
        name_claim: z.string().min(1).default('preferred_username'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.client_secret === undefined) === (p.client_secret_file === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['client_secret'],
        message: `provider ${p.id}: set exactly one of client_secret and client_secret_file`,
      });
    if (!p.scopes.includes('openid'))
      ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'must include openid' });
    if (p.issuer.startsWith('http:') && !p.allow_insecure_http)
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'must be https (allow_insecure_http: true only for a provider on loopback in tests)',
      });
  });

const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * `http.tls`: the listener's certificate and key (PEM files, read at start and again on SIGHUP) and, for
 * mutual TLS, the CA bundle that client certificates must chain to. A verified client certificate
 * identifies an agent: its tenant comes from `client_tenants` (by subject CN or SAN) or from a URI SAN
 * `spiffe://<trust domain>/…/tenant/<t>` or `trainwatch://tenant/<t>`.
 */
const tlsSchema = z
  .object({
    cert_file: z.string().min(1),
    key_file: z.string().min(1),
    /** PEM bundle of the CAs client certificates must chain to; needed by client_auth request/require. */
    client_ca_file: z.string().min(1).optional(),
    /**
     * `none`: no client certificates; `request`: asked for, and a verified one identifies the caller (callers
     * without one use tokens); `require`: the handshake fails without a certificate the CA bundle verifies.
     */
    client_auth: z.enum(['none', 'request', 'require']).default('none'),
    min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /** Client certificate subject CN or SAN (`URI:…`, `DNS:…`, or the bare value) → tenant; wins over the SAN. */
    client_tenants: z
      .record(
        z.string().min(1),
        z.string().regex(TENANT_NAME, 'must be a tenant name: lowercase letters, digits, _ and -'),
      )
      .default({}),
    /** What a client certificate may do (agents send data). */
    client_scopes: z
      .array(z.enum(['ingest', 'read', 'admin']))
      .min(1)
      .default(['ingest']),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.client_auth !== 'none' && !t.client_ca_file)
      ctx.addIssue({
        code: 'custom',
        path: ['client_ca_file'],
        message: `http.tls.client_ca_file is required with http.tls.client_auth: ${t.client_auth}`,
      });
    if (t.client_auth === 'none' && t.client_ca_file)
      ctx.addIssue({
        code: 'custom',
        path: ['client_auth'],
        message: 'http.tls.client_auth must be request or require when http.tls.client_ca_file is set',
      });
  });

export const ROLE_NAMES = ['collector', 'processor', 'query', 'ui'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

export const configSchema = z
  .object({
    /** Where the UI, the APIs and ingest listen: one port for everything. */
    listen: hostPort.default('127.0.0.1:9470'),
    data_dir: z.string().min(1).default('./data'),
    /** Which roles this process runs; `all` is every role on embedded defaults. */
    roles: z
      .array(z.enum(['all', ...ROLE_NAMES]))
      .min(1)
      .default(['all']),
    /**
     * How long a stop (SIGTERM, SIGINT) may take: draining the processors, the last checkpoint and closing the
     * engines. Past it the process exits anyway (what it had not made durable is replayed from the bus at the
     * next start). Below Kubernetes' default 30 s grace period.
     */
    shutdown_timeout: durationString('25s', 1000),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    bus: z
      .object({
        /** `embedded`: the on-disk log in the data directory; `kafka`: an Apache Kafka topic (docs/kafka.md). */
        kind: z.enum(['embedded', 'kafka']).default('embedded'),
        /** Partitions of the log (Kafka: of the topic); partition = hash(tenant, job_id). */
        partitions: z.number().int().min(1).max(1024).default(8),
        segment_bytes: byteSize.min(1 << 16).default(64 << 20),
        /**
         * A commit covering this much of the active segment closes it, so the covered bytes are deleted at the
         * next commit instead of when the segment fills (docs/durability.md, "What the bus keeps").
         */
        roll_covered_bytes: byteSize.min(1 << 12).default(1 << 20),
        fsync: z.enum(['always', 'interval', 'never']).default('always'),
        fsync_interval_ms: z.number().int().min(1).max(60_000).default(200),
        max_queued_bytes: byteSize.default(256 << 20),
        /** With `kind: kafka` (docs/kafka.md): where the topic is and how to reach it. */
        kafka: z
          .object({
            brokers: z.array(hostPort).min(1).default(['127.0.0.1:9092']),
            topic: z
              .string()
              .regex(/^[A-Za-z0-9._-]{1,249}$/, 'must be a Kafka topic name: letters, digits, ., _ and -')
              .default('trainwatch-samples'),
            client_id: z.string().min(1).default('trainwatch'),
            /** Replicas of the topic when trainwatch creates it (3 on a production cluster). */
            replication_factor: z.number().int().min(1).max(16).default(1),
            /**
             * A processor silent this long is dropped from the consumer group and its partitions move to the
             * others: the longest a dead processor's partitions wait (docs/kafka.md).
             */
            session_timeout: durationString('30s', 1000),
            /** How long a rebalance waits for every member to hand over (checkpoint and commit); ≥ the session timeout. */
            rebalance_timeout: durationString('60s', 1000),
            /** SASL for managed services (Azure Event Hubs: mechanism plain, username `$ConnectionString`). */
            sasl: z
              .object({
                mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
                username: z.string().min(1),
                /** A file holding the password (a mounted secret), so it never sits in the configuration. */
                password_file: z.string().min(1),
              })
              .strict()
              .optional(),
            tls: z
              .object({ enabled: z.boolean().default(false), ca_file: z.string().min(1).optional() })
              .strict()
              .prefault({}),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    ingest: z
      .object({
        /** Largest request body accepted, checked while reading. */
        max_body_bytes: byteSize.default(16 << 20),
        /** Largest decompressed payload: guards against compression bombs. */
        max_payload_bytes: byteSize.default(64 << 20),
        max_labels_per_series: z.number().int().min(1).max(1000).default(40),
        max_label_value_bytes: z.number().int().min(16).max(65536).default(2048),
        /** How many recent (source, sequence) keys per source the collector remembers to drop retried batches. */
        dedup_window: z.number().int().min(1).max(1_000_000).default(4096),
        max_label_name_bytes: z.number().int().min(16).max(65536).default(1024),
        /** Samples (incl. histogram buckets) in one request, whatever the protocol. */
        max_samples_per_request: z.number().int().min(1).default(1_000_000),
        /**
         * Request bodies being processed at once (sum of their sizes). Beyond it the collector answers 503
         * with Retry-After before reading the body: memory stays bounded when the bus cannot keep up.
         */
        max_inflight_bytes: byteSize.default(128 << 20),
        /**
         * Ingest worker threads (docs/scaling.md "Every core"): decompression, decoding, the series registry and
         * the bus payload encoding run there, the main thread keeps HTTP and the bus append. Each tenant is
         * decoded by one worker (its limits stay exact). Default: one per core but one; `0` decodes on the main
         * thread.
         */
        workers: z
          .number()
          .int()
          .min(0)
          .max(256)
          .default(() => Math.max(0, availableParallelism() - 1)),
      })
      .strict()
      .prefault({}),
    /** Limits of the HTTP listener against slow and idle clients (docs/security.md). */
    http: z
      .object({
        /** Longest time from a request's first byte to its last body byte; slower requests get 408. */
        request_timeout: durationString('60s', 100),
        /** Longest time to receive a request's headers (at most `request_timeout`). */
        headers_timeout: durationString('10s', 100),
        /** Open connections per client IP address; further ones are closed at once. */
        max_connections_per_client: z.number().int().min(1).default(256),
        /**
         * Open connections that have not yet carried a successful request; beyond it the oldest of them is
         * closed, so that connections opened and left idle cannot crowd out honest clients.
         */
        max_unauthenticated_connections: z.number().int().min(1).default(1024),
        /**
         * Whether `/metrics`, which needs no token, shows tenant names in its `tenant` labels. `auto`: only
         * while `listen` is a loopback address; off, series are summed over tenants.
         */
        metrics_tenant_labels: z.union([z.boolean(), z.literal('auto')]).default('auto'),
        /** HTTPS on the listener, and client certificates for agents (docs/security.md, "TLS"). Absent: plain HTTP. */
        tls: tlsSchema.optional(),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /**
         * The tenant of requests without credentials, for the scopes in `anonymous_scopes`; null: every
         * request needs a token. trainwatch logs at start what anonymous callers may do (a warning when they
         * may send data from other machines).
         */
        anonymous_tenant: z
          .string()
          .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a tenant name: lowercase letters, digits, _ and -')
          .nullable()
          .default('default'),
        /**
         * What a request without a token may do, as `anonymous_tenant`: any of ingest, read, admin. The default
         * lets a local user open the dashboard of `trainwatch start`; sending data needs a token unless
         * `ingest` is listed here (the demo lists every scope).
         */
        anonymous_scopes: z.array(z.enum(['ingest', 'read', 'edit', 'admin'])).default(['read']),
        /** `loopback`: anonymous access only while `listen` is a loopback address; `anywhere`: always. */
        anonymous_from: z.enum(['loopback', 'anywhere']).default('loopback'),
        /** Single sign-on with OpenID Connect providers (docs/sso.md). */
        oidc: z
          .object({
            providers: z
              .array(oidcProvider)
              .default([])
              .superRefine((list, ctx) => {
                const seen = new Set<string>();
                for (const [i, p] of list.entries()) {
                  if (seen.has(p.id))
                    ctx.addIssue({
                      code: 'custom',
                      path: [i, 'id'],
                      message: `duplicate provider id ${p.id}`,
                    });
                  seen.add(p.id);
                }
              }),
          })
          .strict()
          .prefault({}),
        /**
         * User accounts with roles per tenant and login sessions (docs/security.md). On: requests need a
         * session or a token (the `anonymous_*` keys no longer apply), and the first start creates user
         * `admin` (operator) with the password in TRAINWATCH_ADMIN_PASSWORD, or a random one printed once.
         */
        users: z.boolean().default(false),
        /** A session unused this long ends (sign in again). */
        session_idle_timeout: durationString('12h', 1000),
        /** A session ends this long after sign-in, used or not. */
        session_max_age: durationString('7d', 1000),
        /** Failed logins per user name and client address within `login_failure_window`; beyond: 429. */
        login_max_failures: z.number().int().min(1).default(5),
        login_failure_window: durationString('5m', 1000),
        /** Audit events older than this are deleted (checked hourly). */
        audit_retention: durationString('90d', 60_000),
        /** The tenant the first admin is admin of (default: `anonymous_tenant`, else `default`). */
        first_admin_tenant: z
          .string()
          .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a tenant name: lowercase letters, digits, _ and -')
          .optional(),
      })
      .strict()
      .prefault({}),
    /** Per-tenant ingest limits: a tenant over a limit gets a 4xx naming it; other tenants are unaffected. */
    limits: z
      .object({
        /** Series that received a sample within `active_series_ttl_ms`, per tenant. New series beyond it: 400. */
        max_active_series: z.number().int().min(1).default(500_000),
        active_series_ttl_ms: z
          .number()
          .int()
          .min(1000)
          .default(15 * 60_000),
        /** Sustained samples per second per tenant (token bucket); beyond it: 429 with Retry-After. */
        samples_per_second: z.number().positive().default(1_000_000),
        /** Bucket size: samples a tenant may send at once above the sustained rate. */
        samples_burst: z.number().int().min(1).default(2_000_000),
      })
      .strict()
      .prefault({}),
    storage: z
      .object({
        /**
         * `embedded`: trainwatch's own TSDB in the data directory; `remote`: a Prometheus-compatible TSDB
         * (VictoriaMetrics single or cluster, Mimir, a managed Prometheus) written by remote-write and read
         * through its Prometheus HTTP API (docs/scaling.md).
         */
        kind: z.enum(['embedded', 'remote']).default('embedded'),
        remote: z
          .object({
            /** Remote-write endpoint, e.g. http://vminsert:8480/insert/0/prometheus/api/v1/write. */
            write_url: z.url().optional(),
            /** Prometheus HTTP API root (…/api/v1/query below it), e.g. http://vmselect:8481/select/0/prometheus. */
            query_url: z.url().optional(),
            /** `victoriametrics` reads raw samples with its export API; `prometheus` with range-vector queries. */
            flavor: z.enum(['prometheus', 'victoriametrics']).default('prometheus'),
            /** Extra headers on every request (e.g. X-Scope-OrgID for Mimir). */
            headers: z.record(z.string(), z.string()).default({}),
            /** Parallel senders; one series always goes through the same one, in order. */
            shards: z.number().int().min(1).max(256).default(4),
            max_samples_per_send: z.number().int().min(100).max(100_000).default(5000),
            /** Samples waiting to be sent before appends wait (backpressure onto the bus). */
            capacity: z.number().int().min(1000).default(500_000),
            timeout: durationString('30s', 100),
          })
          .strict()
          .prefault({}),
        /**
         * Head data is cut into blocks of this range; also the granularity of compaction (docs/storage.md). The head
         * holds up to this much data per series (plus half of it, at most 15 min), so it bounds memory for fast
         * series, and older data is read from blocks. Rollup tiers need a multiple of their resolution at some
         * compaction level (× 6, 36, 216, …): 10 min gives 10 s and 1 min at the cut, 1 h once six are joined.
         */
        block_duration: durationString('10m', 1000),
        /** Samples up to this much older than their series' newest sample are accepted and merged. */
        out_of_order_window: durationString('1h', 0),
        /** How long each tier is kept; whole blocks past it are deleted. `0` keeps a tier forever. */
        retention: z
          .object({
            raw: durationString('15d', 0),
            '10s': durationString('90d', 0),
            '1m': durationString('1y', 0),
            '1h': durationString('0', 0),
          })
          .strict()
          .prefault({}),
        /** Memory for block indexes; the least recently used are dropped beyond it. */
        block_cache_bytes: byteSize.default(512 << 20),
        /** Cold export: blocks whose data is older than this are also written as Parquet (`0` = off). */
        export_after: durationString('0', 0),
        /** Where the automatic export writes (default `<data_dir>/export`). */
        export_dir: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    processor: z
      .object({
        /** How often the processor asks storage to persist and then commits bus offsets. */
        checkpoint_interval_ms: z.number().int().min(10).max(600_000).default(2000),
        /** The detector state (src/processor/state.ts) is written at a checkpoint at most this often. */
        state_interval_ms: z.number().int().min(0).max(3_600_000).default(10_000),
        /**
         * Processor worker threads of the embedded mode (docs/scaling.md "Every core"): each owns the bus
         * partitions `p mod workers`, their detector state and one storage shard. Default: one per core. `0` runs
         * the processor and the storage on the main thread (as before 0.2). Fixed once a data directory holds
         * data (resharding is not supported yet).
         */
        workers: z
          .number()
          .int()
          .min(0)
          .max(256)
          .default(() => availableParallelism()),
        /**
         * Backpressure: while the processors are this many bus records behind (all partitions together), the
         * collector answers 503 with Retry-After, so clients back off before detection falls far behind.
         * `0` = never.
         */
        max_lag_records: z.number().int().min(0).default(50_000),
      })
      .strict()
      .prefault({}),
    /** Streaming detectors (docs/alerting.md): defaults suit the canonical metrics; overrides per tenant/job/metric. */
    detectors: detectorsConfigSchema.prefault({}),
    /** Receivers, routing, rule files, actions (docs/alerting.md). */
    alerting: alertingConfigSchema.prefault({}),
    /** PromQL and the Prometheus HTTP API (docs/promql.md); errors beyond a limit are Prometheus's. */
    query: z
      .object({
        /** Longest a query may run (Prometheus's --query.timeout); a request may ask for less. */
        timeout: durationString('2m', 1000),
        /** Most samples one query may hold in memory (Prometheus's --query.max-samples). */
        max_samples: z.number().int().min(1000).default(50_000_000),
        /** Most series one selector may select. */
        max_series: z.number().int().min(1).default(1_000_000),
        /** How far back an instant selector looks for a sample (Prometheus's --query.lookback-delta). */
        lookback_delta: durationString('5m', 1000),
        /** Live streams (Server-Sent Events: /api/tw/v1/live, /ticks) open at once on this server; beyond: 429. */
        max_live_streams: z.number().int().min(1).default(256),
        /** Live streams open at once per tenant; beyond: 429. */
        max_live_streams_per_tenant: z.number().int().min(1).default(32),
        /**
         * Most points a subquery may evaluate per series (its steps over the outer range plus its own range),
         * checked before it allocates: `x[30d:1ms]` is refused at once with a 422 naming the subquery and its
         * step (VictoriaMetrics's -search.maxPointsSubqueryPerTimeseries, 100,000).
         */
        max_subquery_points: z.number().int().min(100).default(100_000),
        /**
         * Query worker threads evaluating /api/v1/query and /query_range off the ingest event loop. Default:
         * one less than the cores (at least one). 0 evaluates in the server's own thread (no isolation).
         */
        workers: z.number().int().min(0).max(256).optional(),
        /**
         * Queries waiting for a free worker; one more is refused with 503 at once rather than queued without
         * bound (each waiting query holds its request and its deadline runs while it waits).
         */
        max_queued: z.number().int().min(0).max(100_000).default(64),
        /**
         * How long past its deadline a query worker may keep running before it is terminated and replaced:
         * the engine stops itself at the deadline between steps; this catches a query stuck inside one step.
         */
        terminate_grace: durationString('500ms', 0),
      })
      .strict()
      .prefault({}),
    /** Where jobs, tokens, alerts, silences and the outbox live: SQLite in the data directory, or PostgreSQL. */
    meta: z
      .object({
        kind: z.enum(['sqlite', 'postgres']).default('sqlite'),
        postgres: z
          .object({
            /** postgres://user:pass@host:5432/db — or `url_file`, a file holding it (a mounted secret). */
            url: z.string().min(1).optional(),
            url_file: z.string().min(1).optional(),
            pool_size: z.number().int().min(1).max(100).default(10),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        /** A running job with no sample for this long is shown as `unknown`. */
        silent_after_ms: z
          .number()
          .int()
          .min(1000)
          .default(5 * 60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.storage.kind === 'remote') {
      for (const key of ['write_url', 'query_url'] as const)
        if (!c.storage.remote[key])
          ctx.addIssue({
            code: 'custom',
            path: ['storage', 'remote', key],
            message: `storage.remote.${key} is required with storage.kind: remote`,
          });
    }
    if (c.auth.oidc.providers.length > 0 && !c.auth.users)
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'oidc', 'providers'],
        message: 'single sign-on signs in users: set auth.users: true with auth.oidc.providers',
      });
    if (c.meta.kind === 'postgres' && !c.meta.postgres.url && !c.meta.postgres.url_file)
      ctx.addIssue({
        code: 'custom',
        path: ['meta', 'postgres', 'url'],
        message: 'meta.postgres.url or meta.postgres.url_file is required with meta.kind: postgres',
      });
  });

export type Config = z.infer<typeof configSchema>;
