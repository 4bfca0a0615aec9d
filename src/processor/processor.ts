/**
 * The processor: consumes every bus partition in offset order, appends samples to storage, applies job
 * events to the job store, and checkpoints.
 *
 * Checkpoint protocol (docs/durability.md): every `checkpointIntervalMs`, the processor asks storage to make
 * everything appended so far durable *and* to record the bus positions it covers; only after that resolves does
 * it commit those positions to the bus and let the bus drop segments below them. After a crash it resumes at
 * storage's covered positions, so a record is either covered by storage's durable state or replayed — never
 * lost — and replays are harmless because appends are idempotent.
 *
 * Stream analysis (optional, {@link ProcessorAnalysis}): each record is also handed to the detector engine,
 * which raises alerts within the processing of the offending batch and computes the derived per-job series
 * (appended to storage). The engine's state is checkpointed per bus partition, each with the offset it covers,
 * in a {@link PartitionStateStore} (files in the state directory, or PostgreSQL when scaled out). On assign,
 * the processor loads each partition's state into the engine (merged with the partitions it holds) and reads
 * the partition from the lower of storage's and the state's positions, giving storage every record and the
 * engine only those at or after the state's offset. On revoke it stops the partition's loop, saves its state,
 * commits, then drops it from the engine: the next owner continues its detectors and open alerts.
 *
 * Order invariant: a partition's state is saved before offsets are committed, and the committed offset never
 * passes the saved state's offset (nor storage's covered position), so the bus is truncated only below both
 * and neither ever misses a record.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { Counter as PromCounter, Gauge as PromGauge } from 'prom-client';
import {
  type Bus,
  type BusEntry,
  decodeBusRecordHeader,
  type GroupMember,
  seriesPartitionKey,
} from '../bus/index.js';
import { type JobStore, SUMMARY_GAUGES } from '../meta/index.js';
import type { SeriesBatch } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import type { LabelSet } from '../model/labels.js';
import type { KeyedSeriesBatch, SeriesRefCache, Storage } from '../storage/index.js';
import type { DetectorEngine, PartitionOf } from './detectors/engine.js';
import { FilePartitionStateStore, type PartitionStateStore } from './partition-state.js';
import { decodeRecord, RecordBatch, RecordShapes } from './record-decoder.js';
import { SeriesTable } from './series-table.js';
import { readState, removeState } from './state.js';

export const PROCESSOR_GROUP = 'processor';

const DEFAULT_SERIES_TTL_MS = 15 * 60_000;
/** `Processor.gaugeOfRef` entries: a series that feeds no summary gauge; one not looked up yet. */
const NO_GAUGE = 0xfe;
const GAUGE_UNKNOWN = 0xff;
/** How often the series table is swept for series nobody sends any more. */
const SWEEP_EVERY_MS = 60_000;

export interface ProcessorOptions {
  readonly checkpointIntervalMs: number;
  /** Bytes read from the bus per partition per round. */
  readonly readBytes?: number;
  readonly analysis?: ProcessorAnalysis;
  /** Series not read for this long (wall clock) leave the processor's series table. Default 15 minutes. */
  readonly seriesTtlMs?: number;
  /**
   * Where records that cannot be applied are kept (`<data-dir>/processor/dead-letter`): per record the bytes
   * (`<partition>-<offset>.record`) and the error (`.error.txt`). Without it they are only logged and counted.
   */
  readonly deadLetterDir?: string;
}

export interface ProcessorAnalysis {
  readonly engine: DetectorEngine;
  /**
   * The processor's local state directory (`<data-dir>/processor`): per-partition state files when no
   * `partitionStates` is given, and where the single state file of earlier builds is found and migrated.
   */
  readonly stateDir: string;
  /**
   * Where each partition's detector state is saved and loaded (hand-over between processors). Default: files
   * in `stateDir` ({@link FilePartitionStateStore}); scaled out, PostgreSQL's `PgPartitionState`.
   */
  readonly partitionStates?: PartitionStateStore;
  /** The engine's state is written at most this often (at a checkpoint); 0 = at every checkpoint. */
  readonly stateIntervalMs: number;
  /** How often the engine's wall-clock side runs (whole-job absence, forgetting series). */
  readonly tickMs?: number;
  /** Called once the processor has caught up with the bus (e.g. to reconcile alerts). */
  readonly onCaughtUp?: () => void;
  /**
   * Whether this processor moves a single-file state of earlier builds into per-partition states (default
   * true). Of several processors sharing one state directory (worker threads), exactly one does.
   */
  readonly migrateLegacyState?: boolean;
  /**
   * Called just before the engine's state is written: whoever persists the engine's alert changes lazily
   * (the alert hub) must have them on disk first, so a state file never covers a change that is not stored.
   * `false`: they could not be written; the state is then not written either (the next checkpoint retries).
   */
  readonly persistAlerts?: () => Promise<boolean | undefined> | boolean | undefined;
}

