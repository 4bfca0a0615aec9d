/**
 * What a training job's series tell about it between evaluations, the base of {@link JobState} (job-state.ts):
 * its event-time clock, its nodes and when each last reported, step progress and the reporting interval, the
 * phase the framework reports, its GPUs' activity, and from these the phase model (phase.ts) and the stall
 * threshold: the side of a job that its series update as samples arrive (`noteSample`, `noteProgress`,
 * `reportPhase`). The evaluation that raises alerts from it is in job-state.ts.
 */
import type { LabelSet } from '../../model/labels.js';
import type { DetectorParams } from './config.js';
import type { AlertIdentity, DetectorContext } from './context.js';
import { growF64 } from './family.js';
import type { StepFamily, StragglerFamily } from './job-detectors.js';
import {
  isPausePhase,
  PHASE_COOLDOWN,
  PHASE_FROZEN,
  PHASE_PAUSE,
  PHASE_STARTUP,
  PHASE_STEADY,
  PHASE_WARMUP,
} from './phase.js';
import { medianInPlace, Ring, scratchOf } from './stats.js';
import type { JobRef } from './types.js';

export const STEP_TIME_SAMPLES = 32;

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
  /** Ranks with fresh values at that comparison (absent in earlier state: the first batch compares again). */
  readonly lastCompared?: number;
  readonly hasStepSeries: boolean;
  /**
   * The phase as of the job's last evaluation. Detectors of the first batch after a restore read it before the
   * job is evaluated again: without it every job restarts in start-up, and an alert that needs training (an
   * idle GPU, a straggler) clears and later opens a second episode. Absent in state written before it was kept.
   */
  readonly phase?: number;
  /** Phase model (absent in state written before it existed). */
  readonly progressSinceT?: number | null;
  readonly pauseEndT?: number | null;
  readonly longestPause?: number;
  readonly longestBusyGap?: number;
  readonly stepInterval?: number | null;
  readonly stepIntervalDev?: number;
  readonly reportedPhase?: number;
  readonly reportedPhaseT?: number | null;
  readonly reportedByEvent?: boolean;
  readonly stallLabels?: Record<string, string> | null;
  /**
   * Per straggler place (by its labels' key): the fraction of recent comparisons that found it off, how many
   * comparisons it took part in, and (absent in earlier files) its recent bursts and whether it is off now.
   */
  readonly duty?: [string, number, number, number?, number?][];
}

/**
 * The GPUs of a job as a whole while its step stands still: idle together (a checkpoint save), partly busy
 * (an evaluation's forward passes), spinning at full utilization (a collective that never completes: a hang),
 * or not known (no fresh utilization).
 */
export const GPUS_UNKNOWN = 0;
export const GPUS_IDLE = 1;
export const GPUS_PARTIAL = 2;
export const GPUS_SPINNING = 3;
/** Every rank standing still for less than this is never a pause (the cheap test before the median's). */
export const MIN_PAUSE_MS = 5000;
/** A reported phase holds this long after its newest sample. */
export const REPORTED_PHASE_FRESH_MS = 120_000;

/** Where a straggler member is: its node and rank (or GPU); members at one place share one alert. */
export interface StragglerPlace {
  readonly labels: Record<string, string>;
  readonly key: string;
  id: AlertIdentity | undefined;
  /**
   * Duty cycle: an exponentially weighted fraction of this place's recent comparisons (over about
   * `straggler.duty_horizon`) in which it was off its peers, and how many comparisons it took part in.
   * An intermittent straggler (slow in bursts) shows here long after each burst has passed.
   */
  duty: number;
  compared: number;
  /**
   * Bursts: starts of a run of "off" comparisons, exponentially weighted over the same horizon. A rank that was
   * slow once and recovered has one; an intermittent straggler has several. Only several make the duty cycle
   * an alert: a straggler that recovered is not called intermittent afterwards.
   */
  bursts: number;
  /** Whether the place's last comparison found it off. */
  off: boolean;
}

export abstract class JobSignals implements JobRef {
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
  /** Phase model (phase.ts): the job's phase as of its last evaluation. */
  phase = PHASE_STARTUP;
  /** First step progress since the job (re)started: warm-up runs from here. */
  progressSinceT = Number.NaN;
  pauseEndT = Number.NaN;
  /** Longest time every rank stood still together and then moved on (ms): what this job's pauses take. */
  longestPause = 0;
  /**
   * Longest time the step stood still while the GPUs kept computing, and then moved on (ms): how long this job's
   * training metrics may go missing (irregular logging, logging every N steps), a gap of its own cadence.
   */
  longestBusyGap = 0;
  /** Exponentially weighted interval between the samples of a step series (ms; NaN before two). */
  stepInterval = Number.NaN;
  /**
   * Exponentially weighted absolute deviation of that interval (ms): 0 where the job reports like clockwork,
   * large where it logs irregularly (whole reports missing at random).
   */
  stepIntervalDev = 0;

