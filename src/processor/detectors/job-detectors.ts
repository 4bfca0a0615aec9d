/**
 * Detectors that look at a whole training job: step progress (stall — the NCCL-hang signature), nodes that
 * stopped reporting, and stragglers (the rank whose step time or GPU utilization deviates from the others).
 * A job's state is fed by its series (step series, straggler members) and evaluated once per batch of the job,
 * on the job's event-time clock: the newest sample time of any of its series.
 */
import { formatSeconds, formatValue } from '../../alerting/contract.js';
import type { LabelSet } from '../../model/labels.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, type DetectorContext, locationLabels } from './context.js';
import { Family, growF64 } from './series-detectors.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, Ring, scratchOf } from './stats.js';
import type { JobRef, SeriesInfo } from './types.js';

const STEP_TIME_SAMPLES = 32;

export interface JobParams {
  readonly stall: DetectorParams<'stall'>;
  readonly absence: DetectorParams<'absence'>;
  readonly straggler: DetectorParams<'straggler'>;
}

export interface JobSnapshot {
  readonly tenant: string;
  readonly jobId: string;
  readonly clock: number;
  readonly finished: boolean;
  readonly lastProgressT: number | null;
  readonly stepTimes: number[];
  readonly nodes: [string, number][];
  readonly lastStragglerEval: number | null;
  readonly hasStepSeries: boolean;
}

/** Where a straggler member is: its node and rank (or GPU); members at one place share one alert. */
interface StragglerPlace {
  readonly labels: Record<string, string>;
  id: AlertIdentity | undefined;
}

export class JobState implements JobRef {
  clock = Number.NEGATIVE_INFINITY;
  /**
   * Wall-clock time a sample of the job last *arrived* (processing time, not event time): whole-job absence
   * is about data that stopped arriving, so a backfill of old samples or a replay is not mistaken for it.
   * Not checkpointed: after a restart every job gets `absent_for` to report again.
   */
  lastArrival = Number.NaN;
  finished = false;
  /** Newest time a step series advanced (or restarted); NaN until the first advance. */
  lastProgressT = Number.NaN;
  hasStepSeries = false;
  /** Set while the job waits in the engine's list of jobs to evaluate after the current batch. */
  touched = false;
  private stepTimes = new Ring(STEP_TIME_SAMPLES);
  /** max(factor × median step time, min), recomputed only when a step time is added. */
  private stallThreshold = Number.NaN;
  /** Nodes by slot: id and newest sample time. A series knows its node's slot (no lookup per sample). */
  readonly nodeIds: string[] = [];
  nodeLastT = new Float64Array(8).fill(Number.NEGATIVE_INFINITY);
  private readonly nodeSlots = new Map<string, number>();
  private readonly nodeAlerts: (AlertIdentity | undefined)[] = [];
  /** Straggler members (slots of the engine's straggler family), by metric. */
  readonly stragglerGroups = new Map<string, number[]>();
  /** Per straggler slot of this job: the index of its place in `places`. */
  private readonly placeOfSlot = new Map<number, number>();
  private readonly places: StragglerPlace[] = [];
  private readonly placeIndex = new Map<string, number>();
  private lastStragglerEval = Number.NEGATIVE_INFINITY;
  /** How many ranks had fresh values at the last comparison: more now (a late node's batch) compares again. */
  private lastCompared = 0;
  /** GPU utilization series of the job (drefs), to describe a hang (some ranks at 0%, others at 100%). */
  readonly utilization: number[] = [];
  readonly stallId: AlertIdentity;
  readonly absentId: AlertIdentity;
  private readonly base: LabelSet;
  readonly key: string;

  constructor(
    readonly tenant: string,
    readonly jobId: string,
    readonly params: JobParams,
    private readonly ctx: DetectorContext,
    private readonly stragglers: StragglerFamily,
  ) {
    this.key = jobKey(tenant, jobId);
    this.base = { tenant, job_id: jobId };
    const st = params.stall;
    this.stallId = ctx.identity(
      'stall',
      'TrainingStalled',
      st.severity,
      st.for,
      st.keep_firing_for,
      this.base,
    );
    const ab = params.absence;
    this.absentId = ctx.identity(
      'absence',
      'JobMetricsAbsent',
      ab.severity,
      ab.for,
      ab.keep_firing_for,
      this.base,
    );
  }

