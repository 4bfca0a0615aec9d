/**
 * The embedded processor on every core: N worker threads (processor-worker.ts), each owning the bus partitions
 * `p mod N = i`, the detector state of their jobs, and one storage shard. The main thread keeps what must
 * stay single: the bus (it appends and acknowledges), the consumer-group membership (it delegates the
 * partitions it owns), the metadata store (job deltas arrive over each worker's port) and the alert hub (alert
 * changes arrive in order, before the flush that persists them).
 *
 * Reads of the shards go through storage ports (storage/port): the main thread's {@link ShardedStorage} (REST,
 * dashboards, rules) and the query workers each hold one port per shard; a selection scoped to one job asks
 * one shard.
 *
 * Lifecycle: start → every worker opens its shard and its processor (replaying its head) → the main thread
 * joins the processor group and delegates partitions → `caughtUp` once every worker replayed the bus. Stop:
 * the main thread leaves the group (each worker stops its partitions, checkpoints and commits), then each worker
 * closes its shard and exits. A worker that dies is logged and fails readiness (`/readyz`): the process should
 * be restarted, and the restart recovers from the bus like after a kill -9.
 */
import { once } from 'node:events';
import path from 'node:path';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Alert, AlertChange, DetectorStatus } from '../alerting/contract.js';
import { type Bus, busPartitionHandlers, type GroupMember, seriesPartitionKey } from '../bus/index.js';
import type { Config } from '../config/index.js';
import type { JobDelta, JobStore } from '../meta/index.js';
import { type SeriesBatch, splitBatch } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import { PortRpc } from '../model/port-rpc.js';
import { startWorker } from '../model/worker-entry.js';
import { PROCESSOR_GROUP } from '../processor/index.js';
import {
  type AppendStats,
  type BusPositions,
  PortStorageReader,
  type Querier,
  type ShardRouting,
  type Storage,
  type StorageQueryEndpoints,
  sumAppendStats,
} from '../storage/index.js';
import type { ProcessorWorkerData, ProcessorWorkerStats } from './processor-worker.js';

/** The alert hub as the workers need it (alerting/hub.ts). */
export interface WorkerAlertHub {
  transition(alert: Alert, change: AlertChange): void;
  value?(alert: Alert, atMs: number): void;
  flush(): Promise<boolean>;
}

export interface ProcessorWorkersOptions {
  readonly config: Config;
  /** One directory per shard (embedded-storage.ts shardLayout): its length is the number of workers. */
  readonly shardDirs: readonly string[];
  readonly stateDir: string;
  readonly exportDir: string;
  /** The bus partition of a partition key (the collector's rule); its partition count. */
  readonly partitionCount: number;
  readonly partitionOf: (key: string) => number;
  readonly logger: Logger;
}

/** What the processors need of the main thread once they process (the second phase of the start). */
export interface ProcessingDeps {
  readonly bus: Bus;
  readonly jobs: JobStore;
  readonly hub: WorkerAlertHub;
  /** Called once when every worker has replayed the bus (e.g. to reconcile stored alerts). */
  readonly onCaughtUp?: () => void;
}

/** How often the main thread asks each worker for its positions and shard figures (lag, backpressure). */
const STATS_EVERY_MS = 250;

interface ShardWorker {
  readonly index: number;
  readonly worker: Worker;
  readonly rpc: PortRpc;
  stats: ProcessorWorkerStats;
  caughtUp: boolean;
  exited: boolean;
}

export class ProcessorWorkers {
  private readonly workers: ShardWorker[] = [];
  private member: GroupMember | undefined;
  private deps: ProcessingDeps | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private resolveCaughtUp!: () => void;
  /** Resolves once every worker has read the bus up to where it ended at start. */
  readonly caughtUp: Promise<void>;
  readonly storage: ShardedStorage;
  readonly routing: ShardRouting;
  /** Set when a worker died: the reason readiness fails. */
  failure: string | undefined;
  /** Bus records no worker has processed yet, at the last stats poll (backpressure reads it). */
  private lag = 0;
  private readonly lagByWorker: number[] = [];

  private constructor(private readonly opts: ProcessorWorkersOptions) {
    this.caughtUp = new Promise((r) => {
      this.resolveCaughtUp = r;
    });
    this.routing = { busPartitions: opts.partitionCount, shards: opts.shardDirs.length };
    this.storage = new ShardedStorage(this);
  }