  get sampleInterval(): number {
    return this.stepInterval;
  }
  /** The phase the framework reports (train_phase), -1 none, and when it last said so. */
  reportedPhase = -1;
  reportedPhaseT = Number.NaN;
  /** Reported by a job event (holds until the next) rather than by series samples (hold while sent). */
  reportedByEvent = false;
  /** The open TrainingStalled alert of the current episode: job-level or naming the culprit rank. */
  protected stallOpen: AlertIdentity | undefined;
  /** Step series of the job (slots of the engine's step family), to find the rank that stopped first. */
  readonly stepSlots: number[] = [];
  /** Set while the job waits in the engine's list of jobs to evaluate after the current batch. */
  touched = false;
  protected stepTimes = new Ring(STEP_TIME_SAMPLES);
  /** max(factor × median step time, min), recomputed only when a step time is added. */
  protected stallThreshold = Number.NaN;
  /** Nodes by slot: id and newest sample time. A series knows its node's slot (no lookup per sample). */
  readonly nodeIds: string[] = [];
  nodeLastT = new Float64Array(8).fill(Number.NEGATIVE_INFINITY);
  protected readonly nodeSlots = new Map<string, number>();
  protected readonly nodeAlerts: (AlertIdentity | undefined)[] = [];
  /** Straggler members (slots of the engine's straggler family), by metric. */
  readonly stragglerGroups = new Map<string, number[]>();
  /** Per straggler slot of this job: the index of its place in `places`. */
  protected readonly placeOfSlot = new Map<number, number>();
  protected readonly places: StragglerPlace[] = [];
  protected readonly placeIndex = new Map<string, number>();
  protected lastStragglerEval = Number.NEGATIVE_INFINITY;
  /** How many ranks had fresh values at the last comparison: more now (a late node's batch) compares again. */
  protected lastCompared = 0;
  /** GPU utilization series of the job (drefs), to describe a hang (some ranks at 0%, others at 100%). */
  readonly utilization: number[] = [];
  readonly stallId: AlertIdentity;
  readonly absentId: AlertIdentity;
  protected readonly base: LabelSet;
  readonly key: string;

