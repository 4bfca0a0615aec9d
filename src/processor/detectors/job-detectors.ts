/**
 * Detectors that look at a whole training job: step progress (stall — the NCCL-hang signature), nodes that
 * stopped reporting, and stragglers (the rank whose step time or GPU utilization deviates from the others).
 * A job's state is fed by its series (step series, straggler members) and evaluated once per batch of the job,
 * on the job's event-time clock: the newest sample time of any of its series.
 */
import { formatSeconds, formatValue } from '../../alerting/alert.js';
import type { LabelSet } from '../../model/labels.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, type DetectorContext, locationLabels } from './context.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, Ring, scratchOf } from './stats.js';
import type { JobRef, SeriesDetector, SeriesInfo } from './types.js';

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
  private stepTimes = new Ring(STEP_TIME_SAMPLES);
  /** Newest sample time per node. */
  readonly nodes = new Map<string, number>();
  private readonly nodeAlerts = new Map<string, AlertIdentity>();
  /** Straggler candidates, by metric. */
  readonly stragglerGroups = new Map<string, StragglerMember[]>();
  private readonly stragglerAlerts = new Map<string, AlertIdentity>();
  private lastStragglerEval = Number.NEGATIVE_INFINITY;
  /** How many ranks had fresh values at the last comparison: more now (a late node's batch) compares again. */
  private lastCompared = 0;
  /** GPU utilization series of the job, to describe a hang (some ranks at 0%, others spinning at 100%). */
  readonly utilization: SeriesInfo[] = [];
  readonly stallId: AlertIdentity;
  readonly absentId: AlertIdentity;
  private readonly base: LabelSet;

  constructor(
    readonly tenant: string,
    readonly jobId: string,
    readonly params: JobParams,
    private readonly ctx: DetectorContext,
  ) {
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

  get key(): string {
    return jobKey(this.tenant, this.jobId);
  }

  noteSample(t: number, nodeId: string | undefined): void {
    if (t > this.clock) this.clock = t;
    if (nodeId !== undefined && !((this.nodes.get(nodeId) ?? Number.NEGATIVE_INFINITY) >= t))
      this.nodes.set(nodeId, t);
  }

  noteProgress(t: number, secondsPerStep: number): void {
    if (!(this.lastProgressT >= t)) this.lastProgressT = t;
    if (Number.isFinite(secondsPerStep) && secondsPerStep > 0) this.stepTimes.push(secondsPerStep);
  }

  /** How long the step may stand still before the job counts as stalled: max(factor × median, min). */
  stallThresholdMs(): number {
    const p = this.params.stall;
    if (this.stepTimes.size === 0) return p.min;
    const med = medianInPlace(copyInto(this.stepTimes), this.stepTimes.size);
    return Math.max(p.factor * med * 1000, p.min);
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
      for (const [node, lastT] of this.nodes) {
        const gap = t - lastT;
        let id = this.nodeAlerts.get(node);
        if (gap >= ab.node_absent_for && gap < ab.forget_after) {
          if (!id) {
            id = this.ctx.identity('absence', 'NodeMetricsAbsent', ab.severity, ab.for, ab.keep_firing_for, {
              ...this.base,
              node_id: node,
            });
            this.nodeAlerts.set(node, id);
          }
          this.ctx.activate(id, t, gap / 1000, (s) => ({
            summary: `node ${node} stopped reporting ${formatSeconds(s)} ago`,
            description: `No sample from node ${node} of job ${this.jobId} for ${formatSeconds(s)}, while the job's other nodes still report: the node, its agent or its processes may be down.`,
          }));
        } else if (id) {
          this.ctx.deactivate(id, t);
        }
      }
    }
    const sg = this.params.straggler;
    if (sg.enabled && this.stragglerGroups.size > 0) {
      let fresh = 0;
      for (const members of this.stragglerGroups.values())
        for (const m of members) if (t - m.lastT <= sg.fresh) fresh++;
      if (t - this.lastStragglerEval >= sg.every || fresh > this.lastCompared) {
        this.lastStragglerEval = t;
        this.lastCompared = fresh;
        this.evaluateStragglers(t, sg);
      }
    }
  }

  private describeStall(seconds: number): Record<string, string> {
    const med = this.medianStepSeconds();
    let idle = 0;
    let busy = 0;
    for (const u of this.utilization) {
      if (this.clock - u.lastT > 60_000) continue;
      if (u.lastV < 0.05) idle++;
      else if (u.lastV > 0.95) busy++;
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

  private evaluateStragglers(t: number, p: DetectorParams<'straggler'>): void {
    const flagged = new Map<string, { z: number; metric: string; value: number; median: number }>();
    // Ranks compared this time. A rank with no fresh value (its node's batch has not arrived yet, e.g. during
    // a backfill where each node sends a minute at a time) keeps its alert state until it is compared again.
    const compared = new Set<string>();
    for (const [metric, members] of this.stragglerGroups) {
      const ratioMetric = metric.endsWith('_ratio');
      const fresh: StragglerMember[] = [];
      for (const m of members) {
        if (t - m.lastT > p.fresh || Number.isNaN(m.ewma)) continue;
        if (ratioMetric && m.ewma < p.exclude_below) continue;
        fresh.push(m);
      }
      if (fresh.length < p.min_ranks) continue;
      const values = scratchOf(fresh.length * 3);
      for (let i = 0; i < fresh.length; i++) values[fresh.length + i] = fresh[i]!.ewma;
      const { median, mad } = medianMad(
        values.subarray(fresh.length, 2 * fresh.length),
        fresh.length,
        values,
      );
      const sigma = Math.max(MAD_TO_SIGMA * mad, 1e-9 * Math.max(1e-9, Math.abs(median)));
      for (const m of fresh) {
        compared.add(m.identity.fingerprint);
        const dev = m.ewma - median;
        const z = dev / sigma;
        if (Math.abs(z) > p.z && Math.abs(dev) > p.min_relative * Math.abs(median)) {
          const prev = flagged.get(m.identity.fingerprint);
          if (!prev || Math.abs(z) > Math.abs(prev.z))
            flagged.set(m.identity.fingerprint, { z, metric, value: m.ewma, median });
        }
      }
    }
    for (const [fp, id] of this.stragglerAlerts) {
      const f = flagged.get(fp);
      if (f) {
        const where = `${id.labels.rank !== undefined ? `rank ${id.labels.rank}` : `GPU ${id.labels.gpu ?? '?'}`} on node ${id.labels.node_id ?? '?'}`;
        const pct = Math.round((100 * (f.value - f.median)) / Math.abs(f.median || 1));
        this.ctx.activate(id, t, Math.min(1e6, Math.abs(f.z)), () => ({
          summary: `straggler: ${where}`,
          description: `${where} of job ${this.jobId} is a straggler: its ${f.metric} is ${formatValue(f.value)} against a median of ${formatValue(f.median)} across ranks (${pct > 0 ? '+' : ''}${pct}%, robust z ${formatValue(f.z)}). The whole job waits for it at every all-reduce.`,
        }));
      } else if (compared.has(fp)) {
        this.ctx.deactivate(id, t);
      }
    }
  }

  addStragglerMember(m: StragglerMember): void {
    let group = this.stragglerGroups.get(m.series.name);
    if (!group) {
      group = [];
      this.stragglerGroups.set(m.series.name, group);
    }
    group.push(m);
    if (!this.stragglerAlerts.has(m.identity.fingerprint))
      this.stragglerAlerts.set(m.identity.fingerprint, m.identity);
  }

  removeSeries(series: SeriesInfo): void {
    const group = this.stragglerGroups.get(series.name);
    if (group) {
      const i = group.findIndex((m) => m.series === series);
      if (i >= 0) group.splice(i, 1);
    }
    const u = this.utilization.indexOf(series);
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
    return {
      tenant: this.tenant,
      jobId: this.jobId,
      clock: this.clock,
      finished: this.finished,
      lastProgressT: Number.isNaN(this.lastProgressT) ? null : this.lastProgressT,
      stepTimes: this.stepTimes.toArray(),
      nodes: [...this.nodes],
      lastStragglerEval: Number.isFinite(this.lastStragglerEval) ? this.lastStragglerEval : null,
      hasStepSeries: this.hasStepSeries,
    };
  }

  restore(s: JobSnapshot): void {
    this.clock = s.clock ?? Number.NEGATIVE_INFINITY;
    this.finished = s.finished;
    this.lastProgressT = s.lastProgressT ?? Number.NaN;
    this.stepTimes = Ring.from(STEP_TIME_SAMPLES, s.stepTimes);
    for (const [n, t] of s.nodes) this.nodes.set(n, t);
    this.lastStragglerEval = s.lastStragglerEval ?? Number.NEGATIVE_INFINITY;
    this.hasStepSeries = s.hasStepSeries;
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

/** Feeds a job's step progress from one `train_step` series (one per rank). */
export class StepProgress implements SeriesDetector {
  readonly detector = 'stall' as const;
  private lastV = Number.NaN;
  private lastIncT = Number.NaN;
  private lastIncV = Number.NaN;

  constructor(private readonly job: JobState) {
    job.hasStepSeries = true;
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    if (Number.isNaN(this.lastV)) {
      this.lastV = this.lastIncV = v;
      this.lastIncT = t;
      return;
    }
    if (v > this.lastV) {
      this.job.noteProgress(t, (t - this.lastIncT) / 1000 / (v - this.lastIncV));
      this.lastIncT = t;
      this.lastIncV = v;
    } else if (v < this.lastV) {
      // Restarted from a checkpoint: the job is alive and moving again; measure from here.
      this.job.noteProgress(t, Number.NaN);
      this.lastIncT = t;
      this.lastIncV = v;
    }
    this.lastV = v;
  }

  save(): unknown {
    return [this.lastV, this.lastIncT, this.lastIncV];
  }

  load(data: unknown): void {
    if (!Array.isArray(data) || data.length !== 3) return;
    [this.lastV, this.lastIncT, this.lastIncV] = data.map((x) => (x === null ? Number.NaN : Number(x))) as [
      number,
      number,
      number,
    ];
  }
}

/** One rank's smoothed step time or GPU utilization, compared with the job's other ranks. */
export class StragglerMember implements SeriesDetector {
  readonly detector = 'straggler' as const;
  ewma = Number.NaN;
  lastT = Number.NEGATIVE_INFINITY;
  readonly identity: AlertIdentity;

  constructor(
    readonly series: SeriesInfo,
    private readonly p: DetectorParams<'straggler'>,
    ctx: DetectorContext,
  ) {
    this.identity = ctx.identity('straggler', 'TrainingStraggler', p.severity, p.for, p.keep_firing_for, {
      tenant: series.tenant,
      job_id: series.labels.job_id ?? '',
      ...locationLabels(series.labels),
    });
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    this.ewma = Number.isNaN(this.ewma) ? v : this.ewma + this.p.alpha * (v - this.ewma);
    this.lastT = t;
  }

  save(): unknown {
    return [this.ewma, this.lastT];
  }

  load(data: unknown): void {
    if (!Array.isArray(data) || data.length !== 2) return;
    this.ewma = data[0] === null ? Number.NaN : Number(data[0]);
    this.lastT = data[1] === null ? Number.NEGATIVE_INFINITY : Number(data[1]);
  }
}