  /** The slot of node `nodeId` (created when new), -1 for a series without a node. */
  nodeSlot(nodeId: string | undefined): number {
    if (nodeId === undefined) return -1;
    let slot = this.nodeSlots.get(nodeId);
    if (slot === undefined) {
      slot = this.nodeIds.length;
      this.nodeIds.push(nodeId);
      this.nodeSlots.set(nodeId, slot);
      if (slot >= this.nodeLastT.length)
        this.nodeLastT = growF64(this.nodeLastT, this.nodeLastT.length * 2, Number.NEGATIVE_INFINITY);
    }
    return slot;
  }

  noteSample(t: number, nodeSlot: number): void {
    if (t > this.clock) this.clock = t;
    if (nodeSlot >= 0 && !(this.nodeLastT[nodeSlot]! >= t)) this.nodeLastT[nodeSlot] = t;
  }

  noteProgress(t: number, secondsPerStep: number): void {
    if (!(this.lastProgressT >= t)) this.lastProgressT = t;
    if (Number.isFinite(secondsPerStep) && secondsPerStep > 0) {
      this.stepTimes.push(secondsPerStep);
      this.stallThreshold = Number.NaN;
    }
  }

  /** How long the step may stand still before the job counts as stalled: max(factor × median, min). */
  stallThresholdMs(): number {
    if (Number.isNaN(this.stallThreshold)) {
      const p = this.params.stall;
      this.stallThreshold =
        this.stepTimes.size === 0 ? p.min : Math.max(p.factor * this.medianStepSeconds() * 1000, p.min);
    }
    return this.stallThreshold;
  }

  medianStepSeconds(): number {
    return this.stepTimes.size === 0
      ? Number.NaN
      : medianInPlace(copyInto(this.stepTimes), this.stepTimes.size);
  }

  progressing(t: number): boolean {
    if (!this.hasStepSeries) return true;
    if (Number.isNaN(this.lastProgressT)) return false;
    return t - this.lastProgressT < this.stallThresholdMs();
  }

  /** Runs after each batch of the job: stall, absent nodes, stragglers (every `straggler.every`). */
  evaluate(): void {
    if (this.finished) return;
    const t = this.clock;
    const st = this.params.stall;
    if (st.enabled && this.hasStepSeries && !Number.isNaN(this.lastProgressT)) {
      const threshold = this.stallThresholdMs();
      const since = t - this.lastProgressT;
      if (since >= threshold) {
        this.ctx.activate(this.stallId, t, since / 1000, (s) => this.describeStall(s));
      } else {
        this.ctx.deactivate(this.stallId, t);
      }
    }
    const ab = this.params.absence;
    if (ab.enabled) {
      for (let slot = 0; slot < this.nodeIds.length; slot++) {
        const lastT = this.nodeLastT[slot]!;
        if (lastT === Number.NEGATIVE_INFINITY) continue;
        const gap = t - lastT;
        const node = this.nodeIds[slot]!;
        if (gap >= ab.node_absent_for && gap < ab.forget_after) {
          const id = this.nodeIdentity(slot, ab);
          this.ctx.activate(id, t, gap / 1000, (s) => ({
            summary: `node ${node} stopped reporting ${formatSeconds(s)} ago`,
            description: `No sample from node ${node} of job ${this.jobId} for ${formatSeconds(s)}, while the job's other nodes still report: the node, its agent or its processes may be down.`,
          }));
        } else {
          // A node that never raised an alert here has none open, unless the state was restored with one.
          const id = this.nodeAlerts[slot] ?? (this.restoredAlerts ? this.nodeIdentity(slot, ab) : undefined);
          if (id) this.ctx.deactivate(id, t);
        }
      }
    }
    const sg = this.params.straggler;
    if (sg.enabled && this.stragglerGroups.size > 0) {
      let fresh = 0;
      const lastT = this.stragglers.lastT;
      for (const members of this.stragglerGroups.values())
        for (const m of members) if (t - lastT[m]! <= sg.fresh) fresh++;
      if (t - this.lastStragglerEval >= sg.every || fresh > this.lastCompared) {
        this.lastStragglerEval = t;
        this.lastCompared = fresh;
        this.evaluateStragglers(t, sg);
      }
    }
  }