  constructor(
    readonly tenant: string,
    readonly jobId: string,
    readonly params: JobParams,
    protected readonly ctx: DetectorContext,
    protected readonly stragglers: StragglerFamily,
    protected readonly steps: StepFamily,
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

  /** A step series advanced at `t` (`restarted`: it went back, the job restarted from a checkpoint). */
  noteProgress(t: number, secondsPerStep: number, restarted = false): void {
    if (!(this.lastProgressT >= t)) {
      const gap = t - this.lastProgressT;
      if (restarted || Number.isNaN(this.lastProgressT)) {
        // A (re)start: the job loads, ramps its memory and warms up again.
        this.progressSinceT = t;
      } else if (gap > MIN_PAUSE_MS && gap > this.pauseAfterMs()) {
        // Every rank stood still together and moves on: a pause (checkpoint, evaluation) of this job, or, where
        // its GPUs kept computing all along (the phase stayed frozen, not paused), a gap in what it reports.
        if (this.phase === PHASE_FROZEN) {
          if (gap > this.longestBusyGap) this.longestBusyGap = gap;
        } else if (gap > this.longestPause) this.longestPause = gap;
        this.pauseEndT = t;
      } else if (gap > this.longestBusyGap && !isPausePhase(this.phase)) {
        // Shorter than a pause: the job's own cadence of step reports, missing ones included.
        this.longestBusyGap = gap;
      }
      this.lastProgressT = t;
    }
    if (Number.isFinite(secondsPerStep) && secondsPerStep > 0) {
      this.stepTimes.push(secondsPerStep);
      this.stallThreshold = Number.NaN;
      this.medianStep = Number.NaN;
    }
  }

  /** A step series sampled again after `dt` ms: the job's reporting interval. */
  noteStepInterval(dt: number): void {
    if (!(dt > 0)) return;
    if (Number.isNaN(this.stepInterval)) {
      this.stepInterval = dt;
      return;
    }
    // A gap (the samples a pause did not send) moves the estimate by at most a step towards twice its value.
    const x = Math.min(dt, 2 * this.stepInterval);
    this.stepIntervalDev += 0.1 * (Math.abs(x - this.stepInterval) - this.stepIntervalDev);
    this.stepInterval += 0.1 * (x - this.stepInterval);
  }

  /**
   * How long every rank may stand still before the job counts as paused rather than between two steps or
   * two samples: 3 median step times, 3 reporting intervals, at least 5 s.
   */
  pauseAfterMs(): number {
    const med = this.medianStepSeconds() * 1000;
    return Math.max(
      MIN_PAUSE_MS,
      Number.isNaN(med) ? 0 : 3 * med,
      Number.isNaN(this.stepInterval) ? 0 : 3 * this.stepInterval,
    );
  }

  /** The framework reports phase `code` in a series sample (or leaves it: `on` false); it holds while sent. */
  reportPhase(code: number, on: boolean, t: number): void {
    this.reportedByEvent = false;
    if (on) {
      this.reportedPhase = code;
      this.reportedPhaseT = t;
    } else if (this.reportedPhase === code) {
      this.reportedPhase = -1;
      this.reportedPhaseT = t;
    }
  }

  /** The framework reports phase `code` in a job event: it holds until the next one says otherwise. */
  reportPhaseEvent(code: number, t: number): void {
    this.reportedPhase = code;
    this.reportedPhaseT = t;
    this.reportedByEvent = true;
  }

  gpuUtilization(t: number): number {
    let n = 0;
    let sum = 0;
    for (const u of this.utilization) {
      if (t - this.ctx.lastT(u) > 60_000) continue;
      const v = this.ctx.lastV(u);
      if (!Number.isFinite(v)) continue;
      n++;
      sum += v;
    }
    return n === 0 ? Number.NaN : sum / n;
  }

  /** What the job's GPUs do (GPUS_*), from their newest utilization. */
  protected gpuActivity(t: number): number {
    const st = this.params.stall;
    let n = 0;
    let idle = 0;
    let spinning = 0;
    for (const u of this.utilization) {
      if (t - this.ctx.lastT(u) > 60_000) continue;
      const v = this.ctx.lastV(u);
      if (!Number.isFinite(v)) continue;
      n++;
      if (v < st.idle_below) idle++;
      else if (v >= st.spin_above) spinning++;
    }
    if (n === 0) return GPUS_UNKNOWN;
    if (spinning * 4 >= n) return GPUS_SPINNING;
    if (idle * 4 >= 3 * n) return GPUS_IDLE;
    return GPUS_PARTIAL;
  }

  /** The phase from the signals and what the framework reports (phase.ts). */
  protected updatePhase(t: number): number {
    if (this.finished) return PHASE_COOLDOWN;
    const reported =
      this.reportedPhase >= 0 && (this.reportedByEvent || t - this.reportedPhaseT <= REPORTED_PHASE_FRESH_MS);
    if (reported && this.reportedPhase !== PHASE_STEADY) return this.reportedPhase;
    if (!this.hasStepSeries) return PHASE_STEADY;
    if (Number.isNaN(this.lastProgressT)) return PHASE_STARTUP;
    const since = t - this.lastProgressT;
    if (since > MIN_PAUSE_MS && since > this.pauseAfterMs()) {
      const gpus = this.gpuActivity(t);
      return gpus === GPUS_IDLE || gpus === GPUS_PARTIAL ? PHASE_PAUSE : PHASE_FROZEN;
    }
    if (t - this.progressSinceT < this.params.stall.warmup) return PHASE_WARMUP;
    return PHASE_STEADY;
  }

  /**
   * How long a job that logs irregularly may go without a step report by chance: its mean interval between
   * step reports plus 8 of their mean absolute deviations (0 before two reports). A job reporting like
   * clockwork gets about its interval, below `stall.min`; one missing every other report at random (a
   * geometric gap: at a 15 s cadence 30 s on average, and runs of four or five missing now and then) several
   * minutes.
   */
  protected reportingGapAllowanceMs(): number {
    return Number.isNaN(this.stepInterval) ? 0 : this.stepInterval + 8 * this.stepIntervalDev;
  }

  /** How long a pause may last: `pause_factor` × the longest this job took so far, or `pause_max` before any. */
  protected pauseAllowanceMs(): number {
    const st = this.params.stall;
    return this.longestPause > 0 ? st.pause_factor * this.longestPause : st.pause_max;
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
    if (Number.isNaN(this.medianStep) && this.stepTimes.size > 0)
      this.medianStep = medianInPlace(copyInto(this.stepTimes), this.stepTimes.size);
    return this.medianStep;
  }

  /** The median of `stepTimes`, worked out when first needed after a step time was added (NaN: not yet). */
  protected medianStep = Number.NaN;

  progressing(t: number): boolean {
    if (!this.hasStepSeries) return true;
    if (Number.isNaN(this.lastProgressT)) return false;
    return t - this.lastProgressT < this.stallThresholdMs();
  }
}

export function jobKey(tenant: string, jobId: string): string {
  return `${tenant}\u0000${jobId}`;
}

/** A copy of the ring's values in scratch memory (the median sorts it in place). */
export function copyInto(r: Ring): Float64Array {
  const out = scratchOf(r.size);
  out.set(r.values.subarray(0, r.size));
  return out;
}
