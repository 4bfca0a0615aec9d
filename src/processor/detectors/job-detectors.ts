/**
 * Detectors that look at a whole training job: step progress (stall — the NCCL-hang signature), nodes that
 * stopped reporting, and stragglers (the rank whose step time or GPU utilization deviates from the others).
 * A job's state is fed by its series (step series, straggler members) and evaluated once per batch of the job,
 * on the job's event-time clock: the newest sample time of any of its series.
 *
 * This file holds the families that feed the jobs (step series, straggler members, reported phases); the
 * job itself is in job-signals.ts (what its series tell) and job-state.ts (its evaluation and state).
 */
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams } from './config.js';
import type { AlertIdentity } from './context.js';
import { Family, growF64, SiblingColumn } from './family.js';
import type { JobState } from './job-state.js';
import { isAtLoadMetric } from './job-state.js';
import { isPausePhase, PHASE_COOLDOWN, PHASE_FROZEN, PHASE_STARTUP, phaseCode } from './phase.js';

/** Feeds each job's step progress from its `train_step` series (one per rank). */
export class StepFamily extends Family<JobState> {
  readonly detector = 'stall' as const;
  private lastV = new Float64Array(0);
  /** Newest time each step series advanced (read by its job to find the rank that stopped first). */
  lastIncT = new Float64Array(0);
  private lastIncV = new Float64Array(0);
  /** Newest sample time of each step series (its reporting interval feeds the job's). */
  private lastT = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.lastV = growF64(this.lastV, n);
    this.lastIncT = growF64(this.lastIncT, n);
    this.lastIncV = growF64(this.lastIncV, n);
    this.lastT = growF64(this.lastT, n);
  }

  protected reset(slot: number): void {
    this.lastV[slot] = Number.NaN;
    this.lastIncT[slot] = Number.NaN;
    this.lastIncV[slot] = Number.NaN;
    this.lastT[slot] = Number.NaN;
    const job = this.params[slot]!;
    job.hasStepSeries = true;
    job.stepSlots.push(slot);
  }

  override free(slot: number): void {
    const job = this.params[slot];
    if (job) {
      const i = job.stepSlots.indexOf(slot);
      if (i >= 0) job.stepSlots.splice(i, 1);
    }
    super.free(slot);
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('step progress raises no alert of its own (the job does)');
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const job = this.params[slot]!;
    const prevT = this.lastT[slot]!;
    this.lastT[slot] = t;
    const lastV = this.lastV[slot]!;
    if (Number.isNaN(lastV)) {
      this.lastV[slot] = this.lastIncV[slot] = v;
      this.lastIncT[slot] = t;
      return;
    }
    // Only samples that moved count: a step series sampled during a pause says nothing about the interval.
    if (v !== lastV) job.noteStepInterval(t - prevT);
    if (v > lastV) {
      job.noteProgress(t, (t - this.lastIncT[slot]!) / 1000 / (v - this.lastIncV[slot]!));
      this.lastIncT[slot] = t;
      this.lastIncV[slot] = v;
    } else if (v < lastV) {
      // Restarted from a checkpoint: the job is alive and moving again; measure from here.
      job.noteProgress(t, Number.NaN, true);
      this.lastIncT[slot] = t;
      this.lastIncV[slot] = v;
    }
    this.lastV[slot] = v;
  }

  override dispose(): void {}

  override save(slot: number): unknown {
    const base = [this.lastV[slot], this.lastIncT[slot], this.lastIncV[slot]];
    // Without a reporting time (state restored from before it was kept) the state is what it was.
    return Number.isNaN(this.lastT[slot]!) ? base : [...base, this.lastT[slot]];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length < 3) return;
    const d = data.map((x) => (x === null ? Number.NaN : Number(x)));
    this.lastV[slot] = d[0]!;
    this.lastIncT[slot] = d[1]!;
    this.lastIncV[slot] = d[2]!;
    this.lastT[slot] = d[3] ?? Number.NaN;
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.lastV[slot]!);
    w.float(this.lastIncT[slot]!);
    w.float(this.lastIncV[slot]!);
    w.float(this.lastT[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.lastV[slot] = r.float('StepFamily');
    this.lastIncT[slot] = r.float('StepFamily');
    this.lastIncV[slot] = r.float('StepFamily');
    // State written before the reporting interval was kept has three numbers.
    this.lastT[slot] = r.remaining >= 8 ? r.float('StepFamily') : Number.NaN;
  }
}

