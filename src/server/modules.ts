/**
 * Roles as modules with one dependency map (the Mimir pattern, STYLE.md): `trainwatch start` runs the target
 * `all`; `--roles collector,processor` runs a subset with the same code. Each module has one init function;
 * modules start in dependency order (sinks before sources) and stop in reverse (sources first, so the
 * stages drain).
 *
 * The embedded engines (disk-log bus, storage, SQLite metadata) live in the data directory; a process that
 * runs several roles shares one instance of each.
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import {
  type AlertingCluster,
  type AlertingService,
  createAlerting,
  PgAlertStore,
  type RuleQueryEvaluator,
  registerAlertingApi,
} from '../alerting/index.js';
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
import { type Bus, DiskLogBus, hashPartitionKey } from '../bus/index.js';
// Type only: the Kafka client is loaded when `bus.kind: kafka` asks for it, so the embedded mode never loads it.
import type { KafkaBus } from '../bus/kafka.js';
import {
  BusWriter,
  createCollectorMetrics,
  IdempotencyWindow,
  type IngestLimits,
  IngestWorkers,
  registerCollector,
  TenantLimits,
  type TenantLimitsConfig,
} from '../collector/index.js';
import type { Config, RoleName } from '../config/index.js';
import { type JobStore, type MetaStore, type OpenedMeta, openMeta, postgresUrlOf } from '../meta/index.js';
import { DetectorEngine, DetectorSettings, Processor, withJobStatusFromAlerts } from '../processor/index.js';
import {
  LiveStreams,
  RemotePromql,
  registerDashboardApi,
  registerNodeApi,
  registerPromApi,
  registerRestApi,
  registerRunsApi,
  startQueryPool,
} from '../query/index.js';
import { RemoteStorage, type Storage } from '../storage/index.js';
import { type DataDirLock, lockDataDir } from './data-dir.js';
import { exportDirOf, openEmbeddedTsdb, shardLayout } from './embedded-storage.js';
import { createHttpServer, type HttpServer } from './http.js';
import { ProcessorWorkers } from './processor-workers.js';
import { registerUi } from './ui-assets.js';

export type ModuleName =
  | 'dataDir'
  | 'http'
  | 'auth'
  | 'bus'
  | 'storage'
  | 'meta'
  | 'jobs'
  | 'alerting'
  | RoleName;

/** What each module needs started before it. */
export const MODULE_DEPS: Readonly<Record<ModuleName, readonly ModuleName[]>> = {
  dataDir: [],
  http: [],
  auth: ['meta'],
  meta: ['dataDir', 'http'],
  jobs: ['meta'],
  bus: ['dataDir', 'http'],
  storage: ['dataDir', 'http'],
  collector: ['http', 'auth', 'bus'],
  /** Alert store, silences, grouping, notification outbox and their APIs; fed by the processor's detectors. */
  alerting: ['http', 'auth', 'meta', 'jobs', 'storage'],
  processor: ['bus', 'storage', 'jobs', 'alerting'],
  /** The alerting APIs are read by the dashboard: a query process serves them (and may lead dispatch). */
  query: ['http', 'auth', 'storage', 'jobs', 'alerting'],
  ui: ['http', 'query'],
};

/** The advisory-lock key every process contends for to dispatch alerts (any fixed 64-bit number). */
const ALERTING_LEADER_KEY = '7308613375148277315';

export const ALL_ROLES: readonly RoleName[] = ['collector', 'processor', 'query', 'ui'];

interface Stoppable {
  stop(): Promise<void> | void;
}

/** The processor as the program drives it: in this thread, or as worker threads (processor-workers.ts). */
export interface ProcessorHandle {
  /** Resolves once the bus has been replayed up to where it ended at start. */
  readonly caughtUp: Promise<void>;
  /** Makes what was processed durable and commits it now (tests; a planned stop does it anyway). */
  checkpoint(): Promise<void>;
}

/** The running program: its parts, for the CLI and for tests. */
export interface Trainwatch {
  readonly config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  /** The address actually bound (port 0 in the config picks a free one). */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly bus?: Bus;
  readonly storage?: Storage;
  readonly jobs?: JobStore;
  readonly processor?: ProcessorHandle;
  /** The processor worker threads, when the processor runs on them (`processor.workers` ≥ 1). */
  readonly processorWorkers?: ProcessorWorkers;
  readonly alerting?: AlertingService;
  /** The detector engine, when the processor runs in this thread (`processor.workers: 0`). */
  readonly detectors?: DetectorEngine;
  /** Access control: the authenticator (tokens, sessions, anonymous), the audit log, users and tokens. */
  readonly access?: AccessModule;
  /** Stops every module, sources first. Safe to call twice. */
  stop(): Promise<void>;
}

