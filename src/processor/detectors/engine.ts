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
 * Cost: one Map lookup per series per batch for series no detector looks at (the metric-name pre-filter);
 * for the others a key per series per batch and O(1) work per sample (loss spikes sort a 64-value window).
 */
import { fingerprint, type Severity } from '../../alerting/alert.js';
import type { Alert } from '../../alerting/notifier.js';
import {
  type AlertRule,
  type AlertSink,
  AlertTracker,
  type AlertTrackerSnapshot,
} from '../../alerting/tracker.js';
import { isStaleNaN, type SeriesBatch } from '../../model/batch.js';
import type { JobEvent } from '../../model/job.js';
import type { LabelSet } from '../../model/labels.js';
import {
  DERIVED,
  DerivedAccumulator,
  DerivedMember,
  DerivedOutput,
  type DerivedSnapshot,
} from '../derived.js';
import { DETECTOR_NAMES, type DetectorName, type DetectorSettings, matchesAny } from './config.js';
import type { AlertIdentity, DetectorContext } from './context.js';
import { type JobSnapshot, JobState, jobKey, StepProgress, StragglerMember } from './job-detectors.js';
import {
  AnomalyDetector,
  EccDetector,
  LossSpikeDetector,
  MemoryLeakDetector,
  NonFiniteDetector,
  PlateauDetector,
  ThresholdDetector,
  ThrottleDetector,
  ThroughputDetector,
  WasteDetector,
} from './series-detectors.js';
import { DETECTOR_ALERTS, DETECTOR_DESCRIPTIONS, type SeriesDetector, type SeriesInfo } from './types.js';

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

export interface DetectorStatus {
  readonly name: DetectorName | 'threshold';
  readonly description: string;
  readonly enabled: boolean;
  readonly alertnames: readonly string[];
  /** Series or jobs this detector currently looks at. */
  readonly tracked: number;
  readonly samples: number;
  readonly lastEvaluationMs: number | null;
  readonly pending: number;
  readonly firing: number;
  readonly state: 'inactive' | 'pending' | 'firing';
  readonly params: unknown;
}

interface MemberAlert {
  readonly id: AlertIdentity;
  readonly members: Map<string, number>;
}

const DEFAULT_SERIES_TTL_MS = 15 * 60_000;
const NAME_CACHE_LIMIT = 50_000;