  /**
   * Starts the workers and opens their shards: {@link storage} reads from here on. Processing starts with
   * {@link startProcessing}, once the stages it feeds (metadata, alerting) are up — they read storage first.
   */
  static async open(opts: ProcessorWorkersOptions): Promise<ProcessorWorkers> {
    const pool = new ProcessorWorkers(opts);
    try {
      await pool.startWorkers();
      pool.storage.connectReader();
      pool.statsTimer = setInterval(() => void pool.pollStats(), STATS_EVERY_MS);
      pool.statsTimer.unref();
      return pool;
    } catch (err) {
      await pool.stop();
      throw err;
    }
  }

  /** Starts every worker's processor and delegates the partitions this process owns in the group. */
  async startProcessing(deps: ProcessingDeps): Promise<void> {
    if (this.deps) throw new Error('the processor workers are processing already');
    this.deps = deps;
    await Promise.all(this.live().map((w) => w.rpc.call('startProcessor')));
    await this.joinGroup(deps.bus);
  }

  get size(): number {
    return this.workers.length;
  }

  /** The worker that owns bus partition `p`. */
  ownerOf(p: number): number {
    return p % this.workers.length;
  }

  /** Unprocessed bus records of every worker, as of the last poll (a quarter second old at most). */
  get lagRecords(): number {
    return this.lag;
  }

  /** Per worker, its unprocessed records (the `trainwatch_worker_lag_records` gauge). */
  get workerLag(): readonly number[] {
    return this.lagByWorker;
  }

  /** Series in the shards' heads, as of the last poll. */
  get activeSeries(): number {
    let n = 0;
    for (const w of this.workers) n += w.stats.activeSeries;
    return n;
  }

  get writeFailure(): string | undefined {
    for (const w of this.workers)
      if (w.stats.writeFailure) return `shard ${w.index}: ${w.stats.writeFailure}`;
    return undefined;
  }

  /** Ports to every shard for a reader in another thread (a query worker), with how series are spread. */
  get queryEndpoints(): StorageQueryEndpoints {
    return { connect: () => this.workers.map((w) => this.openReadPort(w)), routing: this.routing };
  }

  /** The bus partition of a partition key (the collector's rule). */
  partitionOf(key: string): number {
    return this.opts.partitionOf(key);
  }

  /** A new port on which worker `w` serves storage reads. */
  openReadPort(w: ShardWorker | number): MessagePort {
    const shard = typeof w === 'number' ? this.workers[w]! : w;
    const { port1, port2 } = new MessageChannel();
    void shard.rpc.call('serveStorage', port1, { transfer: [port1] }).catch((err) => {
      this.opts.logger.warn({ err, worker: shard.index }, 'a storage read port could not be opened');
      port2.close();
    });
    return port2;
  }

  /** Checkpoints every worker now (tests, and before a planned stop). */
  async checkpoint(): Promise<void> {
    await Promise.all(this.live().map((w) => w.rpc.call('checkpoint')));
  }

  /** The detectors' status for `tenant`, summed over the workers (each sees its own jobs). */
  async status(tenant: string): Promise<DetectorStatus[]> {
    const per = await Promise.all(this.live().map((w) => w.rpc.call<DetectorStatus[]>('status', tenant)));
    return mergeStatus(per);
  }

  async activeAlerts(): Promise<Alert[]> {
    return (await Promise.all(this.live().map((w) => w.rpc.call<Alert[]>('activeAlerts')))).flat();
  }

  /** The workers' own metrics in the Prometheus text format, summed per series (partitions are disjoint). */
  async metricsText(): Promise<string> {
    const per = await Promise.all(
      this.live().map((w) =>
        w.rpc
          .call<MetricObjectWithValues<MetricValue<string>>[]>('metrics')
          .catch(() => [] as MetricObjectWithValues<MetricValue<string>>[]),
      ),
    );
    if (per.length === 0) return '';
    return AggregatorRegistry.aggregate(per).metrics();
  }

  /**
   * Leaves the consumer group: every partition is revoked, so each worker stops reading, checkpoints and
   * commits. The shards keep serving reads until {@link stop}.
   */
  async stopProcessing(): Promise<void> {
    // The member stays set while it leaves: the revoked workers' last commits go through it.
    try {
      await this.member?.leave();
    } catch (err) {
      this.opts.logger.error({ err }, 'processor workers: leaving the group failed');
    }
    this.member = undefined;
  }

