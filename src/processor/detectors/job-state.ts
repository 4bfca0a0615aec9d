/**
 * A training job's evaluation, run once per batch of the job on its event-time clock: stall (the NCCL-hang
 * signature, naming the rank that stopped first), nodes that stopped reporting and whole-job absence, and
 * stragglers (the place whose step time, GPU utilization, clocks or power deviate from its peers'), with
 * the job's snapshot and restore. The signals it evaluates are gathered by its base, {@link JobSignals}
 * (job-signals.ts).
 */
import { formatSeconds, formatValue } from '../../alerting/contract.js';
import type { LabelSet } from '../../model/labels.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, locationLabels } from './context.js';
import { GPUS_IDLE, GPUS_SPINNING, JobSignals, type JobSnapshot, STEP_TIME_SAMPLES } from './job-signals.js';
import {
  isPausePhase,
  PHASE_CHECKPOINT,
  PHASE_EVAL,
  PHASE_NAMES,
  PHASE_PAUSE,
  PHASE_STEADY,
  PHASE_WARMUP,
} from './phase.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, multipleComparisonZ, Ring, scratchOf } from './stats.js';
import type { SeriesInfo } from './types.js';

/** Clocks and power compare only between GPUs at least this busy (similar load). */
const AT_LOAD = 0.5;

/** A clock or power metric: compared only between GPUs at similar load, read at comparison time. */
export function isAtLoadMetric(metric: string): boolean {
  return !metric.endsWith('_ratio') && (metric.includes('clock') || metric.includes('power'));
}

/** Bursts within the duty horizon that make a high duty cycle an intermittent straggler. */
const MIN_INTERMITTENT_BURSTS = 2;
/**
 * The straggler threshold `z` is the one for a job of this many ranks; larger jobs get a higher one (Bonferroni,
 * stats.ts `multipleComparisonZ`), so a clean job of 512 ranks raises no more chance stragglers than one of 8.
 */
const STRAGGLER_REFERENCE_RANKS = 8;

export class JobState extends JobSignals {
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