interface ProcessorMetrics {
  readonly records: Counter;
  readonly samples: Counter;
  readonly badRecords: Counter;
  readonly deadLetters: Counter;
  readonly stateSaves: Counter;
  readonly lag: Gauge;
}

export class Processor {
  /** Next offset to read, per partition. */
  private readonly positions = new Map<number, number>();
  private running = false;
  /** The consume loop of each partition this processor owns. */
  private readonly loops = new Map<number, { abort: AbortController; done: Promise<void> }>();
  /** This processor's membership in the processor consumer group (set once `start` joined). */
  private member: GroupMember | undefined;
  /** Whether the first assignment arrived (its replay decides `caughtUp`). */
  private firstAssignment = false;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;
  private readonly metrics: ProcessorMetrics;
  private caughtUpResolve: (() => void) | undefined;
  /** Resolves once every partition has been read up to the end it had at start (replay finished). */
  readonly caughtUp: Promise<void>;
  /** Per partition, the first offset the detector engine has not seen (records before it go to storage only). */
  private readonly analysisFrom = new Map<number, number>();
  /**
   * Per owned partition, the offset its saved detector state covers; commits never pass it (with analysis).
   * A partition without an entry has no state saved yet: it is not committed until the next state save.
   */
  private readonly statePositions = new Map<number, number>();
  private readonly stateStore: PartitionStateStore | undefined;
  /** The bus partition a series or job of the engine belongs to (as the collector keys records). */
  private readonly partitionOf: PartitionOf;
  private lastStateSaveMs = Number.NEGATIVE_INFINITY;
  private tickTimer: NodeJS.Timeout | undefined;
  private live = false;
  /** Closed while the detector state is written: no record is applied and the engine is not ticked. */
  private gate: Promise<void> | undefined;
  private releaseGate: (() => void) | undefined;
  /** Every series read from the bus, by the bytes of its labels (series-table.ts). */
  readonly series = new SeriesTable();
  /**
   * Decode buffers not in use. A record holds one from decoding until it was appended and analysed, so its batch
   * stays intact while its append is awaited, whatever other partitions' loops decode meanwhile. Embedded
   * appends settle at once and one buffer serves every partition; a remote TSDB's backpressure may hold a few.
   */
  private readonly freeRecords: RecordBatch[] = [];
  private readonly tenantSids = new Map<string, number>();
  /** Shapes of records decoded before: a record shaped like one of them skips its label lookups. */
  private readonly shapes = new RecordShapes();
  private lastSweepMs = Date.now();
  /**
   * The storage's refs of the series table's series, when the storage offers the keyed fast path
   * (Appender.appendKeyed: the embedded TSDB): appending a known series then skips storage's label lookup.
   */
  private readonly storageRefs: SeriesRefCache | undefined;
  /**
   * The job summaries' gauges fed by series read from the bus (meta/runs.ts): metric name sid and gauge index,
   * side by side. A handful, so a series' name is compared with each (no lookup by string).
   */
  private readonly gaugeSids: Int32Array;
  private readonly gaugeIndexes: Int32Array;
  /** The gauges fed by the derived per-job series (throughput sums), by metric name. */
  private readonly derivedGauges = new Map<string, number>();
  /**
   * Per series-table ref: the gauge its samples feed (an index of SUMMARY_GAUGES), NO_GAUGE, or GAUGE_UNKNOWN
   * when not looked up yet; reset when the sweep frees the ref. A record of known series costs one read per series.
   */
  private gaugeOfRef = new Uint8Array(1024).fill(GAUGE_UNKNOWN);

