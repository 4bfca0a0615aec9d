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
import {
  isPausePhase,
  PHASE_CHECKPOINT,
  PHASE_COOLDOWN,
  PHASE_EVAL,
  PHASE_FROZEN,
  PHASE_NAMES,
  PHASE_PAUSE,
  PHASE_STARTUP,
  PHASE_STEADY,
  PHASE_WARMUP,
  phaseCode,
} from './phase.js';
import { Family, growF64, SiblingColumn } from './series-detectors.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, multipleComparisonZ, Ring, scratchOf } from './stats.js';
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
const GPUS_UNKNOWN = 0;
const GPUS_IDLE = 1;
const GPUS_PARTIAL = 2;
const GPUS_SPINNING = 3;
/** Clocks and power compare only between GPUs at least this busy (similar load). */
const AT_LOAD = 0.5;

/** A clock or power metric: compared only between GPUs at similar load, read at comparison time. */
function isAtLoadMetric(metric: string): boolean {
  return !metric.endsWith('_ratio') && (metric.includes('clock') || metric.includes('power'));
}
/** Every rank standing still for less than this is never a pause (the cheap test before the median's). */
const MIN_PAUSE_MS = 5000;
/** A reported phase holds this long after its newest sample. */
const REPORTED_PHASE_FRESH_MS = 120_000;

