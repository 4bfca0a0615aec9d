/**
 * Roles as modules with one dependency map (the Mimir pattern, STYLE.md): `trainwatch start` runs the target
 * `all`; `--roles collector,processor` runs a subset with the same code. Each module has one init function;
 * modules start in dependency order (sinks before sources) and stop in reverse (sources first, so the
 * stages drain).
 *
 * The embedded engines (disk-log bus, storage, SQLite metadata) live in the data directory; a process that
 * runs several roles shares one instance of each.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { AlertingService, RuleQueryEvaluator } from '../alerting/index.js';
import type { AccessControl, AuditLog } from '../auth/index.js';
import type { Bus, DiskLogBus } from '../bus/index.js';
// Type only: the Kafka client is loaded when `bus.kind: kafka` asks for it, so the embedded mode never loads it.
import type { KafkaBus } from '../bus/kafka.js';
import type { Config, RoleName } from '../config/index.js';
import type { JobStore, MetaStore, OpenedMeta } from '../meta/index.js';
import type { DetectorEngine, Processor } from '../processor/index.js';
import { startQueryPool } from '../query/index.js';
import type { Storage } from '../storage/index.js';
import type { DataDirLock } from './data-dir.js';
import type { HttpServer } from './http.js';
import {
  initAuth,
  initBus,
  initDataDir,
  initHttp,
  initJobs,
  initMeta,
  initStorage,
} from './module-engines.js';
import { initAlerting, initCollector, initProcessor, initQuery, initUi } from './module-roles.js';
import type { ProcessorWorkers } from './processor-workers.js';

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

export class Modules {
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
  pool: ReturnType<typeof startQueryPool> | null | undefined;
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
   * The query worker pool (query/query-pool.ts), shared by the Prometheus API and the rules: started by the
   * first module that needs it (`name`), whose stoppers it joins. It then stops before that module's earlier
   * dependencies (storage, whose shards its workers read, and HTTP, whose close must not wait for a query) and
   * after every module started later. Undefined with `query.workers: 0`: PromQL then runs on this thread.
   */
  queryPool(name: ModuleName): NonNullable<ReturnType<typeof startQueryPool>> | undefined {
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
  ruleEvaluator(name: ModuleName): RuleQueryEvaluator | undefined {
    if (this.config.storage.kind === 'remote') return undefined;
    const pool = this.queryPool(name)?.pool;
    if (!pool) return undefined;
    const timeoutMs = this.config.query.timeout;
    return {
      evaluate: (tenant, query, time) => pool.evaluateRule({ tenant, query, time, timeoutMs }),
    };
  }

  async init(name: ModuleName): Promise<void> {
    // One case per module (shape like evaluator.ts's dispatch, different meaning); a lookup table here
    // made test/alerting/notifications-api.test.ts time out, for a reason not yet found.
    switch (name) {
      case 'dataDir':
        return await initDataDir(this, name);
      case 'http':
        return await initHttp(this, name);
      case 'auth':
        return await initAuth(this, name);
      case 'meta':
        return await initMeta(this, name);
      case 'jobs':
        return await initJobs(this, name);
      case 'bus':
        return await initBus(this, name);
      case 'storage':
        return await initStorage(this, name);
      case 'collector':
        return await initCollector(this);
      case 'alerting':
        return await initAlerting(this, name);
      case 'processor':
        return await initProcessor(this, name);
      case 'query':
        return await initQuery(this, name);
      case 'ui':
        return await initUi(this);
    }
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
