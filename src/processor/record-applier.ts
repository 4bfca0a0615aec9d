/**
 * How the processor applies one bus record, the base of {@link Processor} (processor.ts): decoded into the
 * series table's refs, appended to storage (with the keyed fast path when storage offers it), its jobs' sample
 * times and summary gauges noted, handed to the detector engine (derived series appended back), and kept in
 * the dead-letter directory when it cannot be applied. This is the per-record path; the partitions' loops,
 * the checkpoint protocol and the hand-over of partitions that drive it are in processor.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { Counter as PromCounter, Gauge as PromGauge } from 'prom-client';
import { type Bus, decodeBusRecordHeader, type GroupMember, seriesPartitionKey } from '../bus/index.js';
import { type JobStore, SUMMARY_GAUGES } from '../meta/index.js';
import type { SeriesBatch } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import type { LabelSet } from '../model/labels.js';
import type { KeyedSeriesBatch, SeriesRefCache, Storage } from '../storage/index.js';
import type { DetectorEngine, PartitionOf } from './detectors/engine.js';
import { FilePartitionStateStore, type PartitionStateStore } from './partition-state.js';
import { decodeRecord, RecordBatch, RecordShapes } from './record-decoder.js';
import { SeriesTable } from './series-table.js';

export const DEFAULT_SERIES_TTL_MS = 15 * 60_000;
/** `Processor.gaugeOfRef` entries: a series that feeds no summary gauge; one not looked up yet. */
export const NO_GAUGE = 0xfe;
export const GAUGE_UNKNOWN = 0xff;
/** How often the series table is swept for series nobody sends any more. */
export const SWEEP_EVERY_MS = 60_000;

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

export interface ProcessorMetrics {
  readonly records: Counter;
  readonly samples: Counter;
  readonly badRecords: Counter;
  readonly deadLetters: Counter;
  readonly stateSaves: Counter;
  readonly lag: Gauge;
}

export abstract class RecordApplier {
  /** Next offset to read, per partition. */
  protected readonly positions = new Map<number, number>();
  protected running = false;
  /** The consume loop of each partition this processor owns. */
  protected readonly loops = new Map<number, { abort: AbortController; done: Promise<void> }>();
  /** This processor's membership in the processor consumer group (set once `start` joined). */
  protected member: GroupMember | undefined;
  /** Whether the first assignment arrived (its replay decides `caughtUp`). */
  protected firstAssignment = false;
  protected checkpointTimer: NodeJS.Timeout | undefined;
  protected checkpointing: Promise<void> | undefined;
  protected readonly metrics: ProcessorMetrics;
  protected caughtUpResolve: (() => void) | undefined;
  /** Resolves once every partition has been read up to the end it had at start (replay finished). */
  readonly caughtUp: Promise<void>;
  /** Per partition, the first offset the detector engine has not seen (records before it go to storage only). */
  protected readonly analysisFrom = new Map<number, number>();
  /**
   * Per owned partition, the offset its saved detector state covers; commits never pass it (with analysis).
   * A partition without an entry has no state saved yet: it is not committed until the next state save.
   */
  protected readonly statePositions = new Map<number, number>();
  /**
   * Per owned partition, the number of the assignment that gave it to this processor (a new one each time it
   * arrives; removed when it leaves). A checkpoint saves the state of a partition only while it is owned by the
   * same assignment as when the checkpoint began: one that left meanwhile has no state here any more (its
   * series were dropped), and saving that emptiness under its offset would wipe its previous owner's state.
   */
  protected readonly ownership = new Map<number, number>();
  protected assignments = 0;
  protected readonly stateStore: PartitionStateStore | undefined;
  /** The bus partition a series or job of the engine belongs to (as the collector keys records). */
  protected readonly partitionOf: PartitionOf;
  protected lastStateSaveMs = Number.NEGATIVE_INFINITY;
  protected tickTimer: NodeJS.Timeout | undefined;
  protected live = false;
  /** Closed while the detector state is written: no record is applied and the engine is not ticked. */
  protected gate: Promise<void> | undefined;
  protected releaseGate: (() => void) | undefined;
  /** Every series read from the bus, by the bytes of its labels (series-table.ts). */
  readonly series = new SeriesTable();
  /**
   * Decode buffers not in use. A record holds one from decoding until it was appended and analysed, so its batch
   * stays intact while its append is awaited, whatever other partitions' loops decode meanwhile. Embedded
   * appends settle at once and one buffer serves every partition; a remote TSDB's backpressure may hold a few.
   */
  protected readonly freeRecords: RecordBatch[] = [];
  protected readonly tenantSids = new Map<string, number>();
  /** Shapes of records decoded before: a record shaped like one of them skips its label lookups. */
  protected readonly shapes = new RecordShapes();
  protected lastSweepMs = Date.now();
  /**
   * The storage's refs of the series table's series, when the storage offers the keyed fast path
   * (Appender.appendKeyed: the embedded TSDB): appending a known series then skips storage's label lookup.
   */
  protected readonly storageRefs: SeriesRefCache | undefined;
  /**
   * The job summaries' gauges fed by series read from the bus (meta/runs.ts): metric name sid and gauge index,
   * side by side. A handful, so a series' name is compared with each (no lookup by string).
   */
  protected readonly gaugeSids: Int32Array;
  protected readonly gaugeIndexes: Int32Array;
  /** The gauges fed by the derived per-job series (throughput sums), by metric name. */
  protected readonly derivedGauges = new Map<string, number>();
  /**
   * Per series-table ref: the gauge its samples feed (an index of SUMMARY_GAUGES), NO_GAUGE, or GAUGE_UNKNOWN
   * when not looked up yet; reset when the sweep frees the ref. A record of known series costs one read per series.
   */
  protected gaugeOfRef = new Uint8Array(1024).fill(GAUGE_UNKNOWN);

