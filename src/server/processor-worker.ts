/**
 * A processor worker thread (embedded mode, `processor.workers` ≥ 1): owns one storage shard (a TSDB in its own
 * directory), the detector state of the bus partitions delegated to it, and a {@link Processor} that consumes
 * them. It talks to the main thread over one port (processor-workers.ts): bus reads and commits, job metadata
 * deltas, alert changes; and it serves storage reads on ports the main thread hands it (queries, dashboards).
 *
 * Nothing on the hot path crosses threads but the bus records (one transferred buffer per read).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Alert, AlertChange, AlertSink } from '../alerting/contract.js';
import { DelegatedBus } from '../bus/index.js';
import type { Config } from '../config/index.js';
import { type JobDelta, type JobRowStore, JobStore } from '../meta/index.js';
import { PortRpc } from '../model/port-rpc.js';
import { DetectorEngine, DetectorSettings, Processor, withJobStatusFromAlerts } from '../processor/index.js';
import { serveStorageQueries, type Tsdb } from '../storage/index.js';
import { openEmbeddedTsdb } from './embedded-storage.js';

export interface ProcessorWorkerData {
  readonly index: number;
  readonly config: Config;
  /** This worker's storage shard. */
  readonly tsdbDir: string;
  /** Per-partition detector state files (shared by the workers: each writes only its partitions'). */
  readonly stateDir: string;
  /** Where the automatic export writes blocks (storage.export_after). */
  readonly exportDir: string;
  /** Only one worker migrates a single-file state of earlier builds. */
  readonly migrateLegacyState: boolean;
  /** Where records that cannot be applied are set aside (shared: file names carry partition and offset). */
  readonly deadLetterDir: string;
  /** The main thread's log level (its logger may be quieter than the configuration, e.g. in tests). */
  readonly logLevel: string;
}

/** What a worker reports on each poll (processor-workers.ts keeps the latest). */
export interface ProcessorWorkerStats {
  readonly activeSeries: number;
  /** Why the shard refuses writes (disk full, …), or null. */
  readonly writeFailure: string | null;
  /** [partition, next offset to read] of each partition the worker owns. */
  readonly positions: [number, number][];
}

const data = workerData as ProcessorWorkerData;
const port = parentPort!;
const logger = pino({
  name: 'trainwatch',
  level: data.logLevel,
  base: { pid: process.pid, worker: data.index },
  timestamp: pino.stdTimeFunctions.isoTime,
});
const registry = new Registry();
const storageRequests = new Counter({
  name: 'trainwatch_worker_storage_requests_total',
  help: 'Reads (and appends) each processor worker served from its storage shard, by kind: a selection pinned to one job reaches one shard.',
  labelNames: ['worker', 'op'],
  registers: [registry],
});
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

let tsdb: Tsdb | undefined;
let processor: Processor | undefined;
let engine: DetectorEngine | undefined;
let bus: DelegatedBus | undefined;

/** Job metadata is written by the main thread (one writer to the metadata store): deltas cross the port. */
class MainThreadJobRows implements JobRowStore {
  async upsert(deltas: readonly JobDelta[], signal?: AbortSignal): Promise<void> {
    await rpc.call('jobs.upsert', deltas, signal ? { signal } : {});
  }
  get(): never {
    throw new Error('a processor worker does not read job metadata');
  }
  list(): never {
    throw new Error('a processor worker does not read job metadata');
  }
}

/** The alert hub is on the main thread; changes cross in order, before the flush that persists them. */
const alertSink: AlertSink = {
  transition: (alert: Alert, change: AlertChange) => rpc.note('alerts.transition', { alert, change }),
  value: (alert: Alert, atMs: number) => rpc.note('alerts.value', { alert, atMs }),
};

const rpc: PortRpc = new PortRpc(port, {
  /** Opens the storage shard (replaying its head log): reads can be served from here on. */
  open: async () => {
    tsdb = await openEmbeddedTsdb(
      data.config,
      data.tsdbDir,
      data.exportDir,
      logger.child({ role: 'storage', shard: data.index }),
    );
  },
  /** Starts the processor; its partitions arrive with `assign`. */
  startProcessor: async () => {
    const config = data.config;
    if (!tsdb) throw new Error('the storage shard is not open');
    const jobs = new JobStore(new MainThreadJobRows());
    engine = new DetectorEngine(
      new DetectorSettings(config.detectors),
      withJobStatusFromAlerts(alertSink, jobs),
      { derived: true },
    );
    bus = new DelegatedBus(rpc, config.bus.partitions);
    new Gauge({
      name: 'trainwatch_worker_event_loop_delay_seconds',
      help: 'Event-loop delay of each processor worker (p99 over the last scrape interval).',
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.set({ worker: String(data.index) }, loopDelay.percentile(99) / 1e9);
        loopDelay.reset();
      },
    });
    processor = new Processor(bus, tsdb, jobs, logger.child({ role: 'processor' }), registry, {
      checkpointIntervalMs: config.processor.checkpoint_interval_ms,
      deadLetterDir: data.deadLetterDir,
      analysis: {
        engine,
        stateDir: data.stateDir,
        stateIntervalMs: config.processor.state_interval_ms,
        migrateLegacyState: data.migrateLegacyState,
        onCaughtUp: () => rpc.note('caughtUp'),
        persistAlerts: () => rpc.call<boolean>('alerts.flush'),
      },
    });
    await processor.start();
  },
  assign: (parts: number[]) => bus!.assign(parts),
  revoke: (a: { parts: number[]; lost: boolean }) => bus!.revoke(a.parts, a.lost),
  checkpoint: () => processor!.checkpoint(true),
  status: (tenant: string) => engine?.status(tenant) ?? [],
  activeAlerts: () => engine?.activeAlerts() ?? [],
  metrics: () => registry.getMetricsAsJSON(),
  stats: (): ProcessorWorkerStats => ({
    activeSeries: tsdb?.activeSeries() ?? 0,
    writeFailure: tsdb?.writeFailure?.message ?? null,
    positions: [...(processor?.readPositions ?? [])],
  }),
  serveStorage: (reads: MessagePort) => {
    if (!tsdb) throw new Error('the storage shard is not open yet');
    serveStorageQueries(reads, tsdb, (op) => storageRequests.inc({ worker: String(data.index), op }));
  },
  stop: async () => {
    await processor?.stop();
    await tsdb?.close();
    loopDelay.disable();
  },
});
