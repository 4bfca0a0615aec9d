/**
 * The init functions of the shared engines every role stands on (modules.ts dispatches to them): the data
 * directory lock, the HTTP server, access control, the metadata store, the bus and the storage, with the
 * helpers that open the Kafka bus and a remote TSDB. Separate from the role modules (module-roles.ts), which
 * start the pipeline stages on top of these.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import {
  AccessControl,
  AuditLog,
  type AuthApiDeps,
  anonymousPolicyFor,
  ensureFirstAdmin,
  isLoopbackHost,
  issueSession,
  LoginLimiter,
  MtlsAuthenticator,
  NO_ANONYMOUS,
  OidcProviders,
  registerAuthApi,
  registerOidcRoutes,
  SessionCache,
  TokenAuthenticator,
  upsertOidcUser,
} from '../auth/index.js';
import { DiskLogBus, hashPartitionKey } from '../bus/index.js';
// Type only: the Kafka client is loaded when `bus.kind: kafka` asks for it, so the embedded mode never loads it.
import type { KafkaBus } from '../bus/kafka.js';
import type { Config } from '../config/index.js';
import { openMeta } from '../meta/index.js';
import { collectedCounter, collectedGauge } from '../model/collected-metrics.js';
import { RemoteStorage, type Storage } from '../storage/index.js';
import { lockDataDir } from './data-dir.js';
import { exportDirOf, openEmbeddedTsdb, shardLayout } from './embedded-storage.js';
import { createHttpServer } from './http.js';
import type { ModuleName, Modules } from './modules.js';
import { ProcessorWorkers } from './processor-workers.js';

export async function initDataDir(m: Modules, name: ModuleName): Promise<void> {
  const { config } = m;
  const lock = lockDataDir(config.data_dir);
  m.dataDir = lock;
  m.stoppers.push({ name, stop: () => lock.release() });
  return;
}

export async function initHttp(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  m.http = createHttpServer({
    logger,
    registry: m.registry,
    bodyLimit: config.ingest.max_body_bytes,
    connections: {
      requestTimeoutMs: config.http.request_timeout,
      headersTimeoutMs: config.http.headers_timeout,
      maxConnectionsPerClient: config.http.max_connections_per_client,
      maxUnauthenticatedConnections: config.http.max_unauthenticated_connections,
    },
    metricsTenantLabels:
      config.http.metrics_tenant_labels === 'auto'
        ? isLoopbackHost(config.listen.slice(0, config.listen.lastIndexOf(':')))
        : config.http.metrics_tenant_labels,
    ...(config.http.tls
      ? {
          tls: {
            certFile: config.http.tls.cert_file,
            keyFile: config.http.tls.key_file,
            clientCaFile: config.http.tls.client_ca_file,
            clientAuth: config.http.tls.client_auth,
            minVersion: config.http.tls.min_version,
          },
        }
      : {}),
  });
  const http = m.http;
  const app = http.app;
  if (http.tlsEnabled) {
    // Certificate renewal (cert-manager, certbot) ends with a SIGHUP: new connections get the new files.
    const reload = () => void http.reloadTls();
    process.on('SIGHUP', reload);
    m.stoppers.push({ name, stop: () => void process.off('SIGHUP', reload) });
  }
  m.stoppers.push({ name, stop: () => app.close() });
  return;
}

export async function initAuth(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  // Tokens live in the metadata store (src/meta/tokens.ts). With `auth.users` requests need a session or a
  // token; without, requests without one get the anonymous policy of the configuration (docs/security.md).
  const opened = m.opened!;
  const onError = (err: Error) => logger.warn({ err }, 'access control');
  const anonymous = anonymousPolicyFor(config.auth, config.listen);
  const policy = config.auth.users ? NO_ANONYMOUS : anonymous;
  const sessions = config.auth.users
    ? new SessionCache(
        opened.access,
        { idleMs: config.auth.session_idle_timeout, maxAgeMs: config.auth.session_max_age },
        onError,
      )
    : undefined;
  const tls = config.http.tls;
  const control = new AccessControl({
    tokens: new TokenAuthenticator(opened.tokens, policy),
    sessions,
    // With a client CA, a verified client certificate identifies an agent that sends no token.
    ...(tls?.client_ca_file !== undefined
      ? {
          certificates: new MtlsAuthenticator(new TokenAuthenticator(opened.tokens, policy), {
            clientTenants: tls.client_tenants,
            scopes: tls.client_scopes,
          }),
        }
      : {}),
  });
  const audit = new AuditLog(opened.access, config.auth.audit_retention, onError);
  m.auth = control;
  m.access = { control, audit, store: opened.access, tokenAdmin: opened.tokenAdmin };
  m.http!.access.use(control);
  // Single sign-on (docs/sso.md): the providers' buttons on the login page, their login and callback routes.
  const oidc =
    config.auth.oidc.providers.length > 0 ? new OidcProviders(config.auth.oidc.providers) : undefined;
  const authDeps: AuthApiDeps = {
    access: control,
    store: opened.access,
    tokenAdmin: opened.tokenAdmin,
    audit,
    loginLimiter: new LoginLimiter({
      maxFailures: config.auth.login_max_failures,
      windowMs: config.auth.login_failure_window,
    }),
    ...(oidc ? { oidcProviders: () => oidc.list() } : {}),
  };
  registerAuthApi(m.http!.app, authDeps);
  if (oidc) {
    const operatorTenant = config.auth.first_admin_tenant ?? config.auth.anonymous_tenant ?? 'default';
    registerOidcRoutes(m.http!.app, {
      providers: oidc,
      signIn: async (identity, req, reply) => {
        const user = await upsertOidcUser(opened.access, identity);
        // Roles are sorted by tenant: the session starts in the first; an operator without any role
        // starts in the first admin's tenant.
        const tenant = user.roles[0]?.tenant ?? operatorTenant;
        await issueSession(authDeps, req, reply, user, tenant, `oidc:${user.name}`);
      },
      onRefused: (r) =>
        audit.record({
          actor: `oidc:${r.provider}`,
          via: `oidc:${r.provider}`,
          tenant: '',
          action: 'login',
          target: r.reason.slice(0, 200),
          ip: r.ip,
          outcome: r.status === 403 ? 'denied' : 'failure',
        }),
    });
  }
  m.stoppers.push({
    name,
    stop: async () => {
      await sessions?.stop();
      await audit.stop();
    },
  });
  if (sessions) {
    await ensureFirstAdmin({
      store: opened.access,
      tenant: config.auth.first_admin_tenant ?? config.auth.anonymous_tenant ?? 'default',
      logger,
      audit,
      password: process.env.TRAINWATCH_ADMIN_PASSWORD,
    });
    logger.info('user login is on (auth.users): requests need a session or a token');
  } else if (policy.scopes.size > 0) {
    const scopes = [...policy.scopes].join(', ');
    (anonymous.loopback ? logger.info.bind(logger) : logger.warn.bind(logger))(
      { tenant: policy.tenant, scopes, listen: config.listen },
      'requests without a token may %s as tenant %s (auth.anonymous_scopes)',
      scopes,
      policy.tenant,
    );
  }
  return;
}

export async function initMeta(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  // SQLite in the data directory, or PostgreSQL shared by every process (meta.kind).
  const opened = await openMeta(config, {
    sqliteFile: path.join(m.dataDir!.dir, 'meta.db'),
    applicationName: `trainwatch ${config.roles.join(',')}`,
    onError: (err) => logger.warn({ err }, 'metadata store'),
  });
  m.opened = opened;
  m.meta = opened.sqlite;
  m.stoppers.push({ name, stop: () => opened.close() });
  if (opened.postgres) {
    const pg = opened.postgres;
    m.http!.addReadinessCheck('meta', async (signal) => {
      try {
        await pg.query('SELECT 1', [], signal);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    });
  }
  return;
}

export async function initJobs(m: Modules, name: ModuleName): Promise<void> {
  const jobs = m.opened!.jobs;
  m.jobs = jobs;
  m.stoppers.push({ name, stop: () => jobs.flush() });
  return;
}

export async function initBus(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  const bus =
    config.bus.kind === 'kafka'
      ? await openKafkaBus(config, logger)
      : await DiskLogBus.open({
          dir: path.join(m.dataDir!.dir, 'bus'),
          partitions: config.bus.partitions,
          segmentBytes: config.bus.segment_bytes,
          rollCoveredBytes: config.bus.roll_covered_bytes,
          fsync: config.bus.fsync,
          fsyncIntervalMs: config.bus.fsync_interval_ms,
          maxQueuedBytes: config.bus.max_queued_bytes,
          logger: logger.child({ role: 'bus' }),
        });
  m.bus = bus;
  collectedGauge(
    m.registry,
    'trainwatch_bus_queued_bytes',
    'Bytes waiting to be written to the bus.',
    () => bus.pendingBytes,
  );
  if (bus instanceof DiskLogBus) {
    collectedCounter(
      m.registry,
      'trainwatch_bus_corrupt_records_total',
      'Bus records lost to damage found when the embedded bus opened (see the error log and /readyz).',
      () => bus.recoveryLosses().records,
    );
    m.http!.addReadinessWarning('bus', () => {
      const { records, problems } = bus.recoveryLosses();
      if (problems.length === 0) return undefined;
      return `${records} record(s) lost to damage found at start: ${problems.join('; ')}`;
    });
  }
  m.stoppers.push({ name, stop: () => bus.close() });
  return;
}

export async function initStorage(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  const sc = config.storage;
  if (sc.kind === 'remote') {
    const remote = openRemoteStorage(config, m.registry, logger);
    m.storage = remote;
    m.http!.addReadinessCheck('storage', (signal) =>
      probeRemoteTsdb(sc.remote.query_url!, sc.remote.headers, signal),
    );
    m.stoppers.push({ name, stop: () => remote.close() });
    return;
  }
  const dataDir = m.dataDir!.dir;
  const layout = shardLayout(dataDir, Math.max(1, config.processor.workers));
  let storage: Storage & { activeSeries(): number; readonly writeFailure: Error | undefined };
  if (m.running.has('processor') && (config.processor.workers >= 1 || layout.dirs.length > 1)) {
    // The processor on every core: the shards live in its worker threads (processor-workers.ts).
    if (layout.note) logger.warn(layout.note);
    const partitions = config.bus.partitions;
    const workers = await ProcessorWorkers.open({
      config,
      shardDirs: layout.dirs,
      stateDir: path.join(dataDir, 'processor'),
      exportDir: exportDirOf(config, dataDir),
      partitionCount: partitions,
      partitionOf: (key) => hashPartitionKey(key) % partitions,
      logger: logger.child({ role: 'processor' }),
    });
    m.workers = workers;
    storage = workers.storage;
    m.http!.addReadinessCheck('processor-workers', async () => workers.failure);
    m.http!.addMetricsSource(() => workers.metricsText());
    new Gauge({
      name: 'trainwatch_worker_lag_records',
      help: 'Bus records each processor worker has not processed yet.',
      labelNames: ['worker'],
      registers: [m.registry],
      collect() {
        this.reset();
        for (const [i, lag] of workers.workerLag.entries()) this.set({ worker: String(i) }, lag);
      },
    });
    m.stoppers.push({ name, stop: () => workers.stop() });
  } else {
    const tsdb = await openEmbeddedTsdb(
      config,
      layout.dirs[0]!,
      exportDirOf(config, dataDir),
      logger.child({ role: 'storage' }),
    );
    storage = tsdb;
    m.stoppers.push({ name, stop: () => tsdb.close() });
  }
  m.storage = storage;
  collectedGauge(
    m.registry,
    'trainwatch_storage_active_series',
    'Series with data in the storage head.',
    () => storage.activeSeries(),
  );
  collectedGauge(
    m.registry,
    'trainwatch_storage_writable',
    '1 while storage accepts writes; 0 after a write failed (disk full, unwritable directory).',
    () => (storage.writeFailure ? 0 : 1),
  );
  // Not ready while writes are stopped (disk full): load balancers send writes elsewhere meanwhile.
  m.http!.addReadinessCheck('storage', async () => storage.writeFailure?.message);
  return;
}

/** The Kafka bus of `bus.kind: kafka` (docs/kafka.md); SASL's password is read from its file here. */
async function openKafkaBus(config: Config, logger: Logger): Promise<KafkaBus> {
  const k = config.bus.kafka;
  const sasl = k.sasl
    ? {
        mechanism: k.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
        username: k.sasl.username,
        password: readSecretFile(k.sasl.password_file, 'bus.kafka.sasl.password_file'),
      }
    : undefined;
  const tls = k.tls.enabled
    ? k.tls.ca_file
      ? { ca: readSecretFile(k.tls.ca_file, 'bus.kafka.tls.ca_file') }
      : {}
    : undefined;
  const { KafkaBus } = await import('../bus/kafka.js');
  return KafkaBus.open({
    brokers: k.brokers,
    topic: k.topic,
    partitions: config.bus.partitions,
    clientId: k.client_id,
    replicationFactor: k.replication_factor,
    sessionTimeoutMs: k.session_timeout,
    heartbeatIntervalMs: Math.max(100, Math.floor(k.session_timeout / 10)),
    rebalanceTimeoutMs: Math.max(k.rebalance_timeout, k.session_timeout),
    maxQueuedBytes: config.bus.max_queued_bytes,
    ...(sasl ? { sasl } : {}),
    ...(tls ? { tls } : {}),
    logger: logger.child({ role: 'bus', bus: 'kafka' }),
  });
}

