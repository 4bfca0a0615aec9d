/**
 * The engine's series registry, the base of {@link DetectorEngine} (engine.ts): the per-series columns (each
 * analysed series has a dense index, its *dref*, into typed arrays: newest time and value, node slot, its
 * detector entries), the detector families and the jobs, how a series is found or created (by a hash of its
 * labels) with the detectors that apply to it, and how it is forgotten; and the {@link DetectorContext} the
 * families raise and clear their alerts through. Separate from the ingest path (engine.ts) and the state
 * hand-over (engine-state.ts), which both work on these columns.
 */
import {
  type AlertRule,
  type AlertSink,
  AlertTracker,
  fingerprint,
  type Severity,
} from '../../alerting/contract.js';
import type { LabelSet } from '../../model/labels.js';
import { DERIVED, DerivedAccumulator, DerivedFamily, DerivedOutput } from '../derived.js';
import {
  type DetectorName,
  type DetectorParams,
  type DetectorSettings,
  matchesAny,
  type ThresholdRule,
} from './config.js';
import type { AlertIdentity, DetectorContext } from './context.js';
import { type Family, growF64, growI32 } from './family.js';
import { PhaseFamily, StepFamily, StragglerFamily } from './job-detectors.js';
import { jobKey } from './job-signals.js';
import { JobState } from './job-state.js';
import {
  AnomalyFamily,
  EccFamily,
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
import type { SeriesInfo } from './types.js';

export interface EngineOptions {
  /** Series without a sample for this long (wall clock, while live) are forgotten. */
  readonly seriesTtlMs?: number;
  /** Compute the derived per-job series (src/processor/derived.ts); collect them with `takeDerived`. */
  readonly derived?: boolean;
}
/** The detectors that apply to a series (and their parameters), by {@link EngineSeries.planFor}. */
export interface Plan {
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

export interface MemberAlert {
  readonly id: AlertIdentity;
  readonly members: Map<string, number>;
}

export const DEFAULT_SERIES_TTL_MS = 15 * 60_000;
export const NAME_CACHE_LIMIT = 50_000;

// Detector kinds: the index of each family in `families`, and the tag of a series' detector entries.
export const THRESHOLD = 0;
export const NONFINITE = 1;
export const LOSS_SPIKE = 2;
export const ANOMALY = 3;
export const THROUGHPUT = 4;
export const PLATEAU = 5;
export const ECC = 6;
export const THROTTLE = 7;
export const MEMORY_LEAK = 8;
export const WASTE = 9;
export const STEP = 10;
export const STRAGGLER = 11;
export const DERIVED_KIND = 12;
export const PHASE = 13;
export const LOSS_TREND = 14;
export const KINDS = 15;
/** A detector entry of a series: kind × 2^24 + slot (a family has fewer than 2^24 slots). */
export const SLOT_BITS = 24;
export const SLOT_MASK = (1 << SLOT_BITS) - 1;

/** `detOfProc` values: the series-table ref was not looked at yet / no detector looks at that series. */
export const UNRESOLVED = -2;
export const NOT_ANALYSED = -1;
export abstract class EngineSeries implements DetectorContext {
  readonly tracker: AlertTracker;
  protected readonly patterns: RegExp[];
  /** Metric name → whether any detector might look at it. */
  protected readonly interesting = new Map<string, boolean>();
  /** Metric name → the detectors of its series (without overrides: the same for every series of a name). */
  protected readonly plans = new Map<string, Plan>();

  // ---- per series (dref) columns -------------------------------------------------------------------------
  protected infos: (SeriesInfo | undefined)[] = [];
  protected lastTs = new Float64Array(1024);
  protected lastVs = new Float64Array(1024);
  protected nodeSlots = new Int32Array(1024);
  /** The series-table ref this series was last reached by (-1 none), to unmap it when forgotten. */
  protected procRefOf = new Int32Array(1024);
  /** Creation order, so that a snapshot lists series as they were created (derived member ids follow it). */
  protected createdSeq = new Float64Array(1024);
  protected nextSeq = 0;
  protected detStart = new Int32Array(1024);
  protected detCount = new Int32Array(1024);
  protected detArena = new Int32Array(4096);
  protected detUsed = 0;
  protected detDead = 0;
  /** Series by a hash of (tenant, labels); `sameHash` chains series whose hashes collide. */
  protected readonly byHash = new Map<number, number>();
  protected sameHash = new Int32Array(1024);
  protected hashOf = new Int32Array(1024);
  protected readonly freeDrefs: number[] = [];
  protected drefLimit = 0;
  protected liveSeries = 0;
  /** Series-table ref → dref ({@link UNRESOLVED}, {@link NOT_ANALYSED}). */
  protected detOfProc = new Int32Array(0);
  /**
   * Label-set object → dref, for callers that hand the same label objects again (the simulator, tests):
   * skips hashing the labels. Weak, so it never keeps a batch alive.
   */
  protected readonly byObject = new WeakMap<LabelSet, SeriesInfo>();
  seriesGeneration = 0;
  removalGeneration = 0;

  // ---- detectors -----------------------------------------------------------------------------------------
  protected readonly thresholds = new ThresholdFamily(this);
  protected readonly nonfinite = new NonFiniteFamily(this);
  protected readonly lossSpike = new LossSpikeFamily(this);
  protected readonly anomaly = new AnomalyFamily(this);
  protected readonly throughput = new ThroughputFamily(this);
  protected readonly plateau = new PlateauFamily(this);
  protected readonly ecc = new EccFamily(this);
  protected readonly throttle = new ThrottleFamily(this);
  protected readonly memoryLeak = new MemoryLeakFamily(this);
  protected readonly waste = new WasteFamily(this);
  protected readonly steps = new StepFamily(this);
  protected readonly stragglers = new StragglerFamily(this);
  protected readonly derivedMembers = new DerivedFamily(this);
  protected readonly phases = new PhaseFamily(this);
  protected readonly lossTrend = new LossTrendFamily(this);
  protected readonly families: readonly Family<unknown>[];
  /** Samples seen and newest sample time evaluated, per detector kind. */
  protected readonly samplesOf = new Float64Array(KINDS);
  protected readonly lastEvalOf = new Float64Array(KINDS).fill(Number.NaN);
  /** Per tenant: samples and last evaluation per detector kind, so that a tenant sees only its own. */
  protected readonly tenantCounts = new Map<string, { samples: Float64Array; lastEval: Float64Array }>();

  // ---- jobs and alerts -----------------------------------------------------------------------------------
  protected readonly jobs = new Map<string, JobState>();
  protected readonly memberAlerts = new Map<string, MemberAlert>();
  protected readonly rules = new Map<string, AlertRule>();
  protected readonly touched: JobState[] = [];
  /**
   * The wall-clock minute of the last sweep (forgetting). Sweeps run on the first tick of each minute, so an
   * engine restored from another's state sweeps when that one would have: NaN until the first tick, which
   * takes its minute as swept (the previous owner swept it), keeping a hand-over exact.
   */
  protected sweptMinute = Number.NaN;
  /** The wall clock as of the last tick: when samples arrive (processing time), for whole-job absence. */
  protected wallNow = Number.NaN;
  /**
   * Per series: the wall-clock time (as of the last tick) a sample of it last arrived, or it was created or
   * restored; NaN before the first tick. A series is forgotten once nothing arrived for the TTL, whatever its
   * samples' own times: a replay, a backfill or a processor that fell behind sends samples older than the
   * TTL that are anything but silence.
   */
  protected arrivedAt = new Float64Array(1024);
  protected readonly seriesTtlMs: number;
  protected readonly derived = new Map<string, DerivedAccumulator>();
  protected readonly derivedOut = new DerivedOutput();
  protected readonly withDerived: boolean;
  protected readonly lastTOf = (d: number) => this.lastTs[d]!;

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

  // ---- series ---------------------------------------------------------------------------------------------

  /**
   * The dref of the series of `tenant` with `labels` (creating it when new). `shared`: `labels` already has
   * `tenant` set to the tenant and is never mutated by its owner, so the engine keeps it instead of a copy.
   */
  protected seriesFor(tenant: string, labels: LabelSet, name: string, shared: boolean): number {
    const h = labelsHash(tenant, labels);
    const found = this.findByHash(h, tenant, labels);
    if (found >= 0) return found;
    const own = shared && labels.tenant === tenant ? labels : { ...labels, tenant };
    return this.createSeries(h, tenant, own, name);
  }

  protected findByHash(h: number, tenant: string, labels: LabelSet): number {
    let d = this.byHash.get(h) ?? -1;
    while (d >= 0) {
      const info = this.infos[d]!;
      if (info.tenant === tenant && sameLabels(info.labels, labels)) return d;
      d = this.sameHash[d]!;
    }
    return -1;
  }

  protected allocDref(): number {
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

  protected createSeries(h: number, tenant: string, labels: LabelSet, name: string): number {
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
  protected planFor(name: string, labels: LabelSet): Plan {
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

  protected setEntries(d: number, entries: readonly number[]): void {
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

  protected compactEntries(): void {
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
  protected forget(d: number, now: number, endAlerts = true): void {
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

  protected jobFor(tenant: string, jobId: string): JobState {
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
  // The parameter lists below repeat the interface's (context.ts DetectorContext) as any implementation does.

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
