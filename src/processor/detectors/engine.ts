/**
 * The streaming detector engine: the processor hands it every batch in bus order; it keeps per-series and
 * per-job state, evaluates the detectors as samples arrive (so an alert is raised within the processing of
 * the offending batch), and reports alert changes to its {@link AlertSink} through an {@link AlertTracker}.
 *
 * Clocks: detectors run on event time (sample timestamps), so replaying the bus reproduces the same alerts
 * with the same timestamps. Only whole-job absence and forgetting series need the wall clock; they run in
 * {@link DetectorEngine.tick}, which the processor calls once it has caught up with the bus.
 *
 * Idempotency: a sample not newer than the series' newest is ignored, so a record applied twice (a retried
 * batch appended again) changes nothing. State is plain data ({@link DetectorEngine.snapshot}).
 *
 * Cost (DESIGN.md, performance contract). Each series the engine analyses has a dense index (*dref*) into
 * typed-array columns (newest time and value, node slot, its detector slots), and each detector keeps its
 * state in columns of its own, indexed by slot (series-detectors.ts): a sample costs a handful of array reads
 * and writes, a `switch` per detector of its series, and no allocation or lookup by key. The processor finds
 * the dref of a series by its series-table ref ({@link DetectorEngine.observeRecord}: one array read); other
 * callers hand label objects ({@link DetectorEngine.observe}), found by a hash of their labels once per series
 * per batch. Alert identities (labels, fingerprint) are built when an alert is first raised, not per series.
 */
import {
  type Alert,
  type DetectorStatus as AlertingDetectorStatus,
  type AlertRule,
  type AlertSink,
  AlertTracker,
  type AlertTrackerSnapshot,
  fingerprint,
  type Severity,
} from '../../alerting/contract.js';
import { isStaleNaN, type SeriesBatch } from '../../model/batch.js';
import type { JobEvent } from '../../model/job.js';
import type { LabelSet } from '../../model/labels.js';
import {
  DERIVED,
  DerivedAccumulator,
  DerivedFamily,
  DerivedOutput,
  type DerivedSnapshot,
} from '../derived.js';
import type { RecordBatch } from '../record-decoder.js';
import type { SeriesTable } from '../series-table.js';
import { StateFormatError, StateReader, StateWriter } from '../state.js';
import {
  DETECTOR_NAMES,
  type DetectorName,
  type DetectorParams,
  type DetectorSettings,
  matchesAny,
  type ThresholdRule,
} from './config.js';
import type { AlertIdentity, DetectorContext } from './context.js';
import {
  type JobSnapshot,
  JobState,
  jobKey,
  PhaseFamily,
  StepFamily,
  StragglerFamily,
} from './job-detectors.js';
import { phaseCode } from './phase.js';
import {
  AnomalyFamily,
  EccFamily,
  type Family,
  growF64,
  growI32,
  LossSpikeFamily,
  LossTrendFamily,
  MemoryLeakFamily,
  NonFiniteFamily,
  PlateauFamily,
  ThresholdFamily,
  ThrottleFamily,
  ThroughputFamily,
  WasteFamily,
} from './series-detectors.js';
import {
  DETECTOR_ALERTS,
  DETECTOR_DESCRIPTIONS,
  type DetectorFamily,
  type FamilyName,
  type SeriesInfo,
} from './types.js';

export interface EngineOptions {
  /** Series without a sample for this long (wall clock, while live) are forgotten. */
  readonly seriesTtlMs?: number;
  /** Compute the derived per-job series (src/processor/derived.ts); collect them with `takeDerived`. */
  readonly derived?: boolean;
}

export interface EngineSnapshot {
  readonly version: 1;
  readonly jobs: JobSnapshot[];
  readonly derived?: [string, string, DerivedSnapshot][];
  readonly series: { l: LabelSet; t: number; v: number | null; d: Record<string, unknown> }[];
  readonly members: [string, [string, number][]][];
  readonly alerts: AlertTrackerSnapshot;
}

/** The status the alerting stage shows (alerting/contract.ts), with the detector's name as the engine knows it. */
export interface DetectorStatus extends AlertingDetectorStatus {
  readonly name: DetectorName | 'threshold';
}

/**
 * The bus partition the data of a series (its tenant and labels, `tenant` set) goes to; a job's is asked with
 * `{ tenant, job_id }`. Undefined: not known (such series stay with the engine that has them).
 */
export type PartitionOf = (tenant: string, labels: LabelSet) => number | undefined;

/** The state of some partitions, by {@link DetectorEngine.selectPartitions}. */
interface Selection {
  readonly jobs: JobState[];
  readonly members: [string, MemberAlert][];
  readonly alerts: AlertTrackerSnapshot[number][];
  readonly accs: DerivedAccumulator[];
  readonly drefs: number[];
}

/** The detectors that apply to a series (and their parameters), by {@link DetectorEngine.planFor}. */
interface Plan {
  readonly thresholds: readonly ThresholdRule[];
  readonly nonfinite: DetectorParams<'nonfinite'> | undefined;
  readonly lossSpike: DetectorParams<'loss_spike'> | undefined;
  readonly lossTrend: DetectorParams<'loss_trend'> | undefined;
  readonly anomaly: DetectorParams<'anomaly'> | undefined;
  readonly throughput: DetectorParams<'throughput'> | undefined;
  readonly plateau: DetectorParams<'plateau'> | undefined;
  readonly ecc: DetectorParams<'ecc'> | undefined;
  readonly throttle: DetectorParams<'throttle'> | undefined;
  readonly leak: DetectorParams<'memory_leak'> | undefined;
  /** A GPU utilization series: the job describes hangs with them. */
  readonly utilization: boolean;
  readonly waste: DetectorParams<'waste'> | undefined;
  readonly straggler: DetectorParams<'straggler'> | undefined;
}

interface MemberAlert {
  readonly id: AlertIdentity;
  readonly members: Map<string, number>;
}

const DEFAULT_SERIES_TTL_MS = 15 * 60_000;
const NAME_CACHE_LIMIT = 50_000;

// Detector kinds: the index of each family in `families`, and the tag of a series' detector entries.
const THRESHOLD = 0;
const NONFINITE = 1;
const LOSS_SPIKE = 2;
const ANOMALY = 3;
const THROUGHPUT = 4;
const PLATEAU = 5;
const ECC = 6;
const THROTTLE = 7;
const MEMORY_LEAK = 8;
const WASTE = 9;
const STEP = 10;
const STRAGGLER = 11;
const DERIVED_KIND = 12;
const PHASE = 13;
const LOSS_TREND = 14;
const KINDS = 15;
/** A detector entry of a series: kind × 2^24 + slot (a family has fewer than 2^24 slots). */
const SLOT_BITS = 24;
const SLOT_MASK = (1 << SLOT_BITS) - 1;

/** `detOfProc` values: the series-table ref was not looked at yet / no detector looks at that series. */
const UNRESOLVED = -2;
const NOT_ANALYSED = -1;