  constructor(
    private readonly bus: Bus,
    private readonly storage: Storage,
    private readonly jobs: JobStore,
    private readonly logger: Logger,
    registry: Registry,
    private readonly opts: ProcessorOptions,
  ) {
    this.caughtUp = new Promise((resolve) => {
      this.caughtUpResolve = resolve;
    });
    this.storageRefs = storage.appender.newSeriesRefCache?.();
    const sids: number[] = [];
    const indexes: number[] = [];
    SUMMARY_GAUGES.forEach((g, i) => {
      if (g.metric.startsWith('job_id:')) this.derivedGauges.set(g.metric, i);
      else {
        sids.push(this.series.internString(g.metric));
        indexes.push(i);
      }
    });
    this.gaugeSids = Int32Array.from(sids);
    this.gaugeIndexes = Int32Array.from(indexes);
    const analysis = opts.analysis;
    this.stateStore = analysis
      ? (analysis.partitionStates ?? new FilePartitionStateStore(analysis.stateDir))
      : undefined;
    this.partitionOf = (tenant, labels) => {
      // As the collector keys records (bus.ts); a series keyed by its sender alone is not placeable.
      const key = seriesPartitionKey(tenant, labels);
      return key === undefined ? undefined : bus.partitionOf(key);
    };
    this.metrics = {
      records: new PromCounter({
        name: 'trainwatch_processor_records_total',
        help: 'Bus records processed.',
        registers: [registry],
      }),
      samples: new PromCounter({
        name: 'trainwatch_processor_samples_total',
        help: 'Samples appended to storage.',
        registers: [registry],
      }),
      badRecords: new PromCounter({
        name: 'trainwatch_processor_bad_records_total',
        help: 'Bus records that could not be decoded and were skipped.',
        registers: [registry],
      }),
      deadLetters: new PromCounter({
        name: 'trainwatch_processor_dead_letter_records_total',
        help: 'Bus records that could not be applied and went to the dead-letter directory instead of stalling their partition.',
        registers: [registry],
      }),
      stateSaves: new PromCounter({
        name: 'trainwatch_processor_state_saves_total',
        help: 'Times the detector state of the owned partitions was written (at a checkpoint, at most every processor.state_interval_ms).',
        registers: [registry],
      }),
      lag: new PromGauge({
        name: 'trainwatch_processor_lag_records',
        help: 'Records in the bus not yet processed, by partition.',
        labelNames: ['partition'],
        registers: [registry],
        collect: () => this.updateLag(),
      }),
    };
    jobs.onDroppedDelta ??= (tenant, jobId, err) =>
      logger.error({ err, tenant, jobId }, 'dropped a job update that the job store cannot write');
  }

  /**
   * Joins the processor consumer group. Partitions arrive through the rebalance listener: each assigned
   * partition is read from the greater of storage's covered position and the group's committed offset (the
   * lower of that and the detector state's position while the engine catches up), in its own loop.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const analysis = this.opts.analysis;
    if (analysis && analysis.migrateLegacyState !== false) await this.migrateSingleState(analysis);
    this.member = await this.bus.join(PROCESSOR_GROUP, {
      onAssigned: (partitions, member) => {
        this.member = member;
        return this.assign(partitions);
      },
      onRevoked: (partitions, lost) => this.revoke(partitions, lost),
    });
    this.checkpointTimer = setInterval(() => void this.checkpoint(), this.opts.checkpointIntervalMs);
    if (analysis) {
      void this.caughtUp.then(() => {
        if (!this.running) return;
        this.live = true;
        analysis.onCaughtUp?.();
      });
      this.tickTimer = setInterval(() => {
        if (this.gate) return;
        void this.tick(analysis);
      }, analysis.tickMs ?? 1000);
      this.tickTimer.unref?.();
    }
  }

  private async tick(analysis: ProcessorAnalysis): Promise<void> {
    try {
      analysis.engine.tick(Date.now(), this.live);
      await this.appendDerived();
    } catch (err) {
      this.logger.error({ err }, 'detector tick failed');
    }
  }

  /** New partitions: where to resume each, then one consume loop each. */
  private async assign(partitions: readonly number[]): Promise<void> {
    const member = this.member!;
    const covered = this.storage.coveredPositions();
    const targets: number[] = [];
    for (const p of partitions) {
      const start = await member.startOffset(p);
      const storageFrom = Math.max(covered.get(p) ?? 0, await member.committed(p), start);
      let from = storageFrom;
      const saved = await this.restorePartition(p);
      if (saved !== undefined) {
        const engineFrom = saved;
        if (engineFrom < start)
          this.logger.warn(
            { partition: p, engineFrom, busStart: start },
            'detector state is older than the bus retains; detectors miss the records in between',
          );
        from = Math.min(storageFrom, Math.max(engineFrom, start));
        this.analysisFrom.set(p, Math.max(engineFrom, start));
      } else {
        this.analysisFrom.set(p, from);
      }
      this.positions.set(p, from);
      targets.push(await member.endOffset(p));
    }
    const replay = partitions.reduce((n, p, i) => n + targets[i]! - this.positions.get(p)!, 0);
    this.logger.info(
      { partitions, records: replay },
      'processor assigned partitions; replaying from checkpoint',
    );
    const first = !this.firstAssignment;
    this.firstAssignment = true;
    let pending = partitions.length;
    if (pending === 0 && first) this.caughtUpResolve?.();
    partitions.forEach((p, i) => {
      const abort = new AbortController();
      const loop = this.consume(p, targets[i]!, abort.signal, () => {
        if (--pending === 0 && first) this.caughtUpResolve?.();
      });
      this.loops.set(p, { abort, done: loop });
    });
  }