  constructor(
    protected readonly bus: Bus,
    protected readonly storage: Storage,
    protected readonly jobs: JobStore,
    protected readonly logger: Logger,
    registry: Registry,
    protected readonly opts: ProcessorOptions,
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
   * One bus record: decoded into series-table refs (no label object or key per known series), appended to
   * storage, its jobs' sample times noted, and handed to the detectors.
   */
  protected async apply(record: Uint8Array, partition: number, offset: number): Promise<boolean> {
    const rb = this.freeRecords.pop() ?? new RecordBatch();
    try {
      return await this.applyWith(rb, record, partition, offset);
    } finally {
      this.freeRecords.push(rb);
    }
  }

  protected async applyWith(
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
  protected async deadLetter(
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
  protected storageBatch(rb: RecordBatch): SeriesBatch {
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
  protected keyedBatch(rb: RecordBatch): KeyedSeriesBatch {
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
  protected sweep(nowMs: number): void {
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
  protected analyze(tenant: string, rb: RecordBatch, partition: number, offset: number): Promise<void> {
    const engine = this.opts.analysis!.engine;
    try {
      if (rb.sampleCount > 0) engine.observeRecord(tenant, rb, this.series);
      if (rb.events.length > 0) engine.observeEvents(tenant, rb.events);
    } catch (err) {
      this.logger.error({ err, partition, offset, tenant }, 'detectors failed on a record; continuing');
    }
    return this.appendDerived();
  }

  protected async appendDerived(): Promise<void> {
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
  protected noteJobSamples(tenant: string, rb: RecordBatch): void {
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
  protected gaugeOf(ref: number): number {
    const name = this.series.nameSid(ref);
    for (let g = 0; g < this.gaugeSids.length; g++)
      if (this.gaugeSids[g] === name) return this.gaugeIndexes[g]!;
    return NO_GAUGE;
  }

  /** Gauge `gauge` of a job from samples `from..to` of a record's columns: the newest and the best finite one. */
  protected noteGauge(
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
  protected noteDerivedGauges(tenant: string, batch: SeriesBatch): void {
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
  protected async updateLag(): Promise<void> {
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

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
