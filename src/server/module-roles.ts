/**
 * The init functions of the roles' pipeline stages (modules.ts dispatches to them): collector, alerting,
 * processor, query and UI, with the ingest worker threads, the alerting leader election and the collector's
 * back-pressure on processor lag. Separate from the shared engines (module-engines.ts) they are built on.
 */
import path from 'node:path';
import { Gauge } from 'prom-client';
import {
  type AlertingCluster,
  createAlerting,
  PgAlertStore,
  registerAlertingApi,
} from '../alerting/index.js';
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
import { postgresUrlOf } from '../meta/index.js';
import { DetectorEngine, DetectorSettings, Processor, withJobStatusFromAlerts } from '../processor/index.js';
import {
  LiveStreams,
  RemotePromql,
  registerDashboardApi,
  registerNodeApi,
  registerPromApi,
  registerRestApi,
  registerRunsApi,
} from '../query/index.js';
import type { ModuleName, Modules } from './modules.js';
import type { ProcessorWorkers } from './processor-workers.js';
import { registerUi } from './ui-assets.js';

/** The advisory-lock key every process contends for to dispatch alerts (any fixed 64-bit number). */
const ALERTING_LEADER_KEY = '7308613375148277315';

export async function initCollector(m: Modules): Promise<void> {
  const { config } = m;
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
    ...(config.storage.kind === 'embedded' ? { outOfOrderWindowMs: config.storage.out_of_order_window } : {}),
  };
  const engine =
    config.ingest.workers > 0
      ? await ingestWorkers(m, config.ingest.workers, limits, tenantLimits)
      : undefined;
  // Native, Prometheus remote-write and OTLP routes (docs/ingest.md).
  registerCollector(m.http!.app, {
    auth: m.auth!,
    busWriter: new BusWriter(m.bus!),
    idempotency: new IdempotencyWindow(config.ingest.dedup_window),
    tenants: new TenantLimits(tenantLimits),
    ...(engine ? { engine } : {}),
    declaredMetadata: m.opened!.metricMetadata,
    limits,
    metrics: createCollectorMetrics(m.registry),
    ...(m.workers && config.processor.max_lag_records > 0
      ? { backpressure: lagBackpressure(m.workers, config.processor.max_lag_records) }
      : {}),
  });
  return;
}

export async function initAlerting(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  const cluster = m.opened?.postgres ? await alertingCluster(m) : undefined;
  const ruleEvaluator = config.alerting.rule_files.length > 0 ? m.ruleEvaluator(name) : undefined;
  const alerting = createAlerting({
    config: config.alerting,
    ...(cluster ? { cluster } : { meta: m.meta! }),
    jobs: m.jobs!,
    logger: logger.child({ role: 'alerting' }),
    registry: m.registry,
    listen: config.listen,
    storage: m.storage!,
    ...(ruleEvaluator ? { ruleEvaluator } : {}),
  });
  await alerting.start();
  m.alerting = alerting;
  registerAlertingApi(m.http!.app, {
    alerting,
    detectors: (tenant) => m.workers?.status(tenant) ?? m.detectors?.status(tenant),
    // In a cluster the rules run on the leader and change with each term: read them when asked.
    rules: { groups: (tenant) => alerting.rules?.groups(tenant) ?? [] },
  });
  m.stoppers.push({ name, stop: () => alerting.stop() });
  return;
}