  /**
   * Partitions leaving this processor: their loops stop after the record in hand, then (unless they were
   * already taken away) a checkpoint makes what was read durable and commits it, so the next owner resumes
   * exactly there.
   */
  private async revoke(partitions: readonly number[], lost: boolean): Promise<void> {
    const stopping = partitions.map((p) => this.loops.get(p)).filter((l) => l !== undefined);
    for (const l of stopping) l.abort.abort();
    await Promise.all(stopping.map((l) => l.done));
    // The forced checkpoint flushes alert changes (persistAlerts), saves the state of every owned partition
    // (these included) with its offset, then commits: the next owner loads exactly what was applied here.
    if (!lost) await this.checkpoint(true);
    const engine = this.opts.analysis?.engine;
    if (engine) {
      // Not while a checkpoint encodes the engine; the state of these partitions lives on with their new owner
      // (lost: the new owner restores the last saved state and replays from the committed offset).
      while (this.gate) await this.gate;
      engine.dropPartitions(new Set(partitions), this.partitionOf);
    }
    for (const p of partitions) {
      this.loops.delete(p);
      this.positions.delete(p);
      this.analysisFrom.delete(p);
      this.statePositions.delete(p);
    }
    this.logger.info({ partitions, lost }, 'processor released partitions');
  }

  /**
   * Loads partition `p`'s saved detector state into the engine (merged with the partitions it holds); returns
   * the offset it covers, or undefined without one (the engine then starts the partition afresh).
   */
  private async restorePartition(p: number): Promise<number | undefined> {
    const analysis = this.opts.analysis;
    const store = this.stateStore;
    if (!analysis || !store) return undefined;
    try {
      const saved = await store.load(PROCESSOR_GROUP, p);
      if (!saved) return undefined;
      // Not in the middle of a checkpoint's encoding of the engine.
      while (this.gate) await this.gate;
      const restored = analysis.engine.restorePartition(saved.state);
      this.statePositions.set(p, saved.offset);
      this.logger.info(
        { partition: p, offset: saved.offset, savedAtMs: saved.savedAtMs, ...restored },
        'detector state of partition restored',
      );
      return saved.offset;
    } catch (err) {
      this.logger.error(
        { err, partition: p },
        'cannot restore the detector state of a partition; its detectors start afresh from the storage checkpoint',
      );
      return undefined;
    }
  }

  /**
   * Earlier builds kept one state file for every partition (`state.bin`, or `state.json`): restored once,
   * written out as per-partition states, then removed. A crash in between repeats this harmlessly (the store
   * refuses to move a partition's offset backwards).
   */
  private async migrateSingleState(analysis: ProcessorAnalysis): Promise<void> {
    try {
      const state = readState(analysis.stateDir);
      if (!state) return;
      const restored = state.restoreInto(analysis.engine);
      const offsets = new Map(state.positions);
      const parts = new Set(offsets.keys());
      const encoded = analysis.engine.snapshotPartitions(parts, this.partitionOf);
      analysis.engine.dropPartitions(parts, this.partitionOf);
      for (const [p, bytes] of encoded)
        await this.stateStore!.save(PROCESSOR_GROUP, p, offsets.get(p)!, bytes, state.savedAtMs);
      removeState(analysis.stateDir);
      this.logger.info(
        { savedAtMs: state.savedAtMs, format: state.version, partitions: parts.size, ...restored },
        'single detector state file migrated to per-partition states',
      );
    } catch (err) {
      this.logger.error(
        { err, dir: analysis.stateDir },
        'cannot migrate the detector state; detectors start afresh from the storage checkpoint',
      );
    }
  }

  private closeGate(): void {
    this.gate = new Promise<void>((resolve) => {
      this.releaseGate = resolve;
    });
  }

  private openGate(): void {
    const release = this.releaseGate;
    this.gate = undefined;
    this.releaseGate = undefined;
    release?.();
  }