/**
 * Each rank's smoothed step time or GPU utilization, compared with its job's other ranks by the job. Clocks and
 * power are read as they are at comparison time (the engine keeps every series' newest value): they are
 * sampled per GPU, the most numerous members, and smoothing them on every sample cost the engine a tenth of its
 * speed; the alert's `for` asks a clock deficit to persist instead.
 */
/**
 * The longest a straggler member's smoothing may average over (ms): `alpha` is per sample, which at 1–2 s
 * sampling averages a few seconds, but at 10–15 s sampling would average over a minute or more and wash out a
 * burst of a few samples. Coarser series get a larger weight per sample, so the smoothing spans about this.
 */
const STRAGGLER_SMOOTHING_MS = 20_000;

/** The smoothing weight per sample of a straggler member whose job samples every `intervalMs`. */
function smoothingOf(alpha: number, intervalMs: number | undefined): number {
  // 1 − e^(−x) < x: fine sampling keeps `alpha` without computing the exponential (the sample path).
  if (intervalMs === undefined || !(intervalMs > alpha * STRAGGLER_SMOOTHING_MS)) return alpha;
  return Math.max(alpha, 1 - Math.exp(-intervalMs / STRAGGLER_SMOOTHING_MS));
}

export class StragglerFamily extends Family<DetectorParams<'straggler'>> {
  readonly detector = 'straggler' as const;
  /** Smoothed value of a smoothed member (NaN for a member read at comparison time: see {@link compareValue}). */
  ewma = new Float64Array(0);
  /** When a smoothed member last counted (see {@link seenAt} for all). */
  lastT = new Float64Array(0);
  /** Exponentially weighted variance of a smoothed member's samples around its smoothed value. */
  noiseVar = new Float64Array(0);
  /** 1: the member is a clock or power series, read at comparison time and never smoothed. */
  private readAtCompare = new Uint8Array(0);
  /** The GPU utilization beside a clock or power member: they compare only at similar load. */
  private readonly utilization = new SiblingColumn();

  protected override grow(n: number): void {
    super.grow(n);
    this.ewma = growF64(this.ewma, n);
    this.lastT = growF64(this.lastT, n);
    this.noiseVar = growF64(this.noiseVar, n);
    if (n > this.readAtCompare.length) {
      const next = new Uint8Array(n);
      next.set(this.readAtCompare);
      this.readAtCompare = next;
    }
    this.utilization.grow(n);
  }

  protected reset(slot: number): void {
    this.ewma[slot] = Number.NaN;
    this.lastT[slot] = Number.NEGATIVE_INFINITY;
    this.noiseVar[slot] = 0;
    this.readAtCompare[slot] = isAtLoadMetric(this.info(slot).name) ? 1 : 0;
    this.utilization.reset(slot);
  }

  /** Member `slot`'s value to compare: its smoothed value, or a clock's or power's newest. */
  compareValue(slot: number): number {
    return this.readAtCompare[slot] === 1 ? this.ctx.lastV(this.series[slot]!) : this.ewma[slot]!;
  }

  /**
   * The standard error of member `slot`'s smoothed value from its own sample-to-sample noise (0 for a member
   * read at comparison time): how far two ranks' smoothed values may differ by chance alone. Variable batch
   * lengths, bursty start-up utilization, and a job-wide change of pace seen by each node's agent at its own
   * moment (a whole sampling interval apart at coarse sampling) all widen it.
   */
  standardError(slot: number): number {
    if (this.readAtCompare[slot] === 1) return 0;
    const a = smoothingOf(this.params[slot]!.alpha, this.ctx.info(this.series[slot]!).job?.sampleInterval);
    return Math.sqrt((this.noiseVar[slot]! * a) / (2 - a));
  }