export class DetectorEngine implements DetectorContext {
  readonly tracker: AlertTracker;
  private readonly series = new Map<string, SeriesInfo>();
  /**
   * Label-set object → series, for senders and decoders that hand the same label objects again (the
   * simulator, an interning decoder): skips building the key. Weak, so it never keeps a batch alive.
   */
  private readonly byObject = new WeakMap<LabelSet, SeriesInfo>();
  private readonly jobs = new Map<string, JobState>();
  private readonly memberAlerts = new Map<string, MemberAlert>();
  private readonly rules = new Map<string, AlertRule>();
  private readonly patterns: RegExp[];
  /** Metric name → whether any detector might look at it. */
  private readonly interesting = new Map<string, boolean>();
  private readonly samplesBy = new Map<string, number>();
  private readonly lastEvalBy = new Map<string, number>();
  private readonly touched: JobState[] = [];
  private lastSweep = Number.NEGATIVE_INFINITY;
  /** The wall clock as of the last tick: when samples arrive (processing time), for whole-job absence. */
  private wallNow = Number.NaN;
  private readonly seriesTtlMs: number;
  private readonly derived = new Map<string, DerivedAccumulator>();
  private readonly derivedOut = new DerivedOutput();
  private readonly withDerived: boolean;

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
  }

  /** Derived samples computed since the last call, one batch per tenant. */
  takeDerived(): [string, SeriesBatch][] {
    return this.derivedOut.empty ? [] : this.derivedOut.take();
  }

  // ---- ingest -------------------------------------------------------------------------------------------

  /** Applies one batch of `tenant` (one bus record), in bus order. */
  observe(tenant: string, batch: SeriesBatch): void {
    const { series, offsets, timestamps, values } = batch;
    for (let i = 0; i < series.length; i++) {
      const labels = series[i]!;
      const name = labels.__name__;
      if (name === undefined || !this.isInteresting(name)) continue;
      const info = this.seriesFor(tenant, labels, name);
      const job = info.job as JobState | undefined;
      if (job?.finished) continue;
      const dets = info.detectors;
      const nodeId = labels.node_id;
      for (let j = offsets[i]!; j < offsets[i + 1]!; j++) {
        const t = timestamps[j]!;
        if (t <= info.lastT) continue;
        const v = values[j]!;
        if (isStaleNaN(v)) continue;
        info.lastT = t;
        info.lastV = v;
        if (job) job.noteSample(t, nodeId);
        for (let k = 0; k < dets.length; k++) dets[k]!.observe(t, v);
      }
      if (job && !this.touched.includes(job)) this.touched.push(job);
      for (const d of dets) {
        this.samplesBy.set(d.detector, (this.samplesBy.get(d.detector) ?? 0) + 1);
        this.lastEvalBy.set(d.detector, info.lastT);
      }
    }
    for (const job of this.touched) {
      if (!Number.isNaN(this.wallNow)) job.lastArrival = this.wallNow;
      job.evaluate();
      this.derived.get(job.key)?.emit(this.derivedOut);
    }
    this.touched.length = 0;
  }

  /** Job events travel with the samples: a finished job's alerts resolve at its finish time. */
  observeEvents(tenant: string, events: readonly JobEvent[]): void {
    for (const ev of events) {
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
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, info] of this.series) {
      if (now - info.lastT < this.seriesTtlMs) continue;
      for (const d of info.detectors) d.dispose?.(now);
      (info.job as JobState | undefined)?.removeSeries(info);
      const acc = info.job ? this.derived.get((info.job as JobState).key) : undefined;
      if (acc) {
        const i = acc.members.findIndex((m) => m.series === info);
        if (i >= 0) acc.members.splice(i, 1);
      }
      this.series.delete(key);
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

  private seriesFor(tenant: string, labels: LabelSet, name: string): SeriesInfo {
    const cached = this.byObject.get(labels);
    if (cached && cached.tenant === tenant && this.series.get(cached.key) === cached) return cached;
    const key = seriesKey(tenant, labels);
    let info = this.series.get(key);
    if (!info) {
      info = this.createSeries(key, tenant, labels, name);
      this.series.set(key, info);
    }
    this.byObject.set(labels, info);
    return info;
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
      );
      this.jobs.set(key, job);
    }
    return job;
  }

  private createSeries(key: string, tenant: string, raw: LabelSet, name: string): SeriesInfo {
    const labels: LabelSet = { ...raw, tenant };
    const jobId = labels.job_id;
    const job = jobId !== undefined && jobId !== '' ? this.jobFor(tenant, jobId) : undefined;
    const detectors: SeriesDetector[] = [];
    const info: SeriesInfo = {
      key,
      name,
      tenant,
      labels,
      job,
      lastT: Number.NEGATIVE_INFINITY,
      lastV: Number.NaN,
      detectors,
    };
    const s = this.settings;
    for (const rule of s.thresholds) {
      if (rule.metric !== name) continue;
      const r = s.threshold(rule, labels);
      if (r.enabled) detectors.push(new ThresholdDetector(info, r, this));
    }
    const nonfinite = s.params('nonfinite', labels);
    if (nonfinite.enabled && job && matchesAny(name, nonfinite.metrics))
      detectors.push(new NonFiniteDetector(info, nonfinite, this));
    const spike = s.params('loss_spike', labels);
    if (spike.enabled && job && matchesAny(name, spike.metrics))
      detectors.push(new LossSpikeDetector(info, spike, this));
    const anomaly = s.params('anomaly', labels);
    if (anomaly.enabled && matchesAny(name, anomaly.metrics))
      detectors.push(new AnomalyDetector(info, anomaly, this));
    const throughput = s.params('throughput', labels);
    if (throughput.enabled && job && matchesAny(name, throughput.metrics))
      detectors.push(new ThroughputDetector(info, throughput, this));
    const plateau = s.params('plateau', labels);
    if (plateau.enabled && job && matchesAny(name, plateau.metrics))
      detectors.push(new PlateauDetector(info, plateau, this));
    const ecc = s.params('ecc', labels);
    if (ecc.enabled && name === ecc.metric) detectors.push(new EccDetector(info, ecc, this));
    const throttle = s.params('throttle', labels);
    if (throttle.enabled && name === throttle.metric)
      detectors.push(new ThrottleDetector(info, throttle, this));
    const leak = s.params('memory_leak', labels);
    if (leak.enabled && name === leak.metric) detectors.push(new MemoryLeakDetector(info, leak, this));
    const waste = s.params('waste', labels);
    if (job && name === waste.metric) job.utilization.push(info);
    if (waste.enabled && job && name === waste.metric) detectors.push(new WasteDetector(info, waste, this));
    if (job) {
      if (name === job.params.stall.metric) detectors.push(new StepProgress(job));
      const sg = s.params('straggler', labels);
      if (
        sg.enabled &&
        matchesAny(name, sg.metrics) &&
        (labels.node_id !== undefined || labels.rank !== undefined)
      ) {
        const member = new StragglerMember(info, sg, this);
        detectors.push(member);
        job.addStragglerMember(member);
      }
      if (this.withDerived && DERIVED[name] !== undefined) {
        let acc = this.derived.get(job.key);
        if (!acc) {
          acc = new DerivedAccumulator(tenant, job.jobId);
          this.derived.set(job.key, acc);
        }
        const member = new DerivedMember(info, acc.nextIndex++, acc);
        acc.members.push(member);
        detectors.push(member);
      }
    }
    return info;
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

  member(
    id: AlertIdentity,
    memberKey: string,
    active: boolean,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
  ): void {
    let m = this.memberAlerts.get(id.fingerprint);
    if (active) {
      if (!m) {
        m = { id, members: new Map() };
        this.memberAlerts.set(id.fingerprint, m);
      }
      m.members.set(memberKey, value);
      let max = Number.NEGATIVE_INFINITY;
      for (const v of m.members.values()) if (v > max) max = v;
      this.tracker.activate(id.fingerprint, id.rule, id.labels, t, max, annotate);
    } else if (m?.members.delete(memberKey) && m.members.size === 0) {
      this.memberAlerts.delete(id.fingerprint);
      this.tracker.deactivate(id.fingerprint, t);
    }
  }

  sibling(series: SeriesInfo, name: string): SeriesInfo | undefined {
    return this.series.get(seriesKey(series.tenant, { ...series.labels, __name__: name }));
  }

  // ---- state --------------------------------------------------------------------------------------------

  activeAlerts(): Alert[] {
    return this.tracker.active();
  }

  status(): DetectorStatus[] {
    const counts = this.tracker.countByOrigin();
    const tracked = new Map<string, number>();
    for (const info of this.series.values())
      for (const d of info.detectors) tracked.set(d.detector, (tracked.get(d.detector) ?? 0) + 1);
    tracked.set('stall', [...this.jobs.values()].filter((j) => j.hasStepSeries && !j.finished).length);
    tracked.set('absence', this.jobs.size);
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
        samples: this.samplesBy.get(name) ?? 0,
        lastEvaluationMs: this.lastEvalBy.get(name) ?? null,
        pending: c.pending,
        firing: c.firing,
        state: c.firing > 0 ? 'firing' : c.pending > 0 ? 'pending' : 'inactive',
        params,
      };
    });
  }

  snapshot(): EngineSnapshot {
    const series: EngineSnapshot['series'] = [];
    for (const info of this.series.values()) {
      const d: Record<string, unknown> = {};
      info.detectors.forEach((det, i) => {
        if (det.save) d[`${i}:${det.detector}`] = det.save();
      });
      series.push({ l: info.labels, t: info.lastT, v: Number.isFinite(info.lastV) ? info.lastV : null, d });
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

  /** Restores a snapshot taken by {@link snapshot} (with the configuration of now). Reports nothing. */
  restore(s: EngineSnapshot): void {
    if (s.version !== 1) throw new Error(`unsupported detector state version ${String(s.version)}`);
    for (const js of s.jobs) this.jobFor(js.tenant, js.jobId).restore(js);
    for (const rec of s.series) {
      const tenant = rec.l.tenant ?? '';
      const name = rec.l.__name__;
      if (name === undefined) continue;
      const info = this.seriesFor(tenant, rec.l, name);
      info.lastT = rec.t ?? Number.NEGATIVE_INFINITY;
      info.lastV = rec.v ?? Number.NaN;
      info.detectors.forEach((det, i) => {
        const data = rec.d[`${i}:${det.detector}`];
        if (data !== undefined) det.load?.(data);
      });
    }
    for (const [tenant, jobId, ds] of s.derived ?? []) this.derived.get(jobKey(tenant, jobId))?.restore(ds);
    this.tracker.restore(s.alerts);
    for (const [fp, members] of s.members) {
      const a = s.alerts.find((x) => x.fingerprint === fp);
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