/** What the `auth` module runs. */
export interface AccessModule {
  readonly control: AccessControl;
  readonly audit: AuditLog;
  readonly store: OpenedMeta['access'];
  readonly tokenAdmin: OpenedMeta['tokenAdmin'];
}

class Modules {
  dataDir?: DataDirLock;
  http?: HttpServer;
  auth?: AccessControl;
  access?: AccessModule;
  /** The metadata store of `meta.kind`; `meta` is its SQLite database when that is the kind. */
  opened?: OpenedMeta;
  meta?: MetaStore;
  jobs?: JobStore;
  bus?: DiskLogBus | KafkaBus;
  storage?: Storage;
  processor?: Processor;
  workers?: ProcessorWorkers;
  alerting?: AlertingService;
  detectors?: DetectorEngine;
  /** The query worker pool once a module asked for it; null with `query.workers: 0` (see {@link queryPool}). */
  private pool: ReturnType<typeof startQueryPool> | null | undefined;
  /** Every module this process runs (the roles and what they need). */
  readonly running: ReadonlySet<ModuleName>;
  readonly stoppers: { name: ModuleName; stop: Stoppable['stop'] }[] = [];

  constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly registry: Registry,
  ) {
    this.running = new Set(moduleOrder(config.roles));
  }

  /**
   * Alerting scaled out (meta.kind postgres): alerts, silences, the notification log and the outbox in
   * PostgreSQL; the dispatcher and the notification sender run on whichever process holds the advisory lock.
   */
  private async alertingCluster(): Promise<AlertingCluster> {
    const { LeaderElection } = await import('../meta/postgres/index.js');
    const store = await PgAlertStore.open(this.opened!.postgres!);
    const election = new LeaderElection({
      connection: {
        url: postgresUrlOf(this.config.meta.postgres),
        applicationName: 'trainwatch alerting leader',
      },
      key: ALERTING_LEADER_KEY,
      onError: (err) => this.logger.warn({ err }, 'alerting leader election'),
    });
    election.onChange((leader) =>
      this.logger.info({ leader }, leader ? 'this process dispatches alerts' : 'alert dispatch is elsewhere'),
    );
    election.start();
    // Pushed before the alerting service's own stopper: stops after it (stoppers run in reverse).
    this.stoppers.push({ name: 'alerting', stop: () => election.stop() });
    return { store, leadership: election };
  }

  /**
   * The query worker pool (query/query-pool.ts), shared by the Prometheus API and the rules: started by the
   * first module that needs it (`name`), whose stoppers it joins. It then stops before that module's earlier
   * dependencies (storage, whose shards its workers read, and HTTP, whose close must not wait for a query) and
   * after every module started later. Undefined with `query.workers: 0`: PromQL then runs on this thread.
   */
  private queryPool(name: ModuleName): NonNullable<ReturnType<typeof startQueryPool>> | undefined {
    if (this.pool === undefined) {
      const pool = startQueryPool(
        this.storage!,
        this.config.query,
        this.registry,
        this.workers?.queryEndpoints,
      );
      this.pool = pool ?? null;
      if (pool) this.stoppers.push({ name, stop: () => pool.stop() });
    }
    return this.pool ?? undefined;
  }

  /**
   * Where the rules' PromQL runs: on the query workers, off the event loop that acknowledges writes (a heavy
   * rule costs it only the storage reads it asks for), with the query timeout and limits of `query:`. Only
   * for the embedded storage, as the Prometheus API (a remote TSDB's rules are read through its querier here).
   */
  private ruleEvaluator(name: ModuleName): RuleQueryEvaluator | undefined {
    if (this.config.storage.kind === 'remote') return undefined;
    const pool = this.queryPool(name)?.pool;
    if (!pool) return undefined;
    const timeoutMs = this.config.query.timeout;
    return {
      evaluate: (tenant, query, time) => pool.evaluateRule({ tenant, query, time, timeoutMs }),
    };
  }

  async init(name: ModuleName): Promise<void> {
    const { config, logger } = this;
    switch (name) {
      case 'dataDir': {
        const lock = lockDataDir(config.data_dir);
        this.dataDir = lock;
        this.stoppers.push({ name, stop: () => lock.release() });
        return;
      }
      case 'http': {
        this.http = createHttpServer({
          logger,
          registry: this.registry,
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
        const http = this.http;
        const app = http.app;
        if (http.tlsEnabled) {
          // Certificate renewal (cert-manager, certbot) ends with a SIGHUP: new connections get the new files.
          const reload = () => void http.reloadTls();
          process.on('SIGHUP', reload);
          this.stoppers.push({ name, stop: () => void process.off('SIGHUP', reload) });
        }
        this.stoppers.push({ name, stop: () => app.close() });
        return;
      }
      case 'auth': {
        // Tokens live in the metadata store (src/meta/tokens.ts). With `auth.users` requests need a session or a
        // token; without, requests without one get the anonymous policy of the configuration (docs/security.md).
        const opened = this.opened!;
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
        this.auth = control;
        this.access = { control, audit, store: opened.access, tokenAdmin: opened.tokenAdmin };
        this.http!.access.use(control);
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
        registerAuthApi(this.http!.app, authDeps);
        if (oidc) {
          const operatorTenant = config.auth.first_admin_tenant ?? config.auth.anonymous_tenant ?? 'default';
          registerOidcRoutes(this.http!.app, {
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
        this.stoppers.push({
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
      case 'meta': {
        // SQLite in the data directory, or PostgreSQL shared by every process (meta.kind).
        const opened = await openMeta(config, {
          sqliteFile: path.join(this.dataDir!.dir, 'meta.db'),
          applicationName: `trainwatch ${config.roles.join(',')}`,
          onError: (err) => logger.warn({ err }, 'metadata store'),
        });
        this.opened = opened;
        this.meta = opened.sqlite;
        this.stoppers.push({ name, stop: () => opened.close() });
        if (opened.postgres) {
          const pg = opened.postgres;
          this.http!.addReadinessCheck('meta', async (signal) => {
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
      case 'jobs': {
        const jobs = this.opened!.jobs;
        this.jobs = jobs;
        this.stoppers.push({ name, stop: () => jobs.flush() });
        return;
      }
      case 'bus': {
        const bus =
          config.bus.kind === 'kafka'
            ? await openKafkaBus(config, logger)
            : await DiskLogBus.open({
                dir: path.join(this.dataDir!.dir, 'bus'),
                partitions: config.bus.partitions,
                segmentBytes: config.bus.segment_bytes,
                rollCoveredBytes: config.bus.roll_covered_bytes,
                fsync: config.bus.fsync,
                fsyncIntervalMs: config.bus.fsync_interval_ms,
                maxQueuedBytes: config.bus.max_queued_bytes,
                logger: logger.child({ role: 'bus' }),
              });
        this.bus = bus;
        new Gauge({
          name: 'trainwatch_bus_queued_bytes',
          help: 'Bytes waiting to be written to the bus.',
          registers: [this.registry],
          collect() {
            this.set(bus.pendingBytes);
          },
        });
        if (bus instanceof DiskLogBus) {
          new Counter({
            name: 'trainwatch_bus_corrupt_records_total',
            help: 'Bus records lost to damage found when the embedded bus opened (see the error log and /readyz).',
            registers: [this.registry],
            collect() {
              this.reset();
              this.inc(bus.recoveryLosses().records);
            },
          });
          this.http!.addReadinessWarning('bus', () => {
            const { records, problems } = bus.recoveryLosses();
            if (problems.length === 0) return undefined;
            return `${records} record(s) lost to damage found at start: ${problems.join('; ')}`;
          });
        }
        this.stoppers.push({ name, stop: () => bus.close() });
        return;
      }
      case 'storage': {
        const sc = config.storage;
        if (sc.kind === 'remote') {
          const remote = openRemoteStorage(config, this.registry, logger);
          this.storage = remote;
          this.http!.addReadinessCheck('storage', (signal) =>
            probeRemoteTsdb(sc.remote.query_url!, sc.remote.headers, signal),
          );
          this.stoppers.push({ name, stop: () => remote.close() });
          return;
        }
        const dataDir = this.dataDir!.dir;
        const layout = shardLayout(dataDir, Math.max(1, config.processor.workers));
        let storage: Storage & { activeSeries(): number; readonly writeFailure: Error | undefined };
        if (this.running.has('processor') && (config.processor.workers >= 1 || layout.dirs.length > 1)) {
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
          this.workers = workers;
          storage = workers.storage;
          this.http!.addReadinessCheck('processor-workers', async () => workers.failure);
          this.http!.addMetricsSource(() => workers.metricsText());
          new Gauge({
            name: 'trainwatch_worker_lag_records',
            help: 'Bus records each processor worker has not processed yet.',
            labelNames: ['worker'],
            registers: [this.registry],
            collect() {
              this.reset();
              for (const [i, lag] of workers.workerLag.entries()) this.set({ worker: String(i) }, lag);
            },
          });
          this.stoppers.push({ name, stop: () => workers.stop() });
        } else {
          const tsdb = await openEmbeddedTsdb(
            config,
            layout.dirs[0]!,
            exportDirOf(config, dataDir),
            logger.child({ role: 'storage' }),
          );
          storage = tsdb;
          this.stoppers.push({ name, stop: () => tsdb.close() });
        }
        this.storage = storage;
        new Gauge({
          name: 'trainwatch_storage_active_series',
          help: 'Series with data in the storage head.',
          registers: [this.registry],
          collect() {
            this.set(storage.activeSeries());
          },
        });
        new Gauge({
          name: 'trainwatch_storage_writable',
          help: '1 while storage accepts writes; 0 after a write failed (disk full, unwritable directory).',
          registers: [this.registry],
          collect() {
            this.set(storage.writeFailure ? 0 : 1);
          },
        });
        // Not ready while writes are stopped (disk full): load balancers send writes elsewhere meanwhile.
        this.http!.addReadinessCheck('storage', async () => storage.writeFailure?.message);
        return;
      }
      case 'collector': {
        const limits = {
          maxBodyBytes: config.ingest.max_body_bytes,
          maxPayloadBytes: config.ingest.max_payload_bytes,
          maxLabelsPerSeries: config.ingest.max_labels_per_series,
          maxLabelValueBytes: config.ingest.max_label_value_bytes,
          maxLabelNameBytes: config.ingest.max_label_name_bytes,
          maxSamplesPerRequest: config.ingest.max_samples_per_request,
          maxInflightBytes: config.ingest.max_inflight_bytes,
        };
        const tenantLimits = {
          maxActiveSeries: config.limits.max_active_series,
          activeSeriesTtlMs: config.limits.active_series_ttl_ms,
          samplesPerSecond: config.limits.samples_per_second,
          samplesBurst: config.limits.samples_burst,
          series: limits,
          // The embedded TSDB drops samples older than this behind their series' newest: refuse them at
          // the door instead of acknowledging them. A remote TSDB applies its own rules.
          ...(config.storage.kind === 'embedded'
            ? { outOfOrderWindowMs: config.storage.out_of_order_window }
            : {}),
        };
        const engine =
          config.ingest.workers > 0
            ? await this.ingestWorkers(config.ingest.workers, limits, tenantLimits)
            : undefined;
        // Native, Prometheus remote-write and OTLP routes (docs/ingest.md).
        registerCollector(this.http!.app, {
          auth: this.auth!,
          busWriter: new BusWriter(this.bus!),
          idempotency: new IdempotencyWindow(config.ingest.dedup_window),
          tenants: new TenantLimits(tenantLimits),
          ...(engine ? { engine } : {}),
          declaredMetadata: this.opened!.metricMetadata,
          limits,
          metrics: createCollectorMetrics(this.registry),
          ...(this.workers && config.processor.max_lag_records > 0
            ? { backpressure: lagBackpressure(this.workers, config.processor.max_lag_records) }
            : {}),
        });
        return;
      }
      case 'alerting': {
        const cluster = this.opened?.postgres ? await this.alertingCluster() : undefined;
        const ruleEvaluator = config.alerting.rule_files.length > 0 ? this.ruleEvaluator(name) : undefined;
        const alerting = createAlerting({
          config: config.alerting,
          ...(cluster ? { cluster } : { meta: this.meta! }),
          jobs: this.jobs!,
          logger: logger.child({ role: 'alerting' }),
          registry: this.registry,
          listen: config.listen,
          storage: this.storage!,
          ...(ruleEvaluator ? { ruleEvaluator } : {}),
        });
        await alerting.start();
        this.alerting = alerting;
        registerAlertingApi(this.http!.app, {
          alerting,
          detectors: (tenant) => this.workers?.status(tenant) ?? this.detectors?.status(tenant),
          // In a cluster the rules run on the leader and change with each term: read them when asked.
          rules: { groups: (tenant) => alerting.rules?.groups(tenant) ?? [] },
        });
        this.stoppers.push({ name, stop: () => alerting.stop() });
        return;
      }
      case 'processor': {
        const alerting = this.alerting!;
        const workers = this.workers;
        if (workers) {
          await workers.startProcessing({
            bus: this.bus!,
            jobs: this.jobs!,
            hub: alerting.hub,
            // Embedded, the workers own every partition: alerts no worker's restored state holds are resolved.
            ...(this.opened?.postgres
              ? {}
              : {
                  onCaughtUp: () =>
                    void workers
                      .activeAlerts()
                      .then((open) =>
                        alerting.hub.reconcile('detector', new Set(open.map((a) => a.fingerprint))),
                      )
                      .catch((err) => logger.warn({ err }, 'reconciling detector alerts failed')),
                }),
          });
          // Leaving the group first (each worker checkpoints and commits) while the bus and alerting still run;
          // the storage module's stopper then closes the shards.
          this.stoppers.push({ name, stop: () => workers.stopProcessing() });
          return;
        }
        const engine = new DetectorEngine(
          new DetectorSettings(config.detectors),
          withJobStatusFromAlerts(alerting.hub, this.jobs!),
          { derived: true },
        );
        this.detectors = engine;
        const processor = new Processor(
          this.bus!,
          this.storage!,
          this.jobs!,
          logger.child({ role: 'processor' }),
          this.registry,
          {
            checkpointIntervalMs: config.processor.checkpoint_interval_ms,
            deadLetterDir: path.join(this.dataDir!.dir, 'processor', 'dead-letter'),
            analysis: {
              engine,
              stateDir: path.join(this.dataDir!.dir, 'processor'),
              stateIntervalMs: config.processor.state_interval_ms,
              // Embedded, one processor owns every partition: alerts its restored state no longer holds are
              // resolved. Scaled out, another processor may own them now, and a stored resolution is final.
              ...(this.opened?.postgres
                ? {
                    partitionStates: new (await import('../meta/postgres/index.js')).PgPartitionState(
                      this.opened.postgres,
                    ),
                  }
                : {
                    onCaughtUp: () =>
                      alerting.hub.reconcile(
                        'detector',
                        new Set(engine.activeAlerts().map((a) => a.fingerprint)),
                      ),
                  }),
              persistAlerts: () => alerting.hub.flush(),
            },
          },
        );
        await processor.start();
        this.processor = processor;
        this.stoppers.push({ name, stop: () => processor.stop() });
        return;
      }
      case 'query': {
        const queryDeps = {
          auth: this.auth!,
          storage: this.storage!,
          jobs: this.jobs!,
          liveStreams: new LiveStreams({
            maxStreams: config.query.max_live_streams,
            maxStreamsPerTenant: config.query.max_live_streams_per_tenant,
          }),
        };
        registerRestApi(this.http!.app, queryDeps);
        registerRunsApi(this.http!.app, { runs: this.jobs! });
        registerDashboardApi(this.http!.app, queryDeps);
        registerNodeApi(this.http!.app, queryDeps);
        const remote =
          config.storage.kind === 'remote'
            ? new RemotePromql({
                queryUrl: config.storage.remote.query_url!,
                headers: config.storage.remote.headers,
                timeoutMs: config.query.timeout,
              })
            : undefined;
        // PromQL off the ingest event loop (query-pool.ts); a remote TSDB evaluates its own queries.
        // Its stopper runs before http's (see queryPool): busy workers are terminated first, and closing the
        // server does not wait for their requests.
        const pool = remote ? undefined : this.queryPool(name);
        registerPromApi(this.http!.app, {
          auth: this.auth!,
          storage: this.storage!,
          metricMetadata: this.opened!.metricMetadata,
          ...(remote ? { remote } : {}),
          ...(pool ? { pool: pool.pool } : {}),
          limits: {
            timeoutMs: config.query.timeout,
            maxSamples: config.query.max_samples,
            maxSeries: config.query.max_series,
            lookbackDeltaMs: config.query.lookback_delta,
            maxSubqueryPoints: config.query.max_subquery_points,
          },
        });
        return;
      }
      case 'ui': {
        await registerUi(this.http!);
        return;
      }
    }
  }

  /**
   * The collector's decoding on `count` ingest worker threads (collector/ingest-workers.ts): `/readyz` fails
   * when one stopped, `/metrics` shows each one's load. Stopped after HTTP (stoppers run in reverse, HTTP
   * first), so requests in flight finish.
   */
  private async ingestWorkers(
    count: number,
    limits: IngestLimits,
    tenants: TenantLimitsConfig,
  ): Promise<IngestWorkers> {
    const workers = await IngestWorkers.open(count, { limits, tenants });
    this.stoppers.push({ name: 'collector', stop: () => workers.stop() });
    this.http!.addReadinessCheck('ingest-workers', async () => workers.failure);
    const gauge = (
      name: string,
      help: string,
      value: (s: ReturnType<IngestWorkers['stats']>[number]) => number,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [i, s] of workers.stats().entries()) this.set({ worker: String(i) }, value(s));
        },
      });
    gauge('trainwatch_ingest_worker_up', 'Whether each ingest worker thread runs (1) or stopped (0).', (s) =>
      s.up ? 1 : 0,
    );
    gauge(
      'trainwatch_ingest_worker_requests_in_flight',
      'Requests each ingest worker thread is decoding or has queued.',
      (s) => s.inFlight,
    );
    gauge(
      'trainwatch_ingest_worker_requests',
      'Requests each ingest worker thread was given since start.',
      (s) => s.requests,
    );
    gauge(
      'trainwatch_ingest_worker_utilization',
      'Share of time since start each ingest worker thread was busy (event-loop utilization).',
      (s) => s.utilization,
    );
    return workers;
  }
}

/** Resolves the roles to modules in dependency order. */
export function moduleOrder(roles: readonly (RoleName | 'all')[]): ModuleName[] {
  const wanted: ModuleName[] = roles.includes('all') ? [...ALL_ROLES] : [...(roles as RoleName[])];
  const order: ModuleName[] = [];
  const visit = (m: ModuleName, path: ModuleName[]) => {
    if (order.includes(m)) return;
    if (path.includes(m)) throw new Error(`module dependency cycle: ${[...path, m].join(' → ')}`);
    for (const d of MODULE_DEPS[m]) visit(d, [...path, m]);
    order.push(m);
  };
  for (const m of wanted) visit(m, []);
  return order;
}

/** Starts the configured roles and listens. On failure, whatever started is stopped again. */
export async function startTrainwatch(config: Config, logger: Logger): Promise<Trainwatch> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'trainwatch_' });
  const modules = new Modules(config, logger, registry);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Sources first: stop accepting requests, then drain the processor, then close the engines.
    const ordered = [...modules.stoppers]
      .reverse()
      .sort((a, b) => Number(b.name === 'http') - Number(a.name === 'http'));
    for (const s of ordered) {
      try {
        await s.stop();
      } catch (err) {
        logger.error({ err, module: s.name }, 'error while stopping');
      }
    }
  };
  try {
    const order = moduleOrder(config.roles);
    if (!order.includes('http')) await modules.init('http'); // health and /metrics for every process
    for (const m of order) await modules.init(m);
    const http = modules.http!;
    const colon = config.listen.lastIndexOf(':');
    const host = config.listen.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(config.listen.slice(colon + 1));
    const url = await http.app.listen({ host, port });
    modules.alerting?.setListenUrl(url);
    const processor: ProcessorHandle | undefined = modules.workers ?? modules.processor;
    if (processor && modules.running.has('processor')) {
      let caughtUp = false;
      void processor.caughtUp.then(() => {
        caughtUp = true;
        logger.info('processor caught up with the bus; ready');
      });
      http.addReadinessCheck('processor', async () => (caughtUp ? undefined : 'replaying the bus'));
    }
    logger.info(
      { url, roles: config.roles, dataDir: modules.dataDir?.dir },
      'trainwatch listening on %s',
      url,
    );
    return {
      config,
      logger,
      registry,
      url,
      app: http.app,
      bus: modules.bus,
      storage: modules.storage,
      jobs: modules.jobs,
      processor,
      processorWorkers: modules.workers,
      alerting: modules.alerting,
      detectors: modules.detectors,
      access: modules.access,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
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

/** The collector's pause while the processor workers are `maxLag` records or more behind the bus. */
function lagBackpressure(
  workers: ProcessorWorkers,
  maxLag: number,
): () => { reason: string; retryAfterSeconds: number } | undefined {
  return () => {
    const lag = workers.lagRecords;
    if (lag < maxLag) return undefined;
    return {
      reason: `trainwatch is catching up: the processors are ${lag} bus records behind and the limit is ${maxLag} (processor.max_lag_records); retry after 2 s`,
      retryAfterSeconds: 2,
    };
  };
}