  /** Leaves the group (a final checkpoint covers what was read) and stops consuming. */
  async stop(): Promise<void> {
    if (!this.running) return;
    clearInterval(this.checkpointTimer);
    clearInterval(this.tickTimer);
    // Leaving the group revokes every partition: loops stop, and the revoke's checkpoint commits what was read.
    await this.member?.leave();
    this.running = false;
    await Promise.all([...this.loops.values()].map((l) => l.done));
    await this.checkpointing;
  }

  /**
   * Persists job metadata, the detector state (when due, or `force`), then storage, and commits the bus
   * positions both cover. The detector state goes first: a crash in between leaves it ahead of storage, which
   * the restart handles (storage replays, the engine skips what it has seen).
   */
  checkpoint(force = false): Promise<void> {
    // A forced checkpoint (revoke, stop) must cover what was read up to now, not the snapshot of one in flight.
    if (this.checkpointing)
      return force ? this.checkpointing.then(() => this.checkpoint(true)) : this.checkpointing;
    this.checkpointing = (async () => {
      try {
        const positions = new Map(this.positions);
        await this.jobs.flush();
        const analysis = this.opts.analysis;
        // A partition without saved state (newly assigned, nothing to load) is not committed until it has one.
        let unsaved = false;
        for (const p of positions.keys()) if (!this.statePositions.has(p)) unsaved = true;
        if (
          analysis &&
          positions.size > 0 &&
          (force || unsaved || Date.now() - this.lastStateSaveMs >= analysis.stateIntervalMs) &&
          (await analysis.persistAlerts?.()) !== false
        ) {
          // Only records the engine has seen count: during a replay it may be behind the read position.
          const enginePositions = new Map<number, number>();
          for (const [p, offset] of positions)
            enginePositions.set(p, Math.max(offset, this.analysisFrom.get(p) ?? 0));
          // The engine must not change while its state is written in slices: records wait (they are safe in
          // the bus), HTTP and everything else keep being served between slices.
          const encoded = new Map<number, Uint8Array>();
          this.closeGate();
          try {
            for (const _ of analysis.engine.encodePartitions(
              new Set(enginePositions.keys()),
              this.partitionOf,
              encoded,
            ))
              await new Promise<void>((resolve) => setImmediate(resolve));
          } finally {
            this.openGate();
          }
          // The bytes are a copy: the engine moves on while they are written.
          const savedAtMs = Date.now();
          await Promise.all(
            [...encoded].map(async ([p, bytes]) => {
              const offset = enginePositions.get(p)!;
              if (await this.stateStore!.save(PROCESSOR_GROUP, p, offset, bytes, savedAtMs)) {
                // Revoked meanwhile: the entry would outlive the partition's ownership.
                if (this.positions.has(p)) this.statePositions.set(p, offset);
              } else
                this.logger.warn(
                  { partition: p, offset },
                  'a newer detector state of the partition is stored; it was rebalanced away',
                );
            }),
          );
          this.lastStateSaveMs = Date.now();
          this.metrics.stateSaves.inc();
        }
        await this.storage.checkpoint(positions);
        // Storage now holds everything read before `positions`. A storage that records positions (the embedded
        // TSDB) says so itself; a remote one is durable once it acknowledged and keeps none.
        const covered = this.storage.coveredPositions();
        const member = this.member;
        for (const [p, read] of positions) {
          const storageOffset = Math.min(covered.get(p) ?? read, read);
          let offset = storageOffset;
          if (analysis) {
            const stateOffset = this.statePositions.get(p);
            if (stateOffset === undefined) continue;
            offset = Math.min(storageOffset, stateOffset);
          }
          if (!member?.assignment.has(p)) continue;
          try {
            await member.commit(p, offset);
          } catch (err) {
            // Taken away by a rebalance meanwhile: the new owner resumes from the last commit and replays.
            this.logger.warn({ err, partition: p }, 'commit refused; partition was rebalanced away');
          }
        }
      } catch (err) {
        this.logger.error({ err }, 'processor checkpoint failed; will retry at the next interval');
      } finally {
        this.checkpointing = undefined;
      }
    })();
    return this.checkpointing;
  }