  private nodeIdentity(slot: number, ab: DetectorParams<'absence'>): AlertIdentity {
    let id = this.nodeAlerts[slot];
    if (!id) {
      id = this.ctx.identity('absence', 'NodeMetricsAbsent', ab.severity, ab.for, ab.keep_firing_for, {
        ...this.base,
        node_id: this.nodeIds[slot]!,
      });
      this.nodeAlerts[slot] = id;
    }
    return id;
  }

  private describeStall(seconds: number): Record<string, string> {
    const med = this.medianStepSeconds();
    let idle = 0;
    let busy = 0;
    for (const u of this.utilization) {
      if (this.clock - this.ctx.lastT(u) > 60_000) continue;
      const v = this.ctx.lastV(u);
      if (v < 0.05) idle++;
      else if (v > 0.95) busy++;
    }
    const gpus =
      idle > 0 && busy > 0
        ? ` ${idle} GPU(s) sit at 0% while ${busy} spin at 100%: the signature of a collective-communication (NCCL) hang.`
        : '';
    return {
      summary: `training step has not advanced for ${formatSeconds(seconds)}`,
      description: `train_step of job ${this.jobId} has not advanced for ${formatSeconds(seconds)}${Number.isNaN(med) ? '' : ` (median step time ${formatValue(med)} s)`} while its processes still report.${gpus}`,
    };
  }

  private placeIdentity(place: number, p: DetectorParams<'straggler'>): AlertIdentity {
    const pl = this.places[place]!;
    pl.id ??= this.ctx.identity(
      'straggler',
      'TrainingStraggler',
      p.severity,
      p.for,
      p.keep_firing_for,
      pl.labels,
    );
    return pl.id;
  }

  private evaluateStragglers(t: number, p: DetectorParams<'straggler'>): void {
    const flagged = new Map<number, { z: number; metric: string; value: number; median: number }>();
    // Places compared this time. A rank with no fresh value (its node's batch has not arrived yet, e.g. during
    // a backfill where each node sends a minute at a time) keeps its alert state until it is compared again.
    const compared = new Set<number>();
    const { ewma, lastT } = this.stragglers;
    for (const [metric, members] of this.stragglerGroups) {
      const ratioMetric = metric.endsWith('_ratio');
      const fresh: number[] = [];
      for (const m of members) {
        if (t - lastT[m]! > p.fresh || Number.isNaN(ewma[m]!)) continue;
        if (ratioMetric && ewma[m]! < p.exclude_below) continue;
        fresh.push(m);
      }
      if (fresh.length < p.min_ranks) continue;
      const values = scratchOf(fresh.length * 3);
      for (let i = 0; i < fresh.length; i++) values[fresh.length + i] = ewma[fresh[i]!]!;
      const { median, mad } = medianMad(
        values.subarray(fresh.length, 2 * fresh.length),
        fresh.length,
        values,
      );
      const sigma = Math.max(MAD_TO_SIGMA * mad, 1e-9 * Math.max(1e-9, Math.abs(median)));
      for (const m of fresh) {
        const place = this.placeOfSlot.get(m)!;
        compared.add(place);
        const dev = ewma[m]! - median;
        const z = dev / sigma;
        if (Math.abs(z) > p.z && Math.abs(dev) > p.min_relative * Math.abs(median)) {
          const prev = flagged.get(place);
          if (!prev || Math.abs(z) > Math.abs(prev.z))
            flagged.set(place, { z, metric, value: ewma[m]!, median });
        }
      }
    }
    for (let place = 0; place < this.places.length; place++) {
      const f = flagged.get(place);
      if (f) {
        const id = this.placeIdentity(place, p);
        const where = `${id.labels.rank !== undefined ? `rank ${id.labels.rank}` : `GPU ${id.labels.gpu ?? '?'}`} on node ${id.labels.node_id ?? '?'}`;
        const pct = Math.round((100 * (f.value - f.median)) / Math.abs(f.median || 1));
        this.ctx.activate(id, t, Math.min(1e6, Math.abs(f.z)), () => ({
          summary: `straggler: ${where}`,
          description: `${where} of job ${this.jobId} is a straggler: its ${f.metric} is ${formatValue(f.value)} against a median of ${formatValue(f.median)} across ranks (${pct > 0 ? '+' : ''}${pct}%, robust z ${formatValue(f.z)}). The whole job waits for it at every all-reduce.`,
        }));
      } else if (compared.has(place)) {
        // Only places that ever raised an alert (or were restored with one) have an identity worth checking.
        const id = this.places[place]!.id ?? (this.restoredAlerts ? this.placeIdentity(place, p) : undefined);
        if (id) this.ctx.deactivate(id, t);
      }
    }
  }