/** Where a straggler member is: its node and rank (or GPU); members at one place share one alert. */
interface StragglerPlace {
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

/** Bursts within the duty horizon that make a high duty cycle an intermittent straggler. */
const MIN_INTERMITTENT_BURSTS = 2;
/**
 * The straggler threshold `z` is the one for a job of this many ranks; larger jobs get a higher one (Bonferroni,
 * stats.ts `multipleComparisonZ`), so a clean job of 512 ranks raises no more chance stragglers than one of 8.
 */
const STRAGGLER_REFERENCE_RANKS = 8;

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
  private stallOpen: AlertIdentity | undefined;
  /** Step series of the job (slots of the engine's step family), to find the rank that stopped first. */
  readonly stepSlots: number[] = [];
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
    private readonly steps: StepFamily,
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
  private gpuActivity(t: number): number {
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
  private updatePhase(t: number): number {
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
  private reportingGapAllowanceMs(): number {
    return Number.isNaN(this.stepInterval) ? 0 : this.stepInterval + 8 * this.stepIntervalDev;
  }

  /** How long a pause may last: `pause_factor` × the longest this job took so far, or `pause_max` before any. */
  private pauseAllowanceMs(): number {
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
  private medianStep = Number.NaN;

  progressing(t: number): boolean {
    if (!this.hasStepSeries) return true;
    if (Number.isNaN(this.lastProgressT)) return false;
    return t - this.lastProgressT < this.stallThresholdMs();
  }

  /** Runs after each batch of the job: stall, absent nodes, stragglers (every `straggler.every`). */
  evaluate(): void {
    if (this.finished) return;
    const t = this.clock;
    const phase = this.updatePhase(t);
    this.phase = phase;
    const st = this.params.stall;
    if (st.enabled && this.hasStepSeries && !Number.isNaN(this.lastProgressT)) {
      const normal = this.stallThresholdMs();
      const since = t - this.lastProgressT;
      let threshold = normal;
      let evidence = 'step_frozen_all_ranks';
      if (since >= normal) {
        // Frozen for longer than steps take: a pause with idle GPUs (or a reported checkpoint or evaluation)
        // may go on for as long as this job's pauses take; busy GPUs mean a hang now.
        const gpus = this.gpuActivity(t);
        const reportedPause = phase === PHASE_EVAL || phase === PHASE_CHECKPOINT;
        if (gpus === GPUS_SPINNING && !reportedPause) {
          // Busy GPUs and no step: a hang, once longer than the job's own gaps in reporting have been.
          threshold = Math.max(normal, st.pause_factor * this.longestBusyGap, this.reportingGapAllowanceMs());
          evidence = 'step_frozen_gpus_busy';
        } else if (isPausePhase(phase)) {
          threshold = Math.max(normal, this.pauseAllowanceMs());
          evidence =
            phase !== PHASE_PAUSE
              ? `step_frozen_in_${PHASE_NAMES[phase]}_past_pause_allowance`
              : gpus === GPUS_IDLE
                ? 'step_frozen_gpus_idle_past_pause_allowance'
                : 'step_frozen_gpus_partly_busy_past_pause_allowance';
        } else if (this.longestPause > 0) {
          threshold = Math.max(normal, st.pause_factor * this.longestPause);
          evidence = 'step_frozen_past_pause_allowance';
        }
      }
      if (since >= threshold) {
        if (this.stallOpen === undefined) this.stallOpen = this.stallIdentity(this.stallCulprit(t));
        const ev = evidence;
        this.ctx.activate(this.stallOpen, t, since / 1000, (s) => this.describeStall(s, ev));
      } else {
        const id = this.stallOpen ?? this.stallId;
        this.ctx.deactivate(id, t);
        if (this.stallOpen !== undefined && !this.ctx.isOpen(id)) this.stallOpen = undefined;
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
    // Ranks are compared while the job trains: during a pause or a freeze they all wait alike, or differ in
    // ways (evaluation load, who writes the checkpoint) that say nothing about stragglers.
    if (sg.enabled && this.stragglerGroups.size > 0 && (phase === PHASE_STEADY || phase === PHASE_WARMUP)) {
      let fresh = 0;
      const stragglers = this.stragglers;
      for (const members of this.stragglerGroups.values())
        for (const m of members) if (t - stragglers.seenAt(m) <= sg.fresh) fresh++;
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

  /** The stall alert naming `culprit` (labels node_id, rank), or the job-level one. */
  private stallIdentity(culprit: Record<string, string> | undefined): AlertIdentity {
    if (culprit === undefined) return this.stallId;
    const st = this.params.stall;
    return this.ctx.identity('stall', 'TrainingStalled', st.severity, st.for, st.keep_firing_for, {
      ...this.base,
      ...culprit,
    });
  }

  /**
   * The rank that holds the job up, when the signals single one out: the one GPU idle (or the idle GPUs of
   * one node) while the others spin in the collective waiting for it; else the rank whose step stopped
   * clearly before every other's.
   */
  private stallCulprit(t: number): Record<string, string> | undefined {
    const st = this.params.stall;
    let n = 0;
    let busy = 0;
    let idle = 0;
    let idleDref = -1;
    let idleNode: string | undefined;
    let oneNode = true;
    for (const u of this.utilization) {
      if (t - this.ctx.lastT(u) > 60_000) continue;
      const v = this.ctx.lastV(u);
      if (!Number.isFinite(v)) continue;
      n++;
      if (v >= st.spin_above) busy++;
      else if (v < st.idle_below) {
        idle++;
        const node = this.ctx.info(u).labels.node_id;
        if (idle === 1) {
          idleDref = u;
          idleNode = node;
        } else if (node !== idleNode) oneNode = false;
      }
    }
    if (idle > 0 && busy >= 2 * idle && 4 * (idle + busy) >= 3 * n) {
      const labels = this.ctx.info(idleDref).labels;
      if (idle === 1) return placeLabels(labels);
      if (oneNode && idleNode !== undefined) return { node_id: idleNode };
    }
    // The step that stopped first: ahead of every other rank's last advance by more than a few steps.
    const lastInc = this.steps.lastIncT;
    let first = -1;
    let firstT = Number.POSITIVE_INFINITY;
    let secondT = Number.POSITIVE_INFINITY;
    for (const slot of this.stepSlots) {
      const at = lastInc[slot]!;
      if (Number.isNaN(at)) continue;
      if (at < firstT) {
        secondT = firstT;
        firstT = at;
        first = slot;
      } else if (at < secondT) secondT = at;
    }
    if (first >= 0 && Number.isFinite(secondT) && this.stepSlots.length >= 2) {
      const margin = Math.max(
        this.pauseAfterMs(),
        3 * (Number.isNaN(this.stepInterval) ? 0 : this.stepInterval),
      );
      if (secondT - firstT > margin) return placeLabels(this.ctx.info(this.steps.series[first]!).labels);
    }
    return undefined;
  }

  private describeStall(seconds: number, evidence: string): Record<string, string> {
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
    const id = this.stallOpen;
    const culprit =
      id && (id.labels.rank !== undefined || id.labels.node_id !== undefined)
        ? ` The rank holding it up: ${id.labels.rank !== undefined ? `rank ${id.labels.rank}` : 'the GPUs'}${id.labels.node_id !== undefined ? ` on ${id.labels.node_id}` : ''}.`
        : '';
    const pauses =
      this.longestPause > 0
        ? ` Its pauses (checkpoints, evaluations) took up to ${formatSeconds(this.longestPause / 1000)}.`
        : '';
    return {
      summary: `training step has not advanced for ${formatSeconds(seconds)}`,
      description: `train_step of job ${this.jobId} has not advanced for ${formatSeconds(seconds)}${Number.isNaN(med) ? '' : ` (median step time ${formatValue(med)} s)`} while its processes still report.${gpus}${culprit}${pauses}`,
      evidence,
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
    const sf = this.stragglers;
    for (const [metric, members] of this.stragglerGroups) {
      const ratioMetric = metric.endsWith('_ratio');
      const fresh: number[] = [];
      // Clocks and power only compare GPUs at similar load: a GPU idling at low clocks is no straggler.
      const atLoad = isAtLoadMetric(metric);
      for (const m of members) {
        const value = sf.compareValue(m);
        if (t - sf.seenAt(m) > p.fresh || !Number.isFinite(value)) continue;
        // An idle GPU (now or on average) is the waste detector's, and settles that it is no straggler.
        const idle =
          (ratioMetric && (value < p.exclude_below || sf.lastValue(m) < p.exclude_below)) ||
          (atLoad && this.stragglers.loadOf(m, p.load_metric) < AT_LOAD);
        if (idle) {
          compared.add(this.placeOfSlot.get(m)!);
          continue;
        }
        fresh.push(m);
      }
      if (fresh.length < p.min_ranks) continue;
      const values = scratchOf(fresh.length * 3);
      for (let i = 0; i < fresh.length; i++) values[fresh.length + i] = sf.compareValue(fresh[i]!);
      const { median, mad } = medianMad(
        values.subarray(fresh.length, 2 * fresh.length),
        fresh.length,
        values,
      );
      // The spread across ranks, or what the ranks' own noise lets their smoothed values differ by (a
      // difference of two: √2 standard errors), whichever is wider.
      for (let i = 0; i < fresh.length; i++) values[i] = sf.standardError(fresh[i]!);
      const noise = Math.SQRT2 * medianInPlace(values, fresh.length);
      const sigma = Math.max(MAD_TO_SIGMA * mad, noise, 1e-9 * Math.max(1e-9, Math.abs(median)));
      // The threshold grows with the number of ranks compared: among 512 the most extreme one is further out by
      // chance alone than among 8 (`z` holds for a job of STRAGGLER_REFERENCE_RANKS).
      const zLimit = multipleComparisonZ(p.z, fresh.length, STRAGGLER_REFERENCE_RANKS);
      for (const m of fresh) {
        const place = this.placeOfSlot.get(m)!;
        compared.add(place);
        const value = sf.compareValue(m);
        const dev = value - median;
        const z = dev / sigma;
        if (Math.abs(z) > zLimit && Math.abs(dev) > p.min_relative * Math.abs(median)) {
          const prev = flagged.get(place);
          if (!prev || Math.abs(z) > Math.abs(prev.z)) flagged.set(place, { z, metric, value, median });
        }
      }
    }
    // Duty cycle: each comparison moves a place's fraction of "off" comparisons towards 1 or 0, weighted so
    // that the fraction covers about `duty_horizon`.
    const rate = Math.min(1, p.every / Math.max(p.every, p.duty_horizon));
    const minCompared = Math.max(1, Math.round(p.duty_horizon / Math.max(1, p.every) / 2));
    for (let place = 0; place < this.places.length; place++) {
      const f = flagged.get(place);
      const pl = this.places[place]!;
      if (compared.has(place)) {
        const off = f !== undefined;
        pl.duty += rate * ((off ? 1 : 0) - pl.duty);
        pl.bursts = pl.bursts * (1 - rate) + (off && !pl.off ? 1 : 0);
        pl.off = off;
        pl.compared++;
      }
      const intermittent =
        !f && pl.compared >= minCompared && pl.duty >= p.duty && pl.bursts >= MIN_INTERMITTENT_BURSTS;
      if (f || intermittent) {
        const id = this.placeIdentity(place, p);
        const where = `${id.labels.rank !== undefined ? `rank ${id.labels.rank}` : `GPU ${id.labels.gpu ?? '?'}`} on node ${id.labels.node_id ?? '?'}`;
        const duty = pl.duty;
        if (f) {
          const pct = Math.round((100 * (f.value - f.median)) / Math.abs(f.median || 1));
          this.ctx.activate(id, t, Math.min(1e6, Math.abs(f.z)), () => ({
            summary: `straggler: ${where}`,
            description: `${where} of job ${this.jobId} is a straggler: its ${f.metric} is ${formatValue(f.value)} against a median of ${formatValue(f.median)} across ranks (${pct > 0 ? '+' : ''}${pct}%, robust z ${formatValue(f.z)}). The whole job waits for it at every all-reduce.`,
            evidence: `${f.metric}_vs_peers`,
          }));
        } else {
          this.ctx.activate(id, t, duty, (d) => ({
            summary: `intermittent straggler: ${where}`,
            description: `${where} of job ${this.jobId} was off its peers in ${Math.round(100 * d)}% of the comparisons over the last ${formatSeconds(p.duty_horizon / 1000)} (slow in bursts): the whole job waits for it at every all-reduce while it is.`,
            evidence: 'duty_cycle',
          }));
        }
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
      const [duty, compared, bursts, off] = this.restoredDuty.get(placeKey) ?? [0, 0, 0, false];
      this.places.push({ labels, key: placeKey, id: undefined, duty, compared, bursts, off });
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
      lastCompared: this.lastCompared,
      hasStepSeries: this.hasStepSeries,
      phase: this.phase,
      // The phase model's state only where it holds something (state from before it is restored as it was).
      ...(Number.isNaN(this.progressSinceT) ? {} : { progressSinceT: this.progressSinceT }),
      ...(Number.isNaN(this.pauseEndT) ? {} : { pauseEndT: this.pauseEndT }),
      ...(this.longestPause > 0 ? { longestPause: this.longestPause } : {}),
      ...(this.longestBusyGap > 0 ? { longestBusyGap: this.longestBusyGap } : {}),
      ...(Number.isNaN(this.stepInterval) ? {} : { stepInterval: this.stepInterval }),
      ...(this.stepIntervalDev > 0 ? { stepIntervalDev: this.stepIntervalDev } : {}),
      ...(this.reportedPhase >= 0 || !Number.isNaN(this.reportedPhaseT)
        ? {
            reportedPhase: this.reportedPhase,
            reportedPhaseT: nullable(this.reportedPhaseT),
            reportedByEvent: this.reportedByEvent,
          }
        : {}),
      ...(this.stallOpen ? { stallLabels: stripAlertLabels(this.stallOpen.labels) } : {}),
      ...(this.places.some((pl) => pl.compared > 0)
        ? {
            duty: this.places
              .filter((pl) => pl.compared > 0)
              .map(
                (pl) =>
                  [pl.key, pl.duty, pl.compared, pl.bursts, pl.off ? 1 : 0] as [
                    string,
                    number,
                    number,
                    number,
                    number,
                  ],
              ),
          }
        : {}),
    };
  }

  restore(s: JobSnapshot): void {
    this.clock = s.clock ?? Number.NEGATIVE_INFINITY;
    this.finished = s.finished;
    this.lastProgressT = s.lastProgressT ?? Number.NaN;
    this.stepTimes = Ring.from(STEP_TIME_SAMPLES, s.stepTimes);
    this.stallThreshold = Number.NaN;
    this.medianStep = Number.NaN;
    for (const [n, t] of s.nodes) {
      const slot = this.nodeSlot(n);
      if (!(this.nodeLastT[slot]! >= t)) this.nodeLastT[slot] = t;
    }
    this.lastStragglerEval = s.lastStragglerEval ?? Number.NEGATIVE_INFINITY;
    this.lastCompared = s.lastCompared ?? 0;
    this.hasStepSeries = s.hasStepSeries;
    this.progressSinceT = s.progressSinceT ?? Number.NaN;
    if (s.phase !== undefined && Number.isInteger(s.phase) && s.phase >= 0 && s.phase < PHASE_NAMES.length)
      this.phase = s.phase;
    this.pauseEndT = s.pauseEndT ?? Number.NaN;
    this.longestPause = s.longestPause ?? 0;
    this.longestBusyGap = s.longestBusyGap ?? 0;
    this.stepInterval = s.stepInterval ?? Number.NaN;
    this.stepIntervalDev = s.stepIntervalDev ?? 0;
    this.reportedPhase = s.reportedPhase ?? -1;
    this.reportedPhaseT = s.reportedPhaseT ?? Number.NaN;
    this.reportedByEvent = s.reportedByEvent ?? false;
    this.stallOpen = s.stallLabels ? this.stallIdentity(s.stallLabels) : undefined;
    for (const [key, duty, compared, bursts = 0, off = 0] of s.duty ?? []) {
      this.restoredDuty.set(key, [duty, compared, bursts, off === 1]);
      const place = this.placeIndex.get(key);
      if (place !== undefined) {
        const pl = this.places[place]!;
        pl.duty = duty;
        pl.compared = compared;
        pl.bursts = bursts;
        pl.off = off === 1;
      }
    }
    this.restoredAlerts = true;
  }

  /** Duty cycles of places restored before their series came back (applied as each place is created). */
  private readonly restoredDuty = new Map<string, [number, number, number, boolean]>();
}

function nullable(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

/** An alert's labels without those the engine adds (alertname, severity) and the job's own. */
function stripAlertLabels(labels: LabelSet): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['node_id', 'rank', 'gpu'] as const) if (labels[k] !== undefined) out[k] = labels[k];
  return out;
}

/** The place a series names: its node and rank (or GPU). */
function placeLabels(labels: LabelSet): Record<string, string> {
  return locationLabels(labels);
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