export class DetectorEngine implements DetectorContext {
  readonly tracker: AlertTracker;
  private readonly patterns: RegExp[];
  /** Metric name → whether any detector might look at it. */
  private readonly interesting = new Map<string, boolean>();
  /** Metric name → the detectors of its series (without overrides: the same for every series of a name). */
  private readonly plans = new Map<string, Plan>();

  // ---- per series (dref) columns -------------------------------------------------------------------------
  private infos: (SeriesInfo | undefined)[] = [];
  private lastTs = new Float64Array(1024);
  private lastVs = new Float64Array(1024);
  private nodeSlots = new Int32Array(1024);
  /** The series-table ref this series was last reached by (-1 none), to unmap it when forgotten. */
  private procRefOf = new Int32Array(1024);
  /** Creation order, so that a snapshot lists series as they were created (derived member ids follow it). */
  private createdSeq = new Float64Array(1024);
  private nextSeq = 0;
  private detStart = new Int32Array(1024);
  private detCount = new Int32Array(1024);
  private detArena = new Int32Array(4096);
  private detUsed = 0;
  private detDead = 0;
  /** Series by a hash of (tenant, labels); `sameHash` chains series whose hashes collide. */
  private readonly byHash = new Map<number, number>();
  private sameHash = new Int32Array(1024);
  private hashOf = new Int32Array(1024);
  private readonly freeDrefs: number[] = [];
  private drefLimit = 0;
  private liveSeries = 0;
  /** Series-table ref → dref ({@link UNRESOLVED}, {@link NOT_ANALYSED}). */
  private detOfProc = new Int32Array(0);
  /**
   * Label-set object → dref, for callers that hand the same label objects again (the simulator, tests):
   * skips hashing the labels. Weak, so it never keeps a batch alive.
   */
  private readonly byObject = new WeakMap<LabelSet, SeriesInfo>();
  seriesGeneration = 0;
  removalGeneration = 0;

  // ---- detectors -----------------------------------------------------------------------------------------
  private readonly thresholds = new ThresholdFamily(this);
  private readonly nonfinite = new NonFiniteFamily(this);
  private readonly lossSpike = new LossSpikeFamily(this);
  private readonly anomaly = new AnomalyFamily(this);
  private readonly throughput = new ThroughputFamily(this);
  private readonly plateau = new PlateauFamily(this);
  private readonly ecc = new EccFamily(this);
  private readonly throttle = new ThrottleFamily(this);
  private readonly memoryLeak = new MemoryLeakFamily(this);
  private readonly waste = new WasteFamily(this);
  private readonly steps = new StepFamily(this);
  private readonly stragglers = new StragglerFamily(this);
  private readonly derivedMembers = new DerivedFamily(this);
  private readonly phases = new PhaseFamily(this);
  private readonly lossTrend = new LossTrendFamily(this);
  private readonly families: readonly Family<unknown>[];
  /** Samples seen and newest sample time evaluated, per detector kind. */
  private readonly samplesOf = new Float64Array(KINDS);
  private readonly lastEvalOf = new Float64Array(KINDS).fill(Number.NaN);
  /** Per tenant: samples and last evaluation per detector kind, so that a tenant sees only its own. */
  private readonly tenantCounts = new Map<string, { samples: Float64Array; lastEval: Float64Array }>();

  // ---- jobs and alerts -----------------------------------------------------------------------------------
  private readonly jobs = new Map<string, JobState>();
  private readonly memberAlerts = new Map<string, MemberAlert>();
  private readonly rules = new Map<string, AlertRule>();
  private readonly touched: JobState[] = [];
  /**
   * The wall-clock minute of the last sweep (forgetting). Sweeps run on the first tick of each minute, so an
   * engine restored from another's state sweeps when that one would have: NaN until the first tick, which
   * takes its minute as swept (the previous owner swept it), keeping a hand-over exact.
   */
  private sweptMinute = Number.NaN;
  /** The wall clock as of the last tick: when samples arrive (processing time), for whole-job absence. */
  private wallNow = Number.NaN;
  /**
   * Per series: the wall-clock time (as of the last tick) a sample of it last arrived, or it was created or
   * restored; NaN before the first tick. A series is forgotten once nothing arrived for the TTL, whatever its
   * samples' own times: a replay, a backfill or a processor that fell behind sends samples older than the
   * TTL that are anything but silence.
   */
  private arrivedAt = new Float64Array(1024);
  private readonly seriesTtlMs: number;
  private readonly derived = new Map<string, DerivedAccumulator>();
  private readonly derivedOut = new DerivedOutput();
  private readonly withDerived: boolean;
  private readonly lastTOf = (d: number) => this.lastTs[d]!;

  constructor(
    readonly settings: DetectorSettings,
    sink: AlertSink,
    opts: EngineOptions = {},
  ) {
    this.tracker = new AlertTracker(sink);
    this.patterns = settings.metricPatterns();
    this.seriesTtlMs = opts.seriesTtlMs ?? DEFAULT_SERIES_TTL_MS;
    this.withDerived = opts.derived ?? false;
    if (this.withDerived)
      for (const name of Object.keys(DERIVED)) this.patterns.push(new RegExp(`^${name}$`));
    const f: Family<unknown>[] = [];
    f[THRESHOLD] = this.thresholds as Family<unknown>;
    f[NONFINITE] = this.nonfinite as Family<unknown>;
    f[LOSS_SPIKE] = this.lossSpike as Family<unknown>;
    f[ANOMALY] = this.anomaly as Family<unknown>;
    f[THROUGHPUT] = this.throughput as Family<unknown>;
    f[PLATEAU] = this.plateau as Family<unknown>;
    f[ECC] = this.ecc as Family<unknown>;
    f[THROTTLE] = this.throttle as Family<unknown>;
    f[MEMORY_LEAK] = this.memoryLeak as Family<unknown>;
    f[WASTE] = this.waste as Family<unknown>;
    f[STEP] = this.steps as Family<unknown>;
    f[STRAGGLER] = this.stragglers as Family<unknown>;
    f[DERIVED_KIND] = this.derivedMembers as Family<unknown>;
    f[PHASE] = this.phases as Family<unknown>;
    f[LOSS_TREND] = this.lossTrend as Family<unknown>;
    this.families = f;
  }

  /** Derived samples computed since the last call, one batch per tenant. */
  takeDerived(): [string, SeriesBatch][] {
    return this.derivedOut.empty ? [] : this.derivedOut.take();
  }

  /** Series the engine analyses. */
  get seriesCount(): number {
    return this.liveSeries;
  }

  // ---- ingest -------------------------------------------------------------------------------------------