  /** Set by a restore: alerts of places may be open although no identity was built since. */
  restoredAlerts = false;

  /** Adds straggler member `slot` (of series `info`) to the job. */
  addStragglerMember(slot: number, info: SeriesInfo): void {
    let group = this.stragglerGroups.get(info.name);
    if (!group) {
      group = [];
      this.stragglerGroups.set(info.name, group);
    }
    group.push(slot);
    const labels: Record<string, string> = {
      tenant: info.tenant,
      job_id: info.labels.job_id ?? '',
      ...locationLabels(info.labels),
    };
    const placeKey = `${labels.node_id ?? ''}\u0000${labels.rank ?? ''}\u0000${labels.gpu ?? ''}`;
    let place = this.placeIndex.get(placeKey);
    if (place === undefined) {
      place = this.places.length;
      this.places.push({ labels, id: undefined });
      this.placeIndex.set(placeKey, place);
    }
    this.placeOfSlot.set(slot, place);
  }

  /** Forgets series `dref` (its straggler slot, if any, is `stragglerSlot`). */
  removeSeries(info: SeriesInfo, stragglerSlot: number): void {
    if (stragglerSlot >= 0) {
      const group = this.stragglerGroups.get(info.name);
      if (group) {
        const i = group.indexOf(stragglerSlot);
        if (i >= 0) group.splice(i, 1);
      }
      this.placeOfSlot.delete(stragglerSlot);
    }
    const u = this.utilization.indexOf(info.dref);
    if (u >= 0) this.utilization.splice(u, 1);
  }

  /** The wall-clock side of absence: the whole job stopped reporting (called only when the processor is live). */
  checkAbsent(now: number): void {
    const ab = this.params.absence;
    if (!ab.enabled || this.finished || !Number.isFinite(this.clock)) return;
    if (Number.isNaN(this.lastArrival)) this.lastArrival = now;
    const silence = now - this.lastArrival;
    if (silence >= ab.job_absent_for && silence < ab.forget_after) {
      this.ctx.activate(this.absentId, now, silence / 1000, (s) => ({
        summary: `job stopped reporting ${formatSeconds(s)} ago`,
        description: `No sample from any process of job ${this.jobId} for ${formatSeconds(s)}, and the job never said it finished: it may have crashed or lost its agents.`,
      }));
    } else {
      this.ctx.deactivate(this.absentId, now);
    }
  }

  snapshot(): JobSnapshot {
    const nodes: [string, number][] = [];
    for (let slot = 0; slot < this.nodeIds.length; slot++) {
      const t = this.nodeLastT[slot]!;
      if (t !== Number.NEGATIVE_INFINITY) nodes.push([this.nodeIds[slot]!, t]);
    }
    return {
      tenant: this.tenant,
      jobId: this.jobId,
      clock: this.clock,
      finished: this.finished,
      lastProgressT: Number.isNaN(this.lastProgressT) ? null : this.lastProgressT,
      stepTimes: this.stepTimes.toArray(),
      nodes,
      lastStragglerEval: Number.isFinite(this.lastStragglerEval) ? this.lastStragglerEval : null,
      hasStepSeries: this.hasStepSeries,
    };
  }