  /** Stops processing (if still), then every worker's processor and shard, and ends the threads. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.statsTimer) clearInterval(this.statsTimer);
    await this.stopProcessing();
    this.storage.closeReader();
    await Promise.all(
      this.live().map(async (w) => {
        try {
          await w.rpc.call('stop');
        } catch (err) {
          this.opts.logger.error({ err, worker: w.index }, 'processor worker did not stop cleanly');
        }
        w.rpc.close();
        await w.worker.terminate();
      }),
    );
  }

  // -------------------------------------------------------------------------------------------------------

  private live(): ShardWorker[] {
    return this.workers.filter((w) => !w.exited);
  }

  private async startWorkers(): Promise<void> {
    const { shardDirs, logger } = this.opts;
    const config = workerConfig(this.opts.config);
    for (let i = 0; i < shardDirs.length; i++) {
      const data: ProcessorWorkerData = {
        index: i,
        config,
        tsdbDir: shardDirs[i]!,
        stateDir: this.opts.stateDir,
        exportDir: this.opts.exportDir,
        migrateLegacyState: i === 0,
        deadLetterDir: path.join(this.opts.stateDir, 'dead-letter'),
        logLevel: logger.level,
      };
      const worker = startWorker(import.meta.url, 'processor-worker', {
        workerData: data,
        name: `processor-${i}`,
      });
      const shard: ShardWorker = {
        index: i,
        worker,
        rpc: new PortRpc(worker, this.handlersFor(i)),
        stats: { activeSeries: 0, writeFailure: null, positions: [] },
        caughtUp: false,
        exited: false,
      };
      worker.on('error', (err) => {
        logger.error({ err, worker: i }, 'processor worker failed');
        this.failure = `processor worker ${i} failed: ${err.message}`;
      });
      worker.once('exit', (code) => {
        shard.exited = true;
        shard.rpc.close(twError(Errors.unavailable, `processor worker ${i} exited`));
        if (!this.stopping) {
          this.failure ??= `processor worker ${i} exited with code ${code}`;
          logger.error(
            { worker: i, code },
            'processor worker exited; restart trainwatch to recover from the bus',
          );
        }
      });
      this.workers.push(shard);
    }
    // Each opens its shard (replaying its head log) in parallel.
    await Promise.all(
      this.workers.map((w) =>
        Promise.race([
          w.rpc.call('open'),
          once(w.worker, 'exit').then(([code]) => {
            throw new Error(`processor worker ${w.index} exited with code ${code} while starting`);
          }),
        ]),
      ),
    );
  }

  /** What worker `index` may call on the main thread. */
  private handlersFor(index: number) {
    const deps = (): ProcessingDeps => {
      if (!this.deps) throw twError(Errors.unavailable, 'the processors are not started');
      return this.deps;
    };
    return {
      ...busPartitionHandlers(
        () => this.member,
        (p) => this.ownerOf(p) === index,
      ),
      'jobs.upsert': (deltas: JobDelta[], signal: AbortSignal) => deps().jobs.rows.upsert(deltas, signal),
      'alerts.transition': (a: { alert: Alert; change: AlertChange }) =>
        deps().hub.transition(a.alert, a.change),
      'alerts.value': (a: { alert: Alert; atMs: number }) => deps().hub.value?.(a.alert, a.atMs),
      'alerts.flush': () => deps().hub.flush(),
      caughtUp: () => {
        this.workers[index]!.caughtUp = true;
        if (this.workers.every((x) => x.caughtUp)) {
          this.resolveCaughtUp();
          this.deps?.onCaughtUp?.();
        }
      },
    };
  }

  private async joinGroup(bus: Bus): Promise<void> {
    const split = (parts: readonly number[]) =>
      this.workers.map((w) => parts.filter((p) => this.ownerOf(p) === w.index));
    this.member = await bus.join(PROCESSOR_GROUP, {
      onAssigned: async (parts, member) => {
        this.member = member;
        const per = split(parts);
        await Promise.all(this.live().map((w) => w.rpc.call('assign', per[w.index])));
      },
      onRevoked: async (parts, lost) => {
        const per = split(parts);
        await Promise.all(
          this.live()
            .filter((w) => per[w.index]!.length > 0)
            .map((w) => w.rpc.call('revoke', { parts: per[w.index], lost })),
        );
      },
    });
  }