  /**
   * Applies one decoded bus record of `tenant` (in bus order): the fast path of the processor, whose series
   * table identifies each series by a ref.
   */
  observeRecord(tenant: string, rb: RecordBatch, table: SeriesTable): void {
    if (this.detOfProc.length < table.refLimit) {
      const n = Math.max(table.refLimit, this.detOfProc.length * 2, 1024);
      const next = new Int32Array(n).fill(UNRESOLVED);
      next.set(this.detOfProc);
      this.detOfProc = next;
    }
    const refs = rb.refs;
    const starts = rb.starts;
    for (let e = 0; e < rb.seriesCount; e++) {
      const p = refs[e]!;
      let d = this.detOfProc[p]!;
      if (d === UNRESOLVED) d = this.resolveRef(p, tenant, table);
      if (d < 0) continue;
      this.observeSeries(d, rb.timestamps, rb.values, starts[e]!, starts[e + 1]!);
    }
    this.afterBatch();
  }

  /** The series-table ref `p` is being reused for another series: forget what it pointed to. */
  releaseRef(p: number): void {
    if (p >= this.detOfProc.length) return;
    const d = this.detOfProc[p]!;
    if (d >= 0 && this.procRefOf[d] === p) this.procRefOf[d] = -1;
    this.detOfProc[p] = UNRESOLVED;
  }

  private resolveRef(p: number, tenant: string, table: SeriesTable): number {
    const nameSid = table.nameSid(p);
    const name = nameSid >= 0 ? table.strings[nameSid]! : undefined;
    if (name === undefined || !this.isInteresting(name)) {
      this.detOfProc[p] = NOT_ANALYSED;
      return NOT_ANALYSED;
    }
    const d = this.seriesFor(tenant, table.labels[p]!, name, true);
    this.detOfProc[p] = d;
    this.procRefOf[d] = p;
    return d;
  }

  /** Applies one batch of `tenant` (one bus record), in bus order. */
  observe(tenant: string, batch: SeriesBatch): void {
    const { series, offsets, timestamps, values } = batch;
    for (let i = 0; i < series.length; i++) {
      const labels = series[i]!;
      const name = labels.__name__;
      if (name === undefined || !this.isInteresting(name)) continue;
      const cached = this.byObject.get(labels);
      let d: number;
      if (cached && cached.tenant === tenant && this.infos[cached.dref] === cached) d = cached.dref;
      else {
        d = this.seriesFor(tenant, labels, name, false);
        this.byObject.set(labels, this.infos[d]!);
      }
      this.observeSeries(d, timestamps, values, offsets[i]!, offsets[i + 1]!);
    }
    this.afterBatch();
  }

  /** The samples `[from, to)` of series `d`: the per-sample loop. */
  private observeSeries(d: number, ts: Float64Array, vs: Float64Array, from: number, to: number): void {
    const info = this.infos[d]!;
    const job = info.job as JobState | undefined;
    if (job?.finished) return;
    let lastT = this.lastTs[d]!;
    const start = this.detStart[d]!;
    const end = start + this.detCount[d]!;
    const arena = this.detArena;
    const nodeSlot = this.nodeSlots[d]!;
    let n = 0;
    for (let j = from; j < to; j++) {
      const t = ts[j]!;
      if (!(t > lastT)) continue;
      const v = vs[j]!;
      if (isStaleNaN(v)) continue;
      lastT = t;
      this.lastTs[d] = t;
      this.lastVs[d] = v;
      n++;
      if (job) job.noteSample(t, nodeSlot);
      for (let k = start; k < end; k++) {
        const entry = arena[k]!;
        const slot = entry & SLOT_MASK;
        switch (entry >>> SLOT_BITS) {
          case THRESHOLD:
            this.thresholds.observe(slot, t, v);
            break;
          case NONFINITE:
            this.nonfinite.observe(slot, t, v);
            break;
          case LOSS_SPIKE:
            this.lossSpike.observe(slot, t, v);
            break;
          case ANOMALY:
            this.anomaly.observe(slot, t, v);
            break;
          case THROUGHPUT:
            this.throughput.observe(slot, t, v);
            break;
          case PLATEAU:
            this.plateau.observe(slot, t, v);
            break;
          case ECC:
            this.ecc.observe(slot, t, v);
            break;
          case THROTTLE:
            this.throttle.observe(slot, t, v);
            break;
          case MEMORY_LEAK:
            this.memoryLeak.observe(slot, t, v);
            break;
          case WASTE:
            this.waste.observe(slot, t, v);
            break;
          case STEP:
            this.steps.observe(slot, t, v);
            break;
          case STRAGGLER:
            this.stragglers.observe(slot, t, v);
            break;
          case DERIVED_KIND:
            this.derivedMembers.observe(slot, t, v);
            break;
          case PHASE:
            this.phases.observe(slot, t, v);
            break;
          case LOSS_TREND:
            this.lossTrend.observe(slot, t, v);
            break;
        }
      }
    }
    if (job && !job.touched) {
      job.touched = true;
      this.touched.push(job);
    }
    this.arrivedAt[d] = this.wallNow;
    if (n === 0) return;
    let mine = this.tenantCounts.get(info.tenant);
    if (!mine) {
      mine = { samples: new Float64Array(KINDS), lastEval: new Float64Array(KINDS).fill(Number.NaN) };
      this.tenantCounts.set(info.tenant, mine);
    }
    for (let k = start; k < end; k++) {
      const kind = arena[k]! >>> SLOT_BITS;
      this.samplesOf[kind]! += n;
      this.lastEvalOf[kind] = lastT;
      mine.samples[kind]! += n;
      mine.lastEval[kind] = lastT;
    }
  }

  /** After each batch: the jobs it touched are evaluated and their derived buckets emitted when complete. */
  private afterBatch(): void {
    for (const job of this.touched) {
      job.touched = false;
      if (!Number.isNaN(this.wallNow)) job.lastArrival = this.wallNow;
      job.evaluate();
      this.derived.get(job.key)?.emit(this.derivedOut);
    }
    this.touched.length = 0;
  }

  /**
   * Job events travel with the samples: a finished job's alerts resolve at its finish time; an `update` with
   * `config.phase` (checkpoint, eval, train...) is the phase its framework reports (phase.ts).
   */
  observeEvents(tenant: string, events: readonly JobEvent[]): void {
    for (const ev of events) {
      if (ev.kind === 'update') {
        const phase = ev.config?.phase;
        if (typeof phase !== 'string') continue;
        const code = phaseCode(phase);
        if (code >= 0) this.jobFor(tenant, ev.jobId).reportPhaseEvent(code, ev.timeMs);
        continue;
      }
      if (ev.kind !== 'finish') continue;
      const job = this.jobFor(tenant, ev.jobId);
      if (job.finished) continue;
      job.finished = true;
      this.derived.get(job.key)?.emit(this.derivedOut, true);
      this.derived.delete(job.key);
      const t = Math.max(ev.timeMs, Number.isFinite(job.clock) ? job.clock : ev.timeMs);
      this.tracker.endWhere((l) => l.tenant === tenant && l.job_id === ev.jobId, t);
      for (const [fp, m] of this.memberAlerts)
        if (m.id.labels.tenant === tenant && m.id.labels.job_id === ev.jobId) this.memberAlerts.delete(fp);
    }
  }