  restore(s: JobSnapshot): void {
    this.clock = s.clock ?? Number.NEGATIVE_INFINITY;
    this.finished = s.finished;
    this.lastProgressT = s.lastProgressT ?? Number.NaN;
    this.stepTimes = Ring.from(STEP_TIME_SAMPLES, s.stepTimes);
    this.stallThreshold = Number.NaN;
    for (const [n, t] of s.nodes) {
      const slot = this.nodeSlot(n);
      if (!(this.nodeLastT[slot]! >= t)) this.nodeLastT[slot] = t;
    }
    this.lastStragglerEval = s.lastStragglerEval ?? Number.NEGATIVE_INFINITY;
    this.hasStepSeries = s.hasStepSeries;
    this.restoredAlerts = true;
  }
}

function copyInto(r: Ring): Float64Array {
  const out = scratchOf(r.size);
  out.set(r.values.subarray(0, r.size));
  return out;
}

export function jobKey(tenant: string, jobId: string): string {
  return `${tenant}\u0000${jobId}`;
}

/** Feeds each job's step progress from its `train_step` series (one per rank). */
export class StepFamily extends Family<JobState> {
  readonly detector = 'stall' as const;
  private lastV = new Float64Array(0);
  private lastIncT = new Float64Array(0);
  private lastIncV = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.lastV = growF64(this.lastV, n);
    this.lastIncT = growF64(this.lastIncT, n);
    this.lastIncV = growF64(this.lastIncV, n);
  }

  protected reset(slot: number): void {
    this.lastV[slot] = Number.NaN;
    this.lastIncT[slot] = Number.NaN;
    this.lastIncV[slot] = Number.NaN;
    this.params[slot]!.hasStepSeries = true;
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('step progress raises no alert of its own (the job does)');
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const lastV = this.lastV[slot]!;
    if (Number.isNaN(lastV)) {
      this.lastV[slot] = this.lastIncV[slot] = v;
      this.lastIncT[slot] = t;
      return;
    }
    const job = this.params[slot]!;
    if (v > lastV) {
      job.noteProgress(t, (t - this.lastIncT[slot]!) / 1000 / (v - this.lastIncV[slot]!));
      this.lastIncT[slot] = t;
      this.lastIncV[slot] = v;
    } else if (v < lastV) {
      // Restarted from a checkpoint: the job is alive and moving again; measure from here.
      job.noteProgress(t, Number.NaN);
      this.lastIncT[slot] = t;
      this.lastIncV[slot] = v;
    }
    this.lastV[slot] = v;
  }

  override dispose(): void {}

  override save(slot: number): unknown {
    return [this.lastV[slot], this.lastIncT[slot], this.lastIncV[slot]];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length !== 3) return;
    const d = data.map((x) => (x === null ? Number.NaN : Number(x)));
    this.lastV[slot] = d[0]!;
    this.lastIncT[slot] = d[1]!;
    this.lastIncV[slot] = d[2]!;
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.lastV[slot]!);
    w.float(this.lastIncT[slot]!);
    w.float(this.lastIncV[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.lastV[slot] = r.float('StepFamily');
    this.lastIncT[slot] = r.float('StepFamily');
    this.lastIncV[slot] = r.float('StepFamily');
  }
}

/** Each rank's smoothed step time or GPU utilization, compared with its job's other ranks by the job. */
export class StragglerFamily extends Family<DetectorParams<'straggler'>> {
  readonly detector = 'straggler' as const;
  ewma = new Float64Array(0);
  lastT = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.ewma = growF64(this.ewma, n);
    this.lastT = growF64(this.lastT, n);
  }

  protected reset(slot: number): void {
    this.ewma[slot] = Number.NaN;
    this.lastT[slot] = Number.NEGATIVE_INFINITY;
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('straggler alerts belong to the job (one per place)');
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const prev = this.ewma[slot]!;
    this.ewma[slot] = Number.isNaN(prev) ? v : prev + this.params[slot]!.alpha * (v - prev);
    this.lastT[slot] = t;
  }

  override dispose(): void {}

  override save(slot: number): unknown {
    return [this.ewma[slot], this.lastT[slot]];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length !== 2) return;
    this.ewma[slot] = data[0] === null ? Number.NaN : Number(data[0]);
    this.lastT[slot] = data[1] === null ? Number.NEGATIVE_INFINITY : Number(data[1]);
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.ewma[slot]!);
    w.float(this.lastT[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.ewma[slot] = r.float('StragglerFamily');
    this.lastT[slot] = r.float('StragglerFamily');
  }
}