  /** When member `slot` last counted (-Infinity: never). */
  seenAt(slot: number): number {
    return this.readAtCompare[slot] === 1 ? this.ctx.lastT(this.series[slot]!) : this.lastT[slot]!;
  }

  /** The newest value of member `slot`'s series. */
  lastValue(slot: number): number {
    return this.ctx.lastV(this.series[slot]!);
  }

  /** The newest utilization of the GPU of member `slot` (+Infinity when it has none: compare it anyway). */
  loadOf(slot: number, metric: string): number {
    const ref = this.utilization.get(this.ctx, slot, this.series[slot]!, metric);
    if (ref < 0) return Number.POSITIVE_INFINITY;
    const v = this.ctx.lastV(ref);
    return Number.isFinite(v) ? v : Number.POSITIVE_INFINITY;
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('straggler alerts belong to the job (one per place)');
  }

  observe(slot: number, t: number, v: number): void {
    if (this.readAtCompare[slot] === 1 || !Number.isFinite(v)) return;
    const job = this.ctx.info(this.series[slot]!).job;
    if (job) {
      const phase = job.phase;
      // Samples of a pause, and the first after it (a step time or utilization that averages the pause, each
      // rank's at its agent's own moment), are no rank's own pace.
      if (isPausePhase(phase) || phase === PHASE_FROZEN || phase === PHASE_STARTUP) return;
      const prevT = this.lastT[slot]!;
      const interval = job.sampleInterval;
      if (t - prevT > 3 * interval || t - job.pauseEndT <= interval) {
        this.lastT[slot] = t;
        return;
      }
    }
    const prev = this.ewma[slot]!;
    if (Number.isNaN(prev)) this.ewma[slot] = v;
    else {
      const a = smoothingOf(this.params[slot]!.alpha, job?.sampleInterval);
      const r = v - prev;
      this.ewma[slot] = prev + a * r;
      this.noiseVar[slot] = (1 - a) * (this.noiseVar[slot]! + a * r * r);
    }
    this.lastT[slot] = t;
  }

  override dispose(): void {}

  override save(slot: number): unknown {
    return [this.ewma[slot], this.lastT[slot], this.noiseVar[slot]];
  }

  /** State of an earlier build has no noise variance (2 entries): it is learned again from the next samples. */
  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || (data.length !== 2 && data.length !== 3)) return;
    this.ewma[slot] = data[0] === null ? Number.NaN : Number(data[0]);
    this.lastT[slot] = data[1] === null ? Number.NEGATIVE_INFINITY : Number(data[1]);
    const noise = data.length === 3 ? Number(data[2]) : 0;
    this.noiseVar[slot] = Number.isFinite(noise) && noise >= 0 ? noise : 0;
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.ewma[slot]!);
    w.float(this.lastT[slot]!);
    w.float(this.noiseVar[slot]!);
  }

  /** The section of an earlier build ends after `lastT` (no noise variance): see {@link load}. */
  override read(slot: number, r: StateReader): void {
    this.ewma[slot] = r.float('StragglerFamily');
    this.lastT[slot] = r.float('StragglerFamily');
    const noise = r.remaining >= 8 ? r.float('StragglerFamily') : 0;
    this.noiseVar[slot] = Number.isFinite(noise) && noise >= 0 ? noise : 0;
  }
}

/**
 * The phase a job's framework reports (`train_phase`, phase.ts): `train_phase{phase="checkpoint"} 1` while
 * in it and 0 when it ends, or, without a `phase` label, the phase's code as the value.
 */
export class PhaseFamily extends Family<JobState> {
  readonly detector = 'stall' as const;
  /** The phase code of each slot's `phase` label (-1: the value is the code). */
  private code = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.code = growF64(this.code, n);
  }

  protected reset(slot: number): void {
    const label = this.info(slot).labels.phase;
    this.code[slot] = label === undefined ? -1 : phaseCode(label);
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('phase reports raise no alert (the job uses them)');
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const code = this.code[slot]!;
    const job = this.params[slot]!;
    if (code >= 0) job.reportPhase(code, v > 0, t);
    else if (Number.isInteger(v) && v >= 0 && v <= PHASE_COOLDOWN) job.reportPhase(v, true, t);
  }

  override dispose(): void {}
}