  /**
   * The wall-clock side, called about once a second: whole jobs that stopped reporting (only when `live`, i.e.
   * the processor has caught up with the bus, so that a replay is not mistaken for silence) and forgetting
   * series and finished jobs nobody reports any more.
   */
  tick(now: number, live: boolean): void {
    this.wallNow = now;
    if (!live) return;
    for (const job of this.jobs.values()) job.checkAbsent(now);
    const minute = Math.floor(now / 60_000);
    if (Number.isNaN(this.sweptMinute)) this.sweptMinute = minute;
    if (minute === this.sweptMinute) return;
    this.sweptMinute = minute;
    for (let d = 0; d < this.drefLimit; d++) {
      if (this.infos[d] === undefined) continue;
      const arrived = this.arrivedAt[d]!;
      // Not Math.max: an arrival not known yet (NaN) must leave the sample time, not make it NaN.
      // biome-ignore lint/complexity/useMathMinMax: NaN must not win
      const seen = arrived > this.lastTs[d]! ? arrived : this.lastTs[d]!;
      if (now - seen < this.seriesTtlMs) continue;
      this.forget(d, now);
    }
    for (const [key, job] of this.jobs) {
      const silent = now - (Number.isNaN(job.lastArrival) ? job.clock : Math.max(job.clock, job.lastArrival));
      if ((job.finished && silent >= this.seriesTtlMs) || silent >= job.params.absence.forget_after) {
        this.tracker.endWhere((l) => l.tenant === job.tenant && l.job_id === job.jobId, now);
        this.derived.get(key)?.emit(this.derivedOut, true);
        this.derived.delete(key);
        this.jobs.delete(key);
      }
    }
  }

  private isInteresting(name: string): boolean {
    let hit = this.interesting.get(name);
    if (hit === undefined) {
      hit = this.patterns.some((re) => re.test(name));
      if (this.interesting.size >= NAME_CACHE_LIMIT) this.interesting.clear();
      this.interesting.set(name, hit);
    }
    return hit;
  }

  // ---- series ---------------------------------------------------------------------------------------------

  /**
   * The dref of the series of `tenant` with `labels` (creating it when new). `shared`: `labels` already has
   * `tenant` set to the tenant and is never mutated by its owner, so the engine keeps it instead of a copy.
   */
  private seriesFor(tenant: string, labels: LabelSet, name: string, shared: boolean): number {
    const h = labelsHash(tenant, labels);
    const found = this.findByHash(h, tenant, labels);
    if (found >= 0) return found;
    const own = shared && labels.tenant === tenant ? labels : { ...labels, tenant };
    return this.createSeries(h, tenant, own, name);
  }

  private findByHash(h: number, tenant: string, labels: LabelSet): number {
    let d = this.byHash.get(h) ?? -1;
    while (d >= 0) {
      const info = this.infos[d]!;
      if (info.tenant === tenant && sameLabels(info.labels, labels)) return d;
      d = this.sameHash[d]!;
    }
    return -1;
  }

  private allocDref(): number {
    const d = this.freeDrefs.length > 0 ? this.freeDrefs.pop()! : this.drefLimit++;
    if (d >= this.lastTs.length) {
      const n = this.lastTs.length * 2;
      this.lastTs = growF64(this.lastTs, n);
      this.arrivedAt = growF64(this.arrivedAt, n);
      this.lastVs = growF64(this.lastVs, n);
      this.nodeSlots = growI32(this.nodeSlots, n);
      this.procRefOf = growI32(this.procRefOf, n);
      this.createdSeq = growF64(this.createdSeq, n);
      this.detStart = growI32(this.detStart, n);
      this.detCount = growI32(this.detCount, n);
      this.sameHash = growI32(this.sameHash, n);
      this.hashOf = growI32(this.hashOf, n);
    }
    return d;
  }

  private createSeries(h: number, tenant: string, labels: LabelSet, name: string): number {
    const d = this.allocDref();
    const jobId = labels.job_id;
    const job = jobId !== undefined && jobId !== '' ? this.jobFor(tenant, jobId) : undefined;
    const info: SeriesInfo = { dref: d, name, tenant, labels, job };
    this.infos[d] = info;
    this.lastTs[d] = Number.NEGATIVE_INFINITY;
    this.lastVs[d] = Number.NaN;
    this.arrivedAt[d] = this.wallNow;
    this.nodeSlots[d] = job ? job.nodeSlot(labels.node_id) : -1;
    this.procRefOf[d] = -1;
    this.createdSeq[d] = this.nextSeq++;
    this.hashOf[d] = h;
    this.sameHash[d] = this.byHash.get(h) ?? -1;
    this.byHash.set(h, d);
    this.liveSeries++;
    this.seriesGeneration++;

    // Detector entries, in a fixed order: a snapshot names each one's state by its position.
    const entries: number[] = [];
    const add = (kind: number, slot: number) => entries.push(kind * (1 << SLOT_BITS) + slot);
    const plan = this.planFor(name, labels);
    for (const r of plan.thresholds) add(THRESHOLD, this.thresholds.alloc(info, r));
    if (plan.nonfinite && job) add(NONFINITE, this.nonfinite.alloc(info, plan.nonfinite));
    if (plan.lossSpike && job) add(LOSS_SPIKE, this.lossSpike.alloc(info, plan.lossSpike));
    if (plan.lossTrend && job) add(LOSS_TREND, this.lossTrend.alloc(info, plan.lossTrend));
    if (plan.anomaly) add(ANOMALY, this.anomaly.alloc(info, plan.anomaly));
    if (plan.throughput && job) add(THROUGHPUT, this.throughput.alloc(info, plan.throughput));
    if (plan.plateau && job) add(PLATEAU, this.plateau.alloc(info, plan.plateau));
    if (plan.ecc) add(ECC, this.ecc.alloc(info, plan.ecc));
    if (plan.throttle) add(THROTTLE, this.throttle.alloc(info, plan.throttle));
    if (plan.leak) add(MEMORY_LEAK, this.memoryLeak.alloc(info, plan.leak));
    if (job && plan.utilization) job.utilization.push(d);
    if (plan.waste && job) add(WASTE, this.waste.alloc(info, plan.waste));
    if (job) {
      if (name === job.params.stall.metric) add(STEP, this.steps.alloc(info, job));
      if (name === job.params.stall.phase_metric) add(PHASE, this.phases.alloc(info, job));
      if (plan.straggler && (labels.node_id !== undefined || labels.rank !== undefined)) {
        const slot = this.stragglers.alloc(info, plan.straggler);
        add(STRAGGLER, slot);
        job.addStragglerMember(slot, info);
      }
      // A finished job's samples are not analysed any more (and its buckets were emitted at the finish).
      if (this.withDerived && DERIVED[name] !== undefined && !job.finished) {
        let acc = this.derived.get(job.key);
        if (!acc) {
          acc = new DerivedAccumulator(tenant, job.jobId, this.lastTOf);
          this.derived.set(job.key, acc);
        }
        const slot = this.derivedMembers.alloc(info, acc);
        this.derivedMembers.join(slot, name);
        add(DERIVED_KIND, slot);
      }
    }
    this.setEntries(d, entries);
    return d;
  }