  private async pollStats(): Promise<void> {
    const member = this.member;
    await Promise.all(
      this.live().map(async (w) => {
        try {
          w.stats = await w.rpc.call<ProcessorWorkerStats>('stats');
          let lag = 0;
          if (member)
            for (const [p, pos] of w.stats.positions) lag += Math.max(0, (await member.endOffset(p)) - pos);
          this.lagByWorker[w.index] = lag;
        } catch {
          // A worker busy past the poll or stopping: keep its last figures.
        }
      }),
    );
    this.lag = this.lagByWorker.reduce((a, b) => a + (b ?? 0), 0);
  }
}

/** Detector status of several workers as one: counts summed, the latest evaluation, the worst state. */
function mergeStatus(per: readonly DetectorStatus[][]): DetectorStatus[] {
  const byName = new Map<string, DetectorStatus>();
  const rank = { inactive: 0, pending: 1, firing: 2 } as const;
  for (const list of per)
    for (const d of list) {
      const cur = byName.get(d.name);
      if (!cur) {
        byName.set(d.name, d);
        continue;
      }
      byName.set(d.name, {
        ...cur,
        tracked: cur.tracked + d.tracked,
        samples: cur.samples + d.samples,
        pending: cur.pending + d.pending,
        firing: cur.firing + d.firing,
        lastEvaluationMs:
          cur.lastEvaluationMs === null
            ? d.lastEvaluationMs
            : d.lastEvaluationMs === null
              ? cur.lastEvaluationMs
              : Math.max(cur.lastEvaluationMs, d.lastEvaluationMs),
        state: rank[d.state] > rank[cur.state] ? d.state : cur.state,
      });
    }
  return [...byName.values()];
}

/**
 * The storage shards as one {@link Storage}, for the main thread: reads fan out over storage ports (one shard
 * when a job is pinned), appends (recording rules) go to the shard of each series' partition. The shards
 * checkpoint themselves with their processors: `checkpoint` asks every worker to, `coveredPositions` is empty
 * (no processor in this thread resumes from it).
 */
export class ShardedStorage implements Storage {
  private reader: PortStorageReader | undefined;

  constructor(private readonly pool: ProcessorWorkers) {}

  connectReader(): void {
    const ports = Array.from({ length: this.pool.size }, (_, i) => this.pool.openReadPort(i));
    this.reader = new PortStorageReader(ports, this.pool.routing);
  }

  closeReader(): void {
    this.reader?.close();
    this.reader = undefined;
  }

  private get open(): PortStorageReader {
    if (!this.reader) throw twError(Errors.unavailable, 'the storage shards are not running');
    return this.reader;
  }

  readonly appender = {
    append: async (tenant: string, batch: SeriesBatch, signal?: AbortSignal): Promise<AppendStats> => {
      const reader = this.open;
      const parts = splitByShard(batch, tenant, this.pool);
      const stats = await Promise.all(
        [...parts].map(([shard, b]) => reader.append(shard, tenant, b, signal)),
      );
      return sumAppendStats(stats);
    },
  };

  querier(tenant: string | null, minT: number, maxT: number): Querier {
    return this.open.querier(tenant, minT, maxT);
  }

  checkpoint(_positions: BusPositions): Promise<void> {
    return this.pool.checkpoint();
  }

  coveredPositions(): BusPositions {
    return new Map();
  }

  async close(): Promise<void> {
    this.closeReader();
  }

  activeSeries(): number {
    return this.pool.activeSeries;
  }

  /** Why a shard refuses writes (disk full, …), as the embedded TSDB reports it. */
  get writeFailure(): Error | undefined {
    const why = this.pool.writeFailure;
    return why === undefined ? undefined : twError(Errors.unavailable, why);
  }
}

/** A batch split by the shard of each series' bus partition (unplaceable series go to shard 0). */
function splitByShard(batch: SeriesBatch, tenant: string, pool: ProcessorWorkers): Map<number, SeriesBatch> {
  if (pool.size === 1) return new Map([[0, batch]]);
  return splitBatch(batch, (labels) => {
    const key = seriesPartitionKey(tenant, labels);
    return key === undefined ? 0 : pool.ownerOf(pool.partitionOf(key));
  });
}

/**
 * The configuration a processor worker is given. The workers run no alert routing, and the routing tree's and
 * actions' matchers are compiled (a regex matcher holds a function), which a worker's data cannot carry:
 * `job_id=~".+"` in a route made `trainwatch start` fail with "could not be cloned". They stay in this thread.
 */
export function workerConfig(config: Config): Config {
  return {
    ...config,
    alerting: { ...config.alerting, route: { matchers: [], continue: false, routes: [] }, actions: [] },
  };
}