export async function initProcessor(m: Modules, name: ModuleName): Promise<void> {
  const { config, logger } = m;
  const alerting = m.alerting!;
  const workers = m.workers;
  if (workers) {
    await workers.startProcessing({
      bus: m.bus!,
      jobs: m.jobs!,
      hub: alerting.hub,
      // Embedded, the workers own every partition: alerts no worker's restored state holds are resolved.
      ...(m.opened?.postgres
        ? {}
        : {
            onCaughtUp: () =>
              void workers
                .activeAlerts()
                .then((open) => alerting.hub.reconcile('detector', new Set(open.map((a) => a.fingerprint))))
                .catch((err) => logger.warn({ err }, 'reconciling detector alerts failed')),
          }),
    });
    // Leaving the group first (each worker checkpoints and commits) while the bus and alerting still run;
    // the storage module's stopper then closes the shards.
    m.stoppers.push({ name, stop: () => workers.stopProcessing() });
    return;
  }
  const engine = new DetectorEngine(
    new DetectorSettings(config.detectors),
    withJobStatusFromAlerts(alerting.hub, m.jobs!),
    { derived: true },
  );
  m.detectors = engine;
  const processor = new Processor(
    m.bus!,
    m.storage!,
    m.jobs!,
    logger.child({ role: 'processor' }),
    m.registry,
    {
      checkpointIntervalMs: config.processor.checkpoint_interval_ms,
      deadLetterDir: path.join(m.dataDir!.dir, 'processor', 'dead-letter'),
      analysis: {
        engine,
        stateDir: path.join(m.dataDir!.dir, 'processor'),
        stateIntervalMs: config.processor.state_interval_ms,
        // Embedded, one processor owns every partition: alerts its restored state no longer holds are
        // resolved. Scaled out, another processor may own them now, and a stored resolution is final.
        ...(m.opened?.postgres
          ? {
              partitionStates: new (await import('../meta/postgres/index.js')).PgPartitionState(
                m.opened.postgres,
              ),
            }
          : {
              onCaughtUp: () =>
                alerting.hub.reconcile('detector', new Set(engine.activeAlerts().map((a) => a.fingerprint))),
            }),
        persistAlerts: () => alerting.hub.flush(),
      },
    },
  );
  await processor.start();
  m.processor = processor;
  m.stoppers.push({ name, stop: () => processor.stop() });
  return;
}

export async function initQuery(m: Modules, name: ModuleName): Promise<void> {
  const { config } = m;
  const queryDeps = {
    auth: m.auth!,
    storage: m.storage!,
    jobs: m.jobs!,
    liveStreams: new LiveStreams({
      maxStreams: config.query.max_live_streams,
      maxStreamsPerTenant: config.query.max_live_streams_per_tenant,
    }),
  };
  registerRestApi(m.http!.app, queryDeps);
  registerRunsApi(m.http!.app, { runs: m.jobs! });
  registerDashboardApi(m.http!.app, queryDeps);
  registerNodeApi(m.http!.app, queryDeps);
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
  const pool = remote ? undefined : m.queryPool(name);
  registerPromApi(m.http!.app, {
    auth: m.auth!,
    storage: m.storage!,
    metricMetadata: m.opened!.metricMetadata,
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

export async function initUi(m: Modules): Promise<void> {
  await registerUi(m.http!);
  return;
}

/**
 * Alerting scaled out (meta.kind postgres): alerts, silences, the notification log and the outbox in
 * PostgreSQL; the dispatcher and the notification sender run on whichever process holds the advisory lock.
 */
async function alertingCluster(m: Modules): Promise<AlertingCluster> {
  const { LeaderElection } = await import('../meta/postgres/index.js');
  const store = await PgAlertStore.open(m.opened!.postgres!);
  const election = new LeaderElection({
    connection: {
      url: postgresUrlOf(m.config.meta.postgres),
      applicationName: 'trainwatch alerting leader',
    },
    key: ALERTING_LEADER_KEY,
    onError: (err) => m.logger.warn({ err }, 'alerting leader election'),
  });
  election.onChange((leader) =>
    m.logger.info({ leader }, leader ? 'this process dispatches alerts' : 'alert dispatch is elsewhere'),
  );
  election.start();
  // Pushed before the alerting service's own stopper: stops after it (stoppers run in reverse).
  m.stoppers.push({ name: 'alerting', stop: () => election.stop() });
  return { store, leadership: election };
}

/**
 * The collector's decoding on `count` ingest worker threads (collector/ingest-workers.ts): `/readyz` fails
 * when one stopped, `/metrics` shows each one's load. Stopped after HTTP (stoppers run in reverse, HTTP
 * first), so requests in flight finish.
 */
async function ingestWorkers(
  m: Modules,
  count: number,
  limits: IngestLimits,
  tenants: TenantLimitsConfig,
): Promise<IngestWorkers> {
  const workers = await IngestWorkers.open(count, { limits, tenants });
  m.stoppers.push({ name: 'collector', stop: () => workers.stop() });
  m.http!.addReadinessCheck('ingest-workers', async () => workers.failure);
  const gauge = (
    name: string,
    help: string,
    value: (s: ReturnType<IngestWorkers['stats']>[number]) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['worker'],
      registers: [m.registry],
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