  /**
   * Which detectors apply to a series of metric `name` with `labels`, with their parameters. Without
   * overrides the parameters depend on the metric name alone: the plan is then worked out once per name.
   */
  private planFor(name: string, labels: LabelSet): Plan {
    const s = this.settings;
    if (!s.hasOverrides) {
      const cached = this.plans.get(name);
      if (cached) return cached;
    }
    const on = <T extends { enabled: boolean }>(p: T, applies: boolean): T | undefined =>
      p.enabled && applies ? p : undefined;
    const nonfinite = s.params('nonfinite', labels);
    const spike = s.params('loss_spike', labels);
    const trend = s.params('loss_trend', labels);
    const anomaly = s.params('anomaly', labels);
    const throughput = s.params('throughput', labels);
    const plateau = s.params('plateau', labels);
    const ecc = s.params('ecc', labels);
    const throttle = s.params('throttle', labels);
    const leak = s.params('memory_leak', labels);
    const waste = s.params('waste', labels);
    const straggler = s.params('straggler', labels);
    const plan: Plan = {
      thresholds: s.thresholds
        .filter((rule) => rule.metric === name)
        .map((rule) => s.threshold(rule, labels))
        .filter((r) => r.enabled),
      nonfinite: on(nonfinite, matchesAny(name, nonfinite.metrics)),
      lossSpike: on(spike, matchesAny(name, spike.metrics)),
      lossTrend: on(trend, matchesAny(name, trend.metrics)),
      anomaly: on(anomaly, matchesAny(name, anomaly.metrics)),
      throughput: on(throughput, matchesAny(name, throughput.metrics)),
      plateau: on(plateau, matchesAny(name, plateau.metrics)),
      ecc: on(ecc, name === ecc.metric),
      throttle: on(throttle, name === throttle.metric),
      leak: on(leak, name === leak.metric),
      utilization: name === waste.metric,
      waste: on(waste, name === waste.metric),
      straggler: on(straggler, matchesAny(name, straggler.metrics)),
    };
    if (!s.hasOverrides) {
      if (this.plans.size >= NAME_CACHE_LIMIT) this.plans.clear();
      this.plans.set(name, plan);
    }
    return plan;
  }

  private setEntries(d: number, entries: readonly number[]): void {
    if (this.detUsed + entries.length > this.detArena.length) {
      if (this.detDead * 2 > this.detUsed) this.compactEntries();
      if (this.detUsed + entries.length > this.detArena.length)
        this.detArena = growI32(
          this.detArena,
          Math.max(this.detArena.length * 2, this.detUsed + entries.length),
        );
    }
    this.detStart[d] = this.detUsed;
    this.detCount[d] = entries.length;
    for (const e of entries) this.detArena[this.detUsed++] = e;
  }

  private compactEntries(): void {
    const next = new Int32Array(this.detArena.length);
    let used = 0;
    for (let d = 0; d < this.drefLimit; d++) {
      if (this.infos[d] === undefined) continue;
      const n = this.detCount[d]!;
      next.set(this.detArena.subarray(this.detStart[d]!, this.detStart[d]! + n), used);
      this.detStart[d] = used;
      used += n;
    }
    this.detArena = next;
    this.detUsed = used;
    this.detDead = 0;
  }

  /**
   * Forgets series `d`: its slots and dref are freed; with `endAlerts` its detectors end what they raised
   * (without: the alerts stay with whoever continues the series, see {@link dropPartitions}).
   */
  private forget(d: number, now: number, endAlerts = true): void {
    const info = this.infos[d]!;
    const job = info.job as JobState | undefined;
    const start = this.detStart[d]!;
    let stragglerSlot = -1;
    for (let k = start; k < start + this.detCount[d]!; k++) {
      const entry = this.detArena[k]!;
      const kind = entry >>> SLOT_BITS;
      const slot = entry & SLOT_MASK;
      const family = this.families[kind]!;
      if (endAlerts) family.dispose(slot, now);
      if (kind === STRAGGLER) stragglerSlot = slot;
      else family.free(slot);
    }
    job?.removeSeries(info, stragglerSlot);
    if (stragglerSlot >= 0) this.stragglers.free(stragglerSlot);
    // Unlink from the hash chain.
    const h = this.hashOf[d]!;
    let cur = this.byHash.get(h) ?? -1;
    let prev = -1;
    while (cur >= 0 && cur !== d) {
      prev = cur;
      cur = this.sameHash[cur]!;
    }
    if (cur === d) {
      const next = this.sameHash[d]!;
      if (prev < 0) {
        if (next < 0) this.byHash.delete(h);
        else this.byHash.set(h, next);
      } else this.sameHash[prev] = next;
    }
    const p = this.procRefOf[d]!;
    if (p >= 0 && p < this.detOfProc.length && this.detOfProc[p] === d) this.detOfProc[p] = UNRESOLVED;
    this.detDead += this.detCount[d]!;
    this.detCount[d] = 0;
    this.infos[d] = undefined;
    this.freeDrefs.push(d);
    this.liveSeries--;
    this.removalGeneration++;
  }

  private jobFor(tenant: string, jobId: string): JobState {
    const key = jobKey(tenant, jobId);
    let job = this.jobs.get(key);
    if (!job) {
      const labels = { tenant, job_id: jobId };
      job = new JobState(
        tenant,
        jobId,
        {
          stall: this.settings.params('stall', labels),
          absence: this.settings.params('absence', labels),
          straggler: this.settings.params('straggler', labels),
        },
        this,
        this.stragglers,
        this.steps,
      );
      this.jobs.set(key, job);
    }
    return job;
  }

  // ---- DetectorContext ----------------------------------------------------------------------------------

  identity(
    origin: DetectorName | 'threshold',
    alertname: string,
    severity: Severity,
    forMs: number,
    keepFiringForMs: number,
    labels: LabelSet,
  ): AlertIdentity {
    const full: LabelSet = { ...labels, alertname, severity };
    const ruleKey = `${origin}\u0000${alertname}\u0000${forMs}\u0000${keepFiringForMs}`;
    let rule = this.rules.get(ruleKey);
    if (!rule) {
      rule = { name: alertname, forMs, keepFiringForMs, source: 'detector', origin };
      this.rules.set(ruleKey, rule);
    }
    return { fingerprint: fingerprint(full), labels: full, rule };
  }

  activate(
    id: AlertIdentity,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
  ): void {
    this.tracker.activate(id.fingerprint, id.rule, id.labels, t, value, annotate);
  }

  deactivate(id: AlertIdentity, t: number): void {
    if (this.tracker.has(id.fingerprint)) this.tracker.deactivate(id.fingerprint, t);
  }

  end(id: AlertIdentity, t: number): void {
    if (this.tracker.has(id.fingerprint)) this.tracker.end(id.fingerprint, t);
  }

  isOpen(id: AlertIdentity): boolean {
    return this.tracker.has(id.fingerprint);
  }

