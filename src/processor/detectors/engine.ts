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
 *
 * The class is built in layers, one file each: the series registry and the detectors' context
 * (engine-series.ts), the state save and restore (engine-state.ts), and here the ingest path (the per-sample
 * loop), the wall-clock tick and the status the alerting stage shows.
 */
import type { Alert, DetectorStatus as AlertingDetectorStatus } from '../../alerting/contract.js';
import { isStaleNaN, type SeriesBatch } from '../../model/batch.js';
import type { JobEvent } from '../../model/job.js';
import type { RecordBatch } from '../record-decoder.js';
import type { SeriesTable } from '../series-table.js';
import { DETECTOR_NAMES, type DetectorName } from './config.js';
import {
  ANOMALY,
  DERIVED_KIND,
  ECC,
  type EngineOptions,
  KINDS,
  LOSS_SPIKE,
  LOSS_TREND,
  MEMORY_LEAK,
  NAME_CACHE_LIMIT,
  NONFINITE,
  NOT_ANALYSED,
  PHASE,
  PLATEAU,
  SLOT_BITS,
  SLOT_MASK,
  STEP,
  STRAGGLER,
  THRESHOLD,
  THROTTLE,
  THROUGHPUT,
  UNRESOLVED,
  WASTE,
} from './engine-series.js';
import { type EngineSnapshot, EngineState, type PartitionOf } from './engine-state.js';
import type { JobState } from './job-state.js';
import { phaseCode } from './phase.js';
import { DETECTOR_ALERTS, DETECTOR_DESCRIPTIONS, type FamilyName } from './types.js';

export type { EngineOptions, EngineSnapshot, PartitionOf };

/** The status the alerting stage shows (alerting/contract.ts), with the detector's name as the engine knows it. */
export interface DetectorStatus extends AlertingDetectorStatus {
  readonly name: DetectorName | 'threshold';
}

export class DetectorEngine extends EngineState {
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
    // Series created or restored before the first tick (a processor restores its partitions' state as it
    // starts) arrived now: their arrival is unknown (NaN), and the sweep would otherwise fall back to their
    // last sample's time, which in a replay or a backlog can be a whole TTL old; it would forget series the
    // previous owner keeps, and their open alerts would restart as second episodes.
    if (Number.isNaN(this.wallNow))
      for (let d = 0; d < this.drefLimit; d++)
        if (this.infos[d] !== undefined && Number.isNaN(this.arrivedAt[d]!)) this.arrivedAt[d] = now;
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

  // ---- alerts and status ---------------------------------------------------------------------------

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
}