  private async consume(
    partition: number,
    replayTarget: number,
    signal: AbortSignal,
    onCaughtUp: () => void,
  ): Promise<void> {
    let caughtUp = false;
    const member = this.member!;
    // Half a megabyte per read: enough records to amortize the read, and no multi-megabyte buffer per read
    // (each read allocates its chunk; under backlog 4 MB reads kept tens of megabytes of garbage around).
    const readBytes = this.opts.readBytes ?? 512 << 10;
    while (this.running && !signal.aborted) {
      const from = this.positions.get(partition)!;
      if (!caughtUp && from >= replayTarget) {
        caughtUp = true;
        onCaughtUp();
      }
      let entries: BusEntry[];
      try {
        entries = await member.read(partition, from, readBytes, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.logger.error({ err, partition }, 'bus read failed; retrying');
        await sleep(500);
        continue;
      }
      if (entries.length === 0) {
        await member.waitFor(partition, from, 200, signal);
        continue;
      }
      while (this.gate) await this.gate;
      // Every record read is applied whole, even after an abort: positions never stop inside a batch's
      // records out of order, and the revoke's checkpoint covers exactly what was applied.
      for (const entry of entries) {
        // Not applied: stopping while storage was unavailable. The record is read again at the next start.
        if (!(await this.apply(entry.record, partition, entry.offset))) break;
        this.positions.set(partition, entry.offset + 1);
      }
      // Yield between batches so HTTP requests are served during a long replay.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!caughtUp) onCaughtUp();
  }

  /**
   * One bus record: decoded into series-table refs (no label object or key per known series), appended to
   * storage, its jobs' sample times noted, and handed to the detectors.
   */
  private async apply(record: Uint8Array, partition: number, offset: number): Promise<boolean> {
    const rb = this.freeRecords.pop() ?? new RecordBatch();
    try {
      return await this.applyWith(rb, record, partition, offset);
    } finally {
      this.freeRecords.push(rb);
    }
  }

  private async applyWith(
    rb: RecordBatch,
    record: Uint8Array,
    partition: number,
    offset: number,
  ): Promise<boolean> {
    let tenant: string;
    const nowMs = Date.now();
    try {
      const header = decodeBusRecordHeader(record);
      tenant = header.tenant;
      let tenantSid = this.tenantSids.get(tenant);
      if (tenantSid === undefined) {
        tenantSid = this.series.internString(tenant);
        this.tenantSids.set(tenant, tenantSid);
      }
      decodeRecord(
        record.subarray(header.payloadStart),
        tenantSid,
        this.series,
        rb,
        nowMs,
        undefined,
        this.shapes,
      );
    } catch (err) {
      // The collector validated this record before appending it; reaching here means a bug, disk corruption
      // that the CRC did not catch, or a record an earlier build let through. Skipping keeps every other
      // record flowing; the dead-letter copy keeps it for whoever investigates.
      this.metrics.badRecords.inc();
      await this.deadLetter(record, partition, offset, err, 'undecodable');
      return true;
    }
    const events = rb.events;
    try {
      for (const ev of events) this.jobs.applyEvent(tenant, ev);
    } catch (err) {
      // A job event the job store cannot take (issue 16, item 3): the record goes aside whole, nothing of it
      // applied past this point; the partition moves on.
      await this.deadLetter(record, partition, offset, err, 'job event not applicable');
      return true;
    }
    const analyze = this.opts.analysis !== undefined && offset >= (this.analysisFrom.get(partition) ?? 0);
    if (rb.sampleCount > 0) {
      for (let attempt = 0; ; attempt++) {
        try {
          const appender = this.storage.appender;
          if (this.storageRefs && appender.appendKeyed)
            await appender.appendKeyed(tenant, this.keyedBatch(rb), this.storageRefs);
          else await appender.append(tenant, this.storageBatch(rb));
          break;
        } catch (err) {
          if (err instanceof TrainwatchError && err.kind.retryable) {
            // Storage stopped (disk full) or unreachable: wait for it rather than skip what it will take
            // again once it resumes (issue 16, item 8). Nothing past this record is read meanwhile.
            if (!this.running) return false;
            if (attempt === 0)
              this.logger.warn(
                { err, partition, offset },
                'storage is not accepting writes; the partition waits',
              );
            await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
            continue;
          }
          // Limits are enforced by the collector before it acknowledges; storage refusing here means a limit
          // changed in between. The record goes aside rather than stall the partition.
          this.metrics.badRecords.inc();
          await this.deadLetter(record, partition, offset, err, 'storage refused the batch');
          return true;
        }
      }
      this.noteJobSamples(tenant, rb);
    }
    if (analyze) {
      // The storage append above may have finished while a checkpoint encodes the engine in slices: the engine
      // must not change until it is done, or the saved state would hold this record in some series and not in
      // others (a restore from it replayed the record halfway, and alerts re-opened a sample later).
      while (this.gate) await this.gate;
      await this.analyze(tenant, rb, partition, offset);
    }
    this.metrics.records.inc();
    this.metrics.samples.inc(rb.sampleCount);
    if (nowMs - this.lastSweepMs >= SWEEP_EVERY_MS) this.sweep(nowMs);
    return true;
  }

  /**
   * Sets a record that cannot be applied aside: counted, logged, and (with `deadLetterDir`) its bytes and
   * error written to files. Never throws: a failing dead-letter write must not stall the partition either.
   */
  private async deadLetter(
    record: Uint8Array,
    partition: number,
    offset: number,
    err: unknown,
    why: string,
  ): Promise<void> {
    this.metrics.deadLetters.inc();
    const dir = this.opts.deadLetterDir;
    const file = dir ? path.join(dir, `${partition}-${offset}`) : undefined;
    this.logger.error(
      { err, partition, offset, file: file && `${file}.record` },
      'bus record set aside (%s); the partition goes on',
      why,
    );
    if (!dir || !file) return;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(`${file}.record`, record, { mode: 0o600 });
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      await writeFile(`${file}.error.txt`, `${why}\n${message}\n`, { mode: 0o600 });
    } catch (writeErr) {
      this.logger.error({ err: writeErr, dir }, 'could not write the dead-letter record');
    }
  }

  /**
   * The record as storage's columnar batch: the series' label objects are the table's own (the same objects
   * every time, so storage hashes long-lived strings); the arrays are views of the reused decode buffers,
   * valid for the call (the Appender contract: a consumer copies what it keeps).
   */
  private storageBatch(rb: RecordBatch): SeriesBatch {
    const n = rb.seriesCount;
    const series = new Array<LabelSet>(n);
    const labels = this.series.labels;
    for (let e = 0; e < n; e++) series[e] = labels[rb.refs[e]!]!;
    return {
      series,
      offsets: rb.starts.subarray(0, n + 1),
      timestamps: rb.timestamps.subarray(0, rb.sampleCount),
      values: rb.values.subarray(0, rb.sampleCount),
      sampleCount: rb.sampleCount,
    };
  }

  /**
   * The record for Appender.appendKeyed: keyed by series-table refs (the table's label objects for series the
   * storage has not seen), the arrays the reused decode buffers (valid for the call).
   */
  private keyedBatch(rb: RecordBatch): KeyedSeriesBatch {
    return {
      seriesCount: rb.seriesCount,
      keys: rb.refs,
      labels: this.series.labels,
      labelIds: this.series,
      offsets: rb.starts,
      timestamps: rb.timestamps,
      values: rb.values,
      sampleCount: rb.sampleCount,
    };
  }

  /** Series not read for the TTL leave the table (and the engine's and storage's maps from table refs). */
  private sweep(nowMs: number): void {
    this.lastSweepMs = nowMs;
    const engine = this.opts.analysis?.engine;
    const storageRefs = this.storageRefs;
    this.series.sweep(nowMs - (this.opts.seriesTtlMs ?? DEFAULT_SERIES_TTL_MS), (ref) => {
      engine?.releaseRef(ref);
      storageRefs?.forget(ref);
      if (ref < this.gaugeOfRef.length) this.gaugeOfRef[ref] = GAUGE_UNKNOWN;
    });
  }

  /** Detectors and derived series; a failure here is logged and never stops the partition. */
  private analyze(tenant: string, rb: RecordBatch, partition: number, offset: number): Promise<void> {
    const engine = this.opts.analysis!.engine;
    try {
      if (rb.sampleCount > 0) engine.observeRecord(tenant, rb, this.series);
      if (rb.events.length > 0) engine.observeEvents(tenant, rb.events);
    } catch (err) {
      this.logger.error({ err, partition, offset, tenant }, 'detectors failed on a record; continuing');
    }
    return this.appendDerived();
  }

  private async appendDerived(): Promise<void> {
    const engine = this.opts.analysis?.engine;
    if (!engine) return;
    for (const [tenant, derived] of engine.takeDerived()) {
      this.noteDerivedGauges(tenant, derived);
      try {
        await this.storage.appender.append(tenant, derived);
        this.metrics.samples.inc(derived.sampleCount);
      } catch (err) {
        this.logger.error({ err, tenant }, 'storage refused derived series');
      }
    }
  }

  /**
   * One pass over the series (not the samples) of the record: each job's newest and oldest sample time, and
   * for a series of a summary gauge (loss, step, …) its newest and best sample.
   */
  private noteJobSamples(tenant: string, rb: RecordBatch): void {
    const jobSid = this.series.jobSid;
    const strings = this.series.strings;
    if (this.gaugeOfRef.length < this.series.refLimit) {
      const grown = new Uint8Array(Math.max(this.series.refLimit, this.gaugeOfRef.length * 2));
      grown.fill(GAUGE_UNKNOWN).set(this.gaugeOfRef);
      this.gaugeOfRef = grown;
    }
    const gaugeOfRef = this.gaugeOfRef;
    let lastJob = -1;
    let minT = Number.POSITIVE_INFINITY;
    let maxT = Number.NEGATIVE_INFINITY;
    const ts = rb.timestamps;
    for (let e = 0; e < rb.seriesCount; e++) {
      const ref = rb.refs[e]!;
      const job = jobSid[ref]!;
      if (job !== lastJob) {
        if (lastJob >= 0 && maxT >= minT) this.jobs.noteSamples(tenant, strings[lastJob]!, minT, maxT);
        lastJob = job;
        minT = Number.POSITIVE_INFINITY;
        maxT = Number.NEGATIVE_INFINITY;
      }
      if (job < 0) continue;
      const from = rb.starts[e]!;
      const to = rb.starts[e + 1]!;
      for (let j = from; j < to; j++) {
        const t = ts[j]!;
        if (t < minT) minT = t;
        if (t > maxT) maxT = t;
      }
      if (to > from) {
        let gauge = gaugeOfRef[ref]!;
        if (gauge === GAUGE_UNKNOWN) gauge = gaugeOfRef[ref] = this.gaugeOf(ref);
        if (gauge !== NO_GAUGE) this.noteGauge(tenant, strings[job]!, gauge, rb, from, to);
      }
    }
    if (lastJob >= 0 && maxT >= minT) this.jobs.noteSamples(tenant, strings[lastJob]!, minT, maxT);
  }

  /** The summary gauge series `ref` feeds, or NO_GAUGE. */
  private gaugeOf(ref: number): number {
    const name = this.series.nameSid(ref);
    for (let g = 0; g < this.gaugeSids.length; g++)
      if (this.gaugeSids[g] === name) return this.gaugeIndexes[g]!;
    return NO_GAUGE;
  }

  /** Gauge `gauge` of a job from samples `from..to` of a record's columns: the newest and the best finite one. */
  private noteGauge(
    tenant: string,
    jobId: string,
    gauge: number,
    cols: { readonly timestamps: ArrayLike<number>; readonly values: ArrayLike<number> },
    from: number,
    to: number,
  ): void {
    const ts = cols.timestamps;
    const vs = cols.values;
    const min = SUMMARY_GAUGES[gauge]!.best === 'min';
    let lastAt = from;
    let best = Number.NaN;
    for (let j = from; j < to; j++) {
      if (ts[j]! >= ts[lastAt]!) lastAt = j;
      const v = vs[j]!;
      if (Number.isFinite(v) && (Number.isNaN(best) || (min ? v < best : v > best))) best = v;
    }
    this.jobs.noteGauge(tenant, jobId, gauge, ts[lastAt]!, vs[lastAt]!, Number.isNaN(best) ? null : best);
  }

  /** Gauges fed by the derived per-job series (a few series per job per 10 s: labels are read directly). */
  private noteDerivedGauges(tenant: string, batch: SeriesBatch): void {
    for (let e = 0; e < batch.series.length; e++) {
      const labels = batch.series[e]!;
      const gauge = this.derivedGauges.get(labels.__name__ ?? '');
      const jobId = labels.job_id;
      const from = batch.offsets[e]!;
      const to = batch.offsets[e + 1]!;
      if (gauge !== undefined && jobId && to > from) this.noteGauge(tenant, jobId, gauge, batch, from, to);
    }
  }

  /** The next offset to read of each partition this processor owns (lag = the bus's end minus this). */
  get readPositions(): ReadonlyMap<number, number> {
    return this.positions;
  }

  /** Records not processed yet, per partition this processor owns (what lag-based autoscaling reads). */
  private async updateLag(): Promise<void> {
    const member = this.member;
    this.metrics.lag.reset();
    if (!member) return;
    for (const p of member.assignment) {
      try {
        const end = await member.endOffset(p);
        this.metrics.lag.set({ partition: String(p) }, Math.max(0, end - (this.positions.get(p) ?? end)));
      } catch {
        // Unreachable bus: no figure rather than a wrong one.
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