  member(
    id: AlertIdentity,
    memberKey: string,
    active: boolean,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
    quorum = 1,
  ): void {
    let m = this.memberAlerts.get(id.fingerprint);
    if (active) {
      if (!m) {
        m = { id, members: new Map() };
        this.memberAlerts.set(id.fingerprint, m);
      }
      m.members.set(memberKey, value);
      if (m.members.size < quorum) {
        this.tracker.deactivate(id.fingerprint, t);
        return;
      }
      let max = Number.NEGATIVE_INFINITY;
      for (const v of m.members.values()) if (v > max) max = v;
      this.tracker.activate(id.fingerprint, id.rule, id.labels, t, max, annotate);
    } else if (m?.members.delete(memberKey)) {
      if (m.members.size === 0) {
        this.memberAlerts.delete(id.fingerprint);
        this.tracker.deactivate(id.fingerprint, t);
      } else if (m.members.size < quorum) this.tracker.deactivate(id.fingerprint, t);
    }
  }

  info(dref: number): SeriesInfo {
    return this.infos[dref]!;
  }

  memberKey(dref: number): string {
    const info = this.infos[dref]!;
    info.key ??= seriesKey(info.tenant, info.labels);
    return info.key;
  }

  lastV(dref: number): number {
    return this.lastVs[dref]!;
  }

  lastT(dref: number): number {
    return this.lastTs[dref]!;
  }

  sibling(dref: number, name: string): number {
    const info = this.infos[dref]!;
    const labels = { ...info.labels, __name__: name };
    return this.findByHash(labelsHash(info.tenant, labels), info.tenant, labels);
  }

  // ---- state --------------------------------------------------------------------------------------------

  activeAlerts(): Alert[] {
    return this.tracker.active();
  }

  /**
   * Each detector's status. With `tenant`, the counts (tracked, samples, last evaluation) are that tenant's
   * only (O(series) to count what it tracks: an API call, not the sample path); the alert counts stay
   * engine-wide, callers count a tenant's alerts themselves.
   */
  status(tenant?: string): DetectorStatus[] {
    const counts = this.tracker.countByOrigin();
    const tracked = new Map<string, number>();
    const jobs =
      tenant === undefined
        ? [...this.jobs.values()]
        : [...this.jobs].filter(([key]) => key.startsWith(`${tenant}\u0000`)).map(([, j]) => j);
    if (tenant === undefined) for (const f of this.families) tracked.set(f.detector, f.live);
    else {
      const perKind = new Float64Array(KINDS);
      for (let d = 0; d < this.drefLimit; d++) {
        if (this.infos[d]?.tenant !== tenant) continue;
        const start = this.detStart[d]!;
        for (let i = 0; i < this.detCount[d]!; i++) perKind[this.detArena[start + i]! >>> SLOT_BITS]!++;
      }
      this.families.forEach((f, kind) => {
        tracked.set(f.detector, perKind[kind]!);
      });
    }
    tracked.set('stall', jobs.filter((j) => j.hasStepSeries && !j.finished).length);
    tracked.set('absence', jobs.length);
    const samples = new Map<FamilyName, number>();
    const lastEval = new Map<FamilyName, number>();
    const mine = tenant === undefined ? undefined : this.tenantCounts.get(tenant);
    const samplesOf = tenant === undefined ? this.samplesOf : (mine?.samples ?? new Float64Array(KINDS));
    const lastEvalOf = tenant === undefined ? this.lastEvalOf : mine?.lastEval;
    // Several families may serve one detector (stall: step series and phase reports): their counts add up.
    this.families.forEach((f, kind) => {
      samples.set(f.detector, (samples.get(f.detector) ?? 0) + samplesOf[kind]!);
      const last = lastEvalOf?.[kind];
      if (last !== undefined && !Number.isNaN(last) && !(lastEval.get(f.detector)! >= last))
        lastEval.set(f.detector, last);
    });
    const base = { tenant: '', job_id: '' };
    const names: (DetectorName | 'threshold')[] = ['threshold', ...DETECTOR_NAMES];
    return names.map((name) => {
      const c = counts.get(name) ?? { pending: 0, firing: 0 };
      const params =
        name === 'threshold'
          ? this.settings.thresholds
          : (this.settings.params(name, base) as { enabled: boolean });
      const enabled = name === 'threshold' ? this.settings.enabled : (params as { enabled: boolean }).enabled;
      return {
        name,
        description: DETECTOR_DESCRIPTIONS[name],
        enabled,
        alertnames:
          name === 'threshold' ? this.settings.thresholds.map((r) => r.alert) : DETECTOR_ALERTS[name],
        tracked: tracked.get(name) ?? 0,
        samples: samples.get(name) ?? 0,
        lastEvaluationMs: lastEval.get(name) ?? null,
        pending: c.pending,
        firing: c.firing,
        state: c.firing > 0 ? 'firing' : c.pending > 0 ? 'pending' : 'inactive',
        params,
      };
    });
  }

  snapshot(): EngineSnapshot {
    const order: number[] = [];
    for (let d = 0; d < this.drefLimit; d++) if (this.infos[d] !== undefined) order.push(d);
    order.sort((a, b) => this.createdSeq[a]! - this.createdSeq[b]!);
    const series: EngineSnapshot['series'] = [];
    for (const d of order) {
      const info = this.infos[d]!;
      const data: Record<string, unknown> = {};
      const start = this.detStart[d]!;
      for (let i = 0; i < this.detCount[d]!; i++) {
        const entry = this.detArena[start + i]!;
        const family = this.families[entry >>> SLOT_BITS]! as DetectorFamily;
        const saved = family.save(entry & SLOT_MASK);
        if (saved !== undefined) data[`${i}:${family.detector}`] = saved;
      }
      const v = this.lastVs[d]!;
      series.push({ l: info.labels, t: this.lastTs[d]!, v: Number.isFinite(v) ? v : null, d: data });
    }
    return {
      version: 1,
      jobs: [...this.jobs.values()].map((j) => j.snapshot()),
      derived: [...this.derived.values()].map((d) => [d.tenant, d.jobId, d.snapshot()]),
      series,
      members: [...this.memberAlerts].map(([fp, m]) => [fp, [...m.members]]),
      alerts: this.tracker.snapshot(),
    };
  }

  /**
   * The state in the binary state file (state.ts, format version 2): the content of {@link snapshot}, encoded
   * so that a million series take a fraction of a second and little memory. Yields after every slice of
   * series: the caller may give the event loop a turn then, provided nothing changes the engine until the
   * generator is done.
   *
   * `section(JSON {jobs, members, alerts})`, `uvarint(n)` n×`[string tenant, string job, derived buckets]`,
   * `uvarint(series)` then per series in creation order: `uvarint(labels)` labels×`[name ref, value ref]`
   * (a ref is `uvarint(id·2 + new)`, a new string following it; ids count strings as they first appear),
   * `f64 lastT, f64 lastV`, `uvarint(entries)` entries×`[uvarint kind, section(detector state)]`.
   */
  *encodeState(w: StateWriter, slice = 2048): Generator<void, void> {
    const all: Selection = {
      jobs: [...this.jobs.values()],
      members: [...this.memberAlerts],
      alerts: [...this.tracker.snapshot()],
      accs: [...this.derived.values()],
      drefs: [],
    };
    for (let d = 0; d < this.drefLimit; d++) if (this.infos[d] !== undefined) all.drefs.push(d);
    yield* this.encodeSelection(w, all, slice);
  }