/** The remote TSDB of `storage.kind: remote` (docs/remote-storage.md). */
function openRemoteStorage(config: Config, registry: Registry, logger: Logger): RemoteStorage {
  const r = config.storage.remote;
  return new RemoteStorage({
    writeUrl: r.write_url!,
    readUrl: r.query_url!,
    flavor: r.flavor,
    headers: r.headers,
    queue: {
      shards: r.shards,
      maxSamplesPerSend: r.max_samples_per_send,
      capacity: Math.max(r.max_samples_per_send, Math.ceil(r.capacity / r.shards)),
      requestTimeoutMs: r.timeout,
    },
    queryTimeoutMs: r.timeout,
    registry,
    logger: logger.child({ role: 'storage', storage: 'remote' }),
  });
}

/** Whether the remote TSDB answers a trivial query through its Prometheus API (`/readyz`). */
async function probeRemoteTsdb(
  queryUrl: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<string | undefined> {
  try {
    const res = await fetch(`${queryUrl.replace(/\/$/, '')}/api/v1/query?query=vector(1)`, {
      headers,
      signal,
    });
    await res.arrayBuffer();
    return res.ok ? undefined : `remote TSDB answered ${res.status} at ${queryUrl}`;
  } catch (err) {
    return `remote TSDB unreachable at ${queryUrl}: ${(err as Error).message}`;
  }
}

/** A secret mounted as a file (Kubernetes Secret); a missing file is a start-up error naming the key. */
function readSecretFile(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`${key}: cannot read ${file}: ${(err as Error).message}`);
  }
}