  /**
   * The state of the given bus partitions only, one {@link encodeState}-format record per partition (restored
   * by {@link decodeState} / {@link restorePartition}): what a processor hands over when a partition leaves
   * it. Partitions holding nothing get an empty record. Yields between slices like {@link encodeState}; the
   * records are in `out` once the generator is done.
   */
  *encodePartitions(
    partitions: ReadonlySet<number>,
    partitionOf: PartitionOf,
    out: Map<number, Uint8Array>,
    slice = 2048,
  ): Generator<void, void> {
    const selections = this.selectPartitions(partitions, partitionOf);
    const w = new StateWriter();
    for (const [p, sel] of selections) {
      yield* this.encodeSelection(w, sel, slice);
      out.set(p, w.take());
    }
  }

  /** {@link encodePartitions} in one go (tests, small engines). */
  snapshotPartitions(partitions: ReadonlySet<number>, partitionOf: PartitionOf): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>();
    for (const _ of this.encodePartitions(partitions, partitionOf, out));
    return out;
  }

  /**
   * Merges the state of partitions this engine does not hold (a record of {@link encodePartitions}) into it:
   * the engine keeps every other partition's state and continues the restored jobs and alerts exactly where
   * their previous owner left them. Reports nothing (the alert hub knows the restored alerts).
   */
  restorePartition(state: Uint8Array): { series: number; alerts: number } {
    return this.decodeState(new StateReader(state));
  }

  /**
   * Forgets everything of the given partitions (their series, jobs, derived buckets and open alerts) without
   * reporting anything: another processor owns them now and continues their alerts, so ending them here would
   * resolve alerts that still hold, and keeping them would raise e.g. JobAbsent for jobs this engine no longer
   * sees. Series and alerts whose partition is unknown (`partitionOf` undefined) are kept.
   */
  dropPartitions(partitions: ReadonlySet<number>, partitionOf: PartitionOf): void {
    const selections = this.selectPartitions(partitions, partitionOf);
    const droppedAlerts = new Set<string>();
    for (const sel of selections.values()) {
      for (const d of sel.drefs) this.forget(d, Number.NaN, false);
      for (const job of sel.jobs) {
        this.jobs.delete(job.key);
        this.derived.delete(job.key);
      }
      for (const acc of sel.accs) this.derived.delete(jobKey(acc.tenant, acc.jobId));
      for (const [fp] of sel.members) this.memberAlerts.delete(fp);
      for (const a of sel.alerts) droppedAlerts.add(a.fingerprint);
    }
    if (droppedAlerts.size > 0)
      this.tracker.restore(this.tracker.snapshot().filter((a) => !droppedAlerts.has(a.fingerprint)));
  }

  /**
   * What belongs to each of `partitions`: one pass over jobs, series and alerts. A series of a job belongs to
   * the job's partition (computed once per job); any other series and alert by its own labels.
   */
  private selectPartitions(
    partitions: ReadonlySet<number>,
    partitionOf: PartitionOf,
  ): Map<number, Selection> {
    const out = new Map<number, Selection>();
    for (const p of partitions) out.set(p, { jobs: [], members: [], alerts: [], accs: [], drefs: [] });
    const jobPart = new Map<JobState, number | undefined>();
    const ofJob = (job: JobState) => {
      let p = jobPart.get(job);
      if (p === undefined && !jobPart.has(job)) {
        p = partitionOf(job.tenant, { tenant: job.tenant, job_id: job.jobId });
        jobPart.set(job, p);
      }
      return p;
    };
    for (const job of this.jobs.values()) {
      const p = ofJob(job);
      if (p !== undefined) out.get(p)?.jobs.push(job);
    }
    for (const acc of this.derived.values()) {
      const job = this.jobs.get(jobKey(acc.tenant, acc.jobId));
      const p = job ? ofJob(job) : partitionOf(acc.tenant, { tenant: acc.tenant, job_id: acc.jobId });
      if (p !== undefined) out.get(p)?.accs.push(acc);
    }
    for (let d = 0; d < this.drefLimit; d++) {
      const info = this.infos[d];
      if (info === undefined) continue;
      const job = info.job as JobState | undefined;
      const p = job ? ofJob(job) : partitionOf(info.tenant, info.labels);
      if (p !== undefined) out.get(p)?.drefs.push(d);
    }
    const alertPart = (labels: LabelSet) => {
      const tenant = labels.tenant ?? '';
      const jobId = labels.job_id;
      const job = jobId !== undefined ? this.jobs.get(jobKey(tenant, jobId)) : undefined;
      return job ? ofJob(job) : partitionOf(tenant, labels);
    };
    for (const a of this.tracker.snapshot()) {
      const p = alertPart(a.labels);
      if (p !== undefined) out.get(p)?.alerts.push(a);
    }
    for (const m of this.memberAlerts) {
      const p = alertPart(m[1].id.labels);
      if (p !== undefined) out.get(p)?.members.push(m);
    }
    return out;
  }

  /**
   * The binary state of a selection (format at {@link encodeState}): series in creation order, as derived
   * member ids follow it.
   */
  private *encodeSelection(w: StateWriter, sel: Selection, slice: number): Generator<void, void> {
    const header = {
      jobs: sel.jobs.map((j) => j.snapshot()),
      members: sel.members.map(([fp, m]) => [fp, [...m.members]]),
      alerts: sel.alerts,
    };
    w.section(() => w.string(JSON.stringify(header)));
    const accs = sel.accs;
    w.uvarint(accs.length);
    for (let i = 0; i < accs.length; i++) {
      const acc = accs[i]!;
      w.string(acc.tenant);
      w.string(acc.jobId);
      acc.write(w);
      if (i % 256 === 255) yield;
    }
    const order = sel.drefs;
    order.sort((a, b) => this.createdSeq[a]! - this.createdSeq[b]!);
    w.uvarint(order.length);
    const ids = new Map<string, number>();
    const ref = (str: string) => {
      const id = ids.get(str);
      if (id !== undefined) {
        w.uvarint(id * 2);
        return;
      }
      w.uvarint(ids.size * 2 + 1);
      w.string(str);
      ids.set(str, ids.size);
    };
    for (let i = 0; i < order.length; i++) {
      const d = order[i]!;
      const labels = this.infos[d]!.labels;
      let n = 0;
      for (const _ in labels) n++;
      w.uvarint(n);
      for (const k in labels) {
        ref(k);
        ref(labels[k]!);
      }
      w.float(this.lastTs[d]!);
      w.float(this.lastVs[d]!);
      const start = this.detStart[d]!;
      const count = this.detCount[d]!;
      w.uvarint(count);
      for (let e = start; e < start + count; e++) {
        const entry = this.detArena[e]!;
        const kind = entry >>> SLOT_BITS;
        w.uvarint(kind);
        const family = this.families[kind]! as DetectorFamily;
        w.section(() => family.write(entry & SLOT_MASK, w));
      }
      if (i % slice === slice - 1) yield;
    }
  }

  /** Restores what {@link encodeState} wrote (with the configuration of now). Reports nothing. */
  decodeState(r: StateReader): { series: number; alerts: number } {
    const header = r.section('engine header', (h) => JSON.parse(h.string('engine header'))) as Pick<
      EngineSnapshot,
      'jobs' | 'members' | 'alerts'
    >;
    for (const js of header.jobs) this.jobFor(js.tenant, js.jobId).restore(js);
    const derivedAt: [string, string, number][] = [];
    const accCount = r.uvarint('derived');
    for (let i = 0; i < accCount; i++) {
      const tenant = r.string('derived tenant');
      const jobId = r.string('derived job');
      // Members are registered with the series below: come back to these bytes then.
      derivedAt.push([tenant, jobId, r.pos]);
      new DerivedAccumulator(tenant, jobId, this.lastTOf).read(r);
    }
    const alertsOpen = header.alerts.length > 0;
    const strings: string[] = [];
    const str = (): string => {
      const v = r.uvarint('string ref');
      if (v % 2 === 0) {
        const s = strings[v / 2];
        if (s === undefined) throw new StateFormatError('state file refers to an unknown string');
        return s;
      }
      const s = r.string('string');
      strings.push(s);
      return s;
    };
    const seriesCount = r.uvarint('series');
    for (let i = 0; i < seriesCount; i++) {
      const n = r.uvarint('labels');
      const labels: Record<string, string> = {};
      for (let k = 0; k < n; k++) {
        const name = str();
        labels[name] = str();
      }
      const tenant = labels.tenant ?? '';
      const lastT = r.float('lastT');
      const lastV = r.float('lastV');
      const name = labels.__name__;
      const d = name === undefined ? -1 : this.seriesFor(tenant, labels, name, true);
      if (d >= 0) {
        this.lastTs[d] = lastT;
        this.lastVs[d] = lastV;
      }
      const entries = r.uvarint('detector entries');
      for (let e = 0; e < entries; e++) {
        const kind = r.uvarint('detector kind');
        r.section('detector state', (sr) => {
          if (d < 0 || e >= this.detCount[d]!) return;
          const entry = this.detArena[this.detStart[d]! + e]!;
          if (entry >>> SLOT_BITS !== kind) return;
          (this.families[kind]! as DetectorFamily).read(entry & SLOT_MASK, sr);
        });
      }
      if (d >= 0 && alertsOpen) {
        const start = this.detStart[d]!;
        for (let e = start; e < start + this.detCount[d]!; e++) {
          const entry = this.detArena[e]!;
          this.families[entry >>> SLOT_BITS]!.assumeActive(entry & SLOT_MASK);
        }
      }
    }
    const end = r.pos;
    for (const [tenant, jobId, at] of derivedAt) {
      const acc = this.derived.get(jobKey(tenant, jobId));
      if (!acc) continue;
      r.pos = at;
      acc.read(r);
    }
    r.pos = end;
    this.restoreAlerts(header.alerts, header.members);
    return { series: seriesCount, alerts: header.alerts.length };
  }

  /** Restores a snapshot taken by {@link snapshot} (with the configuration of now). Reports nothing. */
  restore(s: EngineSnapshot): void {
    if (s.version !== 1) throw new Error(`unsupported detector state version ${String(s.version)}`);
    for (const js of s.jobs) this.jobFor(js.tenant, js.jobId).restore(js);
    const alertsOpen = s.alerts.length > 0;
    for (const rec of s.series) {
      const tenant = rec.l.tenant ?? '';
      const name = rec.l.__name__;
      if (name === undefined) continue;
      // The snapshot's label objects are the engine's own from here (shared: nothing else holds them).
      const d = this.seriesFor(tenant, rec.l, name, true);
      this.lastTs[d] = rec.t ?? Number.NEGATIVE_INFINITY;
      this.lastVs[d] = rec.v ?? Number.NaN;
      const start = this.detStart[d]!;
      for (let i = 0; i < this.detCount[d]!; i++) {
        const entry = this.detArena[start + i]!;
        const family = this.families[entry >>> SLOT_BITS]! as DetectorFamily;
        const slot = entry & SLOT_MASK;
        const data = rec.d[`${i}:${family.detector}`];
        if (data !== undefined) family.load(slot, data);
        if (alertsOpen) family.assumeActive(slot);
      }
    }
    for (const [tenant, jobId, ds] of s.derived ?? []) this.derived.get(jobKey(tenant, jobId))?.restore(ds);
    this.restoreAlerts(s.alerts, s.members);
  }

  /** Adds restored alerts to those open (a partition's alerts join the other partitions' alerts). */
  private restoreAlerts(alerts: AlertTrackerSnapshot, memberList: EngineSnapshot['members']): void {
    if (alerts.length > 0) {
      const incoming = new Set(alerts.map((a) => a.fingerprint));
      const kept =
        this.tracker.size > 0 ? this.tracker.snapshot().filter((a) => !incoming.has(a.fingerprint)) : [];
      this.tracker.restore([...kept, ...alerts]);
    }
    for (const [fp, members] of memberList) {
      const a = alerts.find((x) => x.fingerprint === fp);
      if (!a) continue;
      const rule = this.identity(
        a.origin as DetectorName,
        a.name,
        (a.labels.severity ?? 'warning') as Severity,
        a.forMs,
        a.keepFiringForMs,
        {},
      ).rule;
      this.memberAlerts.set(fp, {
        id: { fingerprint: fp, labels: a.labels, rule },
        members: new Map(members),
      });
    }
  }
}

/** A series' identity within the engine: tenant plus its labels sorted by name. */
export function seriesKey(tenant: string, labels: LabelSet): string {
  const names = Object.keys(labels);
  names.sort();
  let key = tenant;
  for (const n of names) {
    if (n === 'tenant') continue;
    key += `\u0001${n}\u0002${labels[n]}`;
  }
  return key;
}

/** FNV-1a 32 over the tenant and the labels (without `tenant`) sorted by name: order-independent. */
export function labelsHash(tenant: string, labels: LabelSet): number {
  const names = Object.keys(labels);
  names.sort();
  let h = 0x811c9dc5;
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0xff, 0x01000193);
  };
  mix(tenant);
  for (const n of names) {
    if (n === 'tenant') continue;
    mix(n);
    mix(labels[n]!);
  }
  return h | 0;
}

/** Same labels, ignoring `tenant` (compared apart). */
function sameLabels(a: LabelSet, b: LabelSet): boolean {
  let na = 0;
  for (const k in a) {
    if (k === 'tenant') continue;
    if (a[k] !== b[k]) return false;
    na++;
  }
  let nb = 0;
  for (const k in b) if (k !== 'tenant') nb++;
  return na === nb;
}
