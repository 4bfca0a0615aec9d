/**
 * Detectors that look at one series at a time. Each is a *family*: one instance holds the state of every
 * series it applies to in typed-array columns indexed by a slot (O(1) numbers per series, or a small fixed
 * ring), sees every new sample of those series once, in time order, and raises or clears their alerts through
 * the engine. A sample costs a few array reads and writes; alert identities (labels, fingerprint) are built
 * only when a slot first raises an alert, and a slot calls the alert tracker only while its condition holds
 * or its alert may still be open (`maybeActive`).
 */
import { formatSeconds, formatValue, type Severity } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams, ThresholdRule } from './config.js';
import {
  type AlertIdentity,
  type DetectorContext,
  describeWhere,
  jobAlertLabels,
  seriesAlertLabels,
} from './context.js';
import {
  isPausePhase,
  PHASE_COOLDOWN,
  PHASE_FROZEN,
  PHASE_STARTUP,
  PHASE_STEADY,
  PHASE_WARMUP,
} from './phase.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, scratchOf } from './stats.js';
import { BucketRing, SenFit } from './trend.js';
import type { DetectorFamily, FamilyName, SeriesInfo } from './types.js';

const MiB = 2 ** 20;
const NO_ANNOTATIONS = (): Record<string, string> => ({});
/** The loss-spike detector re-estimates its residuals' median and MAD every this many residuals. */
const RESCALE_EVERY = 8;
/** The most one throughput sample moves the CUSUM, in baseline standard deviations (before the allowance). */
const CUSUM_STEP_CAP = 2.5;
/** GPU utilization within this of the baseline's counts as "as busy as before". */
const UTIL_SAME = 0.1;

export function growF64(a: Float64Array, n: number, fill = 0): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}

export function growI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

function growU8(a: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}

function num(x: unknown): number {
  return x === null || x === undefined ? Number.NaN : Number(x);
}

/**
 * Slot bookkeeping shared by every family: the series of each slot, its parameters (shared objects, one per
 * set of matching overrides), its alert identity once built, and whether its alert may be open.
 */
export abstract class Family<P> implements DetectorFamily {
  abstract readonly detector: FamilyName;
  protected capacity = 0;
  private used = 0;
  private readonly freeSlots: number[] = [];
  live = 0;
  /** slot → the engine's series (dref). */
  series = new Int32Array(0);
  /** Set while the slot's alert may be pending or firing (cleared once the tracker no longer has it). */
  maybeActive = new Uint8Array(0);
  readonly params: P[] = [];
  protected readonly ids: (AlertIdentity | undefined)[] = [];

  constructor(protected readonly ctx: DetectorContext) {}

  /** Grows every column to `n` slots; families with columns of their own extend it. */
  protected grow(n: number): void {
    this.series = growI32(this.series, n);
    this.maybeActive = growU8(this.maybeActive, n);
    this.capacity = n;
  }

  /** Resets the columns of a new slot to their initial state. */
  protected abstract reset(slot: number): void;

  /** Builds the slot's alert identity (labels and fingerprint): called the first time it is needed. */
  protected abstract buildIdentity(slot: number): AlertIdentity;

  alloc(info: SeriesInfo, params: unknown): number {
    let slot: number;
    if (this.freeSlots.length > 0) slot = this.freeSlots.pop()!;
    else {
      slot = this.used++;
      // Columns are grown here, never in the constructor: subclass fields do not exist yet there.
      if (slot >= this.capacity) this.grow(Math.max(64, this.capacity * 2));
    }
    this.series[slot] = info.dref;
    this.params[slot] = params as P;
    this.ids[slot] = undefined;
    this.maybeActive[slot] = 0;
    this.reset(slot);
    this.live++;
    return slot;
  }

  free(slot: number): void {
    this.ids[slot] = undefined;
    this.params[slot] = undefined as P;
    this.maybeActive[slot] = 0;
    this.freeSlots.push(slot);
    this.live--;
  }

  abstract observe(slot: number, t: number, v: number): void;

  save(_slot: number): unknown {
    return undefined;
  }

  load(_slot: number, _data: unknown): void {}

  /** The slot's learned state in the binary state file (the same content as `save`). */
  write(_slot: number, _w: StateWriter): void {}

  read(_slot: number, _r: StateReader): void {}

  assumeActive(slot: number): void {
    this.maybeActive[slot] = 1;
  }

  identity(slot: number): AlertIdentity {
    let id = this.ids[slot];
    if (!id) {
      id = this.buildIdentity(slot);
      this.ids[slot] = id;
    }
    return id;
  }

  protected info(slot: number): SeriesInfo {
    return this.ctx.info(this.series[slot]!);
  }

  /** The condition holds: the slot's alert is activated (created pending/firing, or kept). */
  protected raise(slot: number, t: number, value: number, annotate: (v: number) => Record<string, string>) {
    this.maybeActive[slot] = 1;
    this.ctx.activate(this.identity(slot), t, value, annotate);
  }

  /** The condition does not hold: a possibly open alert is deactivated (it may stay for keep_firing_for). */
  protected clear(slot: number, t: number): void {
    if (this.maybeActive[slot] === 0) return;
    const id = this.identity(slot);
    this.ctx.deactivate(id, t);
    if (!this.ctx.isOpen(id)) this.maybeActive[slot] = 0;
  }

  /** This slot is one member of a job-level alert: `active` says whether its condition holds. */
  protected member(
    slot: number,
    active: boolean,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
    quorum = 1,
  ): void {
    if (!active && this.maybeActive[slot] === 0) return;
    this.maybeActive[slot] = active ? 1 : 0;
    this.ctx.member(
      this.identity(slot),
      this.ctx.memberKey(this.series[slot]!),
      active,
      t,
      value,
      annotate,
      quorum,
    );
  }

  dispose(slot: number, t: number): void {
    if (this.maybeActive[slot] === 0) return;
    this.maybeActive[slot] = 0;
    this.ctx.end(this.identity(slot), t);
  }
}

/** Families whose slots are members of a job-level alert: disposing a slot removes it from the alert. */
abstract class MemberFamily<P> extends Family<P> {
  override dispose(slot: number, t: number): void {
    this.member(slot, false, t, 0, () => ({}));
  }
}

function compare(x: number, op: ThresholdRule['op'], value: number): boolean {
  switch (op) {
    case '>':
      return x > value;
    case '>=':
      return x >= value;
    case '<':
      return x < value;
    case '<=':
      return x <= value;
  }
}

/**
 * A sibling series (same labels, another metric) of each slot's series, looked up when first needed; a missing
 * one again only after the engine learned new series, a found one again only after the engine forgot some
 * (its ref could then belong to another series).
 */
export class SiblingColumn {
  ref = new Int32Array(0);
  generation = new Int32Array(0);

  grow(n: number): void {
    this.ref = growI32(this.ref, n);
    this.generation = growI32(this.generation, n);
  }

  reset(slot: number): void {
    this.ref[slot] = -1;
    this.generation[slot] = -1;
  }

  get(ctx: DetectorContext, slot: number, dref: number, name: string): number {
    const r = this.ref[slot]!;
    const gen = r >= 0 ? ctx.removalGeneration : ctx.seriesGeneration;
    if (this.generation[slot] === gen) return r;
    const found = ctx.sibling(dref, name);
    this.ref[slot] = found;
    this.generation[slot] = found >= 0 ? ctx.removalGeneration : ctx.seriesGeneration;
    return found;
  }
}

/** `metric op value`, or `metric / ratio_to op value` against the sibling series with the same labels. */
export class ThresholdFamily extends Family<ThresholdRule> {
  readonly detector = 'threshold' as const;
  private readonly sibling = new SiblingColumn();

  protected override grow(n: number): void {
    super.grow(n);
    this.sibling.grow(n);
  }

  protected reset(slot: number): void {
    this.sibling.reset(slot);
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const rule = this.params[slot]!;
    return this.ctx.identity(
      'threshold',
      rule.alert,
      rule.severity,
      rule.for,
      rule.keep_firing_for,
      seriesAlertLabels(this.info(slot)),
    );
  }

  observe(slot: number, t: number, v: number): void {
    const rule = this.params[slot]!;
    let x = v;
    if (rule.ratio_to) {
      const total = this.sibling.get(this.ctx, slot, this.series[slot]!, rule.ratio_to);
      if (total < 0) return;
      const tv = this.ctx.lastV(total);
      if (!(tv > 0)) return;
      x = v / tv;
    }
    if (compare(x, rule.op, rule.value)) {
      this.raise(slot, t, x, (val) => {
        const series = this.info(slot);
        const what = rule.ratio_to ? `${series.name} / ${rule.ratio_to}` : series.name;
        return {
          summary: rule.summary ?? `${what} ${rule.op} ${rule.value}`,
          description: `${what} is ${formatValue(val)} ${describeWhere(series.labels)} (threshold ${rule.op} ${rule.value}).`,
        };
      });
    } else {
      this.clear(slot, t);
    }
  }
}

/** NaN or ±Inf in a loss or gradient metric: the run has diverged. One alert per job and metric. */
export class NonFiniteFamily extends MemberFamily<DetectorParams<'nonfinite'>> {
  readonly detector = 'nonfinite' as const;

  protected reset(): void {}

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    return this.ctx.identity(
      'nonfinite',
      'TrainingNaN',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(slot: number, t: number, v: number): void {
    const bad = !Number.isFinite(v);
    this.member(slot, bad, t, 1, () => {
      const series = this.info(slot);
      return {
        summary: `${series.name} is ${String(v)}: the run has diverged`,
        description: `${series.name} became ${String(v)} ${describeWhere(series.labels)}. Training produces no useful result from here; stop or roll back the run.`,
      };
    });
  }
}

/**
 * Loss spikes: the residual of each sample against an EWMA of the loss, scored by a robust z-score against
 * the last `window` ordinary residuals (median and MAD, so one spike does not widen the band), and required
 * to exceed `min_relative` of the loss level too (a smooth, noiseless curve has a tiny MAD). One-sided: only
 * increases are spikes. Residuals of spikes are kept out of the window.
 */
export class LossSpikeFamily extends MemberFamily<DetectorParams<'loss_spike'>> {
  readonly detector = 'loss_spike' as const;
  private ewma = new Float64Array(0);
  private count = new Float64Array(0);
  /** Median and MAD of the residual window, recomputed every {@link RESCALE_EVERY} residuals. */
  private median = new Float64Array(0);
  private mad = new Float64Array(0);
  private sinceRescale = new Float64Array(0);
  /** Per slot: the residual ring (`window` values), its next write position and fill. */
  private rings: Float64Array[] = [];
  private ringNext = new Int32Array(0);
  private ringSize = new Int32Array(0);
  /**
   * The current spike: since when the loss has been spiking (NaN: it is not), the highest value so far, and
   * how many times in a row it rose above that highest value (a loss that keeps climbing is diverging).
   */
  private spikeSince = new Float64Array(0);
  private spikeMax = new Float64Array(0);
  private rises = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.spikeSince = growF64(this.spikeSince, n);
    this.spikeMax = growF64(this.spikeMax, n);
    this.rises = growF64(this.rises, n);
    this.ewma = growF64(this.ewma, n);
    this.count = growF64(this.count, n);
    this.median = growF64(this.median, n);
    this.mad = growF64(this.mad, n);
    this.sinceRescale = growF64(this.sinceRescale, n);
    this.ringNext = growI32(this.ringNext, n);
    this.ringSize = growI32(this.ringSize, n);
  }

  protected reset(slot: number): void {
    this.spikeSince[slot] = Number.NaN;
    this.spikeMax[slot] = Number.NaN;
    this.rises[slot] = 0;
    this.ewma[slot] = 0;
    this.count[slot] = 0;
    this.median[slot] = 0;
    this.mad[slot] = 0;
    this.sinceRescale[slot] = Number.POSITIVE_INFINITY;
    const w = this.params[slot]!.window;
    const ring = this.rings[slot];
    this.rings[slot] = ring && ring.length === w ? ring.fill(0) : new Float64Array(w);
    this.ringNext[slot] = 0;
    this.ringSize[slot] = 0;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    return this.ctx.identity(
      'loss_spike',
      'TrainingLossSpike',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  private push(slot: number, r: number): void {
    const ring = this.rings[slot]!;
    const next = this.ringNext[slot]!;
    ring[next] = r;
    this.ringNext[slot] = (next + 1) % ring.length;
    if (this.ringSize[slot]! < ring.length) this.ringSize[slot]!++;
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    const job = this.ctx.info(this.series[slot]!).job;
    if (job && (job.phase === PHASE_STARTUP || job.phase === PHASE_WARMUP)) {
      // A (re)starting job: a restart from a checkpoint brings back the loss of then. Learn the level anew.
      this.count[slot] = 0;
      this.spikeSince[slot] = Number.NaN;
      this.member(slot, false, t, 0, NO_ANNOTATIONS);
      return;
    }
    const count = ++this.count[slot]!;
    if (count === 1) {
      this.ewma[slot] = v;
      return;
    }
    const ewma = this.ewma[slot]!;
    const r = v - ewma;
    let spike = false;
    let z = 0;
    const size = this.ringSize[slot]!;
    if (count > p.min_samples && size >= 8) {
      if (this.sinceRescale[slot]! >= RESCALE_EVERY) {
        const mm = medianMad(this.rings[slot]!, size, scratchOf(size));
        this.median[slot] = mm.median;
        this.mad[slot] = mm.mad;
        this.sinceRescale[slot] = 0;
      }
      const sigma = Math.max(MAD_TO_SIGMA * this.mad[slot]!, 1e-9 * Math.max(1, Math.abs(ewma)));
      z = (r - this.median[slot]!) / sigma;
      spike = z > p.z && r > p.min_relative * Math.abs(ewma);
    }
    // A spike that recovers within `persist` is part of training; one that stays, or keeps climbing
    // (`rising` new highs in a row), is not.
    let holds = false;
    if (spike) {
      if (Number.isNaN(this.spikeSince[slot]!)) {
        this.spikeSince[slot] = t;
        this.spikeMax[slot] = v;
        this.rises[slot] = 0;
      } else if (v > this.spikeMax[slot]!) {
        this.spikeMax[slot] = v;
        this.rises[slot]!++;
      } else this.rises[slot] = 0;
      holds = t - this.spikeSince[slot]! >= p.persist || this.rises[slot]! >= p.rising;
    } else this.spikeSince[slot] = Number.NaN;
    const since = this.spikeSince[slot]!;
    const climbing = this.rises[slot]! >= p.rising;
    this.member(slot, holds, t, z, (zv) => {
      const series = this.info(slot);
      return {
        summary: `${series.name} spiked: ${formatValue(v)} against a recent level of ${formatValue(ewma)}`,
        description: `${series.name} ${describeWhere(series.labels)} jumped to ${formatValue(v)} (+${Math.round((100 * r) / Math.abs(ewma || 1))}%), a robust z-score of ${formatValue(zv)} against its recent residuals, and ${climbing ? 'keeps climbing' : `has not recovered for ${formatSeconds((t - since) / 1000)}`}.`,
        evidence: climbing ? 'loss_spike_climbing' : 'loss_spike_not_recovering',
      };
    });
    if (!spike) {
      this.push(slot, r);
      this.sinceRescale[slot]!++;
    }
    // While spiking the level follows at a tenth of the rate: a spike that stays is not absorbed at once.
    this.ewma[slot] = ewma + (spike ? p.alpha / 10 : p.alpha) * (v - ewma);
  }

  override save(slot: number): unknown {
    const ring = this.rings[slot]!;
    const size = this.ringSize[slot]!;
    const out: number[] = [];
    const start = size < ring.length ? 0 : this.ringNext[slot]!;
    for (let i = 0; i < size; i++) out.push(ring[(start + i) % ring.length]!);
    // The robust scale of the residuals is kept as it was last worked out (it is re-worked every
    // RESCALE_EVERY residuals, not at each sample): a restore continues with it, not with a fresh one.
    return [
      this.ewma[slot],
      this.count[slot],
      out,
      this.spikeSince[slot],
      this.spikeMax[slot],
      this.rises[slot],
      this.median[slot],
      this.mad[slot],
      Number.isFinite(this.sinceRescale[slot]!) ? this.sinceRescale[slot] : null,
    ];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data)) return;
    this.ewma[slot] = data[0];
    this.count[slot] = data[1];
    this.spikeSince[slot] = num(data[3]);
    this.spikeMax[slot] = num(data[4]);
    this.rises[slot] = data[5] === undefined ? 0 : num(data[5]);
    this.rings[slot]!.fill(0);
    this.ringNext[slot] = 0;
    this.ringSize[slot] = 0;
    for (const r of (data[2] as number[] | undefined) ?? []) this.push(slot, r);
    // Earlier state has no scale: it is worked out again from the residuals at the next sample.
    if (data.length >= 9 && Number.isFinite(num(data[6])) && Number.isFinite(num(data[7]))) {
      this.median[slot] = num(data[6]);
      this.mad[slot] = num(data[7]);
      this.sinceRescale[slot] = data[8] === null ? Number.POSITIVE_INFINITY : num(data[8]);
    }
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.ewma[slot]!);
    w.float(this.count[slot]!);
    const ring = this.rings[slot]!;
    const size = this.ringSize[slot]!;
    const start = size < ring.length ? 0 : this.ringNext[slot]!;
    w.uvarint(size);
    for (let i = 0; i < size; i++) w.float(ring[(start + i) % ring.length]!);
    w.float(this.spikeSince[slot]!);
    w.float(this.spikeMax[slot]!);
    w.float(this.rises[slot]!);
    w.float(this.median[slot]!);
    w.float(this.mad[slot]!);
    w.float(this.sinceRescale[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.ewma[slot] = r.float('loss spike');
    this.count[slot] = r.float('loss spike');
    this.rings[slot]!.fill(0);
    this.ringNext[slot] = 0;
    this.ringSize[slot] = 0;
    const n = r.uvarint('loss spike residuals');
    for (let i = 0; i < n; i++) this.push(slot, r.float('loss spike residual'));
    // State written before spikes had to persist ends here.
    const more = r.remaining >= 24;
    this.spikeSince[slot] = more ? r.float('loss spike') : Number.NaN;
    this.spikeMax[slot] = more ? r.float('loss spike') : Number.NaN;
    this.rises[slot] = more ? r.float('loss spike') : 0;
    // And before the residuals' scale was kept (see load).
    if (r.remaining >= 24) {
      this.median[slot] = r.float('loss spike');
      this.mad[slot] = r.float('loss spike');
      this.sinceRescale[slot] = r.float('loss spike');
    }
  }
}

/**
 * Generic anomaly on a metric the user enabled: EWMA mean and variance, |z| above the threshold. Anomalous
 * samples update the baseline at a tenth of the rate, so a lasting level shift is reported for a while and
 * then becomes the new normal.
 */
export class AnomalyFamily extends Family<DetectorParams<'anomaly'>> {
  readonly detector = 'anomaly' as const;
  private mean = new Float64Array(0);
  private variance = new Float64Array(0);
  private count = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.mean = growF64(this.mean, n);
    this.variance = growF64(this.variance, n);
    this.count = growF64(this.count, n);
  }

  protected reset(slot: number): void {
    this.mean[slot] = 0;
    this.variance[slot] = 0;
    this.count[slot] = 0;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    return this.ctx.identity('anomaly', 'MetricAnomaly', p.severity, p.for, p.keep_firing_for, {
      ...seriesAlertLabels(series),
      metric: series.name,
    });
  }

  /** West's incremental EWM update with rate `alpha`. */
  private update(slot: number, x: number, alpha: number): void {
    if (this.count[slot] === 0) {
      this.mean[slot] = x;
      this.variance[slot] = 0;
      this.count[slot] = 1;
      return;
    }
    const diff = x - this.mean[slot]!;
    const incr = alpha * diff;
    this.mean[slot]! += incr;
    this.variance[slot] = (1 - alpha) * (this.variance[slot]! + diff * incr);
    this.count[slot]!++;
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    let anomalous = false;
    let z = 0;
    const mean = this.mean[slot]!;
    if (this.count[slot]! >= p.min_samples) {
      const sd = Math.max(Math.sqrt(this.variance[slot]!), p.min_std_ratio * Math.abs(mean), 1e-12);
      z = (v - mean) / sd;
      anomalous = Math.abs(z) > p.z;
    }
    if (anomalous) {
      this.raise(slot, t, z, (zv) => {
        const series = this.info(slot);
        return {
          summary: `${series.name} is anomalous: ${formatValue(v)} (z = ${formatValue(zv)})`,
          description: `${series.name} ${describeWhere(series.labels)} is ${formatValue(v)}, ${formatValue(Math.abs(zv))} standard deviations ${zv > 0 ? 'above' : 'below'} its recent mean of ${formatValue(mean)}.`,
        };
      });
      // Adapt slowly while anomalous: the same estimator fed at a tenth of the rate (the count still grows).
      this.update(slot, v, p.alpha / 10);
      this.count[slot]!--;
    } else {
      this.clear(slot, t);
      this.update(slot, v, p.alpha);
    }
  }

  override save(slot: number): unknown {
    return [this.mean[slot], this.variance[slot], this.count[slot]];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length !== 3) return;
    this.mean[slot] = data[0];
    this.variance[slot] = data[1];
    this.count[slot] = data[2];
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.mean[slot]!);
    w.float(this.variance[slot]!);
    w.float(this.count[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.mean[slot] = r.float('AnomalyFamily');
    this.variance[slot] = r.float('AnomalyFamily');
    this.count[slot] = r.float('AnomalyFamily');
  }
}

/**
 * Gradual throughput degradation (change-point detection): after `skip` (start-up) the detector learns a
 * baseline mean and standard deviation over `warmup`, then runs a one-sided lower CUSUM
 * S = max(0, S + (μ0 − x)/σ0 − k). The alert holds while S > h and the smoothed level is at least `min_drop`
 * below the baseline. One alert per job, whichever rank or metric shows it.
 */
/**
 * The throughput series of one metric of one job (one per rank): the job's total, as its page shows it, is
 * their sum. Sums are kept over the members that have a baseline, updated as each member's level moves.
 */
interface ThroughputGroup {
  readonly slots: number[];
  /** Σ level and Σ baseline over the members with a baseline, and how many they are. */
  sumLevel: number;
  sumBase: number;
  withBase: number;
}

/**
 * The share of a job's throughput series that must be degraded for the job's ThroughputDegraded: in synchronous
 * data-parallel training every rank runs at the job's pace, so a real degradation shows on all of them; one rank
 * of 512 crossing its threshold by chance (or a straggler's symptom on the rank itself) is no job degradation.
 */
const THROUGHPUT_QUORUM = 0.5;

export class ThroughputFamily extends MemberFamily<DetectorParams<'throughput'>> {
  readonly detector = 'throughput' as const;
  private readonly groups = new Map<string, ThroughputGroup>();
  private groupOf: (ThroughputGroup | undefined)[] = [];
  private firstT = new Float64Array(0);
  private n = new Float64Array(0);
  private sum = new Float64Array(0);
  private sumSq = new Float64Array(0);
  private mu0 = new Float64Array(0);
  private sigma0 = new Float64Array(0);
  private cusum = new Float64Array(0);
  private level = new Float64Array(0);
  /** Hysteresis: once degraded, it stays so until CUSUM and drop are both below half their thresholds. */
  private degraded = new Uint8Array(0);
  /** Newest sample time and the series' usual sampling interval (ms), to tell a sample that covers a gap. */
  private lastT = new Float64Array(0);
  private interval = new Float64Array(0);
  private readonly preferred = new SiblingColumn();
  /**
   * Level changes: how many samples in a row pushed the CUSUM by its cap (an abrupt shift, not a drift), and
   * the job's GPU utilization when the baseline was learned.
   */
  private capRun = new Float64Array(0);
  private util0 = new Float64Array(0);
  /**
   * The samples since the CUSUM last rose out of its noise (its change-point estimate): count, Σ x and Σ i·x (i = 0, 1, …),
   * for their least-squares trend. A level change is a step there (flat after it); a degradation keeps falling.
   */
  private segN = new Float64Array(0);
  private segSum = new Float64Array(0);
  private segSumIX = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.capRun = growF64(this.capRun, n);
    this.util0 = growF64(this.util0, n);
    this.segN = growF64(this.segN, n);
    this.segSum = growF64(this.segSum, n);
    this.segSumIX = growF64(this.segSumIX, n);
    this.lastT = growF64(this.lastT, n);
    this.interval = growF64(this.interval, n);
    this.preferred.grow(n);
    this.firstT = growF64(this.firstT, n);
    this.n = growF64(this.n, n);
    this.sum = growF64(this.sum, n);
    this.sumSq = growF64(this.sumSq, n);
    this.mu0 = growF64(this.mu0, n);
    this.sigma0 = growF64(this.sigma0, n);
    this.cusum = growF64(this.cusum, n);
    this.level = growF64(this.level, n);
    this.degraded = growU8(this.degraded, n);
  }

  protected reset(slot: number): void {
    this.firstT[slot] = Number.NaN;
    this.n[slot] = 0;
    this.sum[slot] = 0;
    this.sumSq[slot] = 0;
    this.mu0[slot] = Number.NaN;
    this.sigma0[slot] = Number.NaN;
    this.cusum[slot] = 0;
    this.level[slot] = Number.NaN;
    this.degraded[slot] = 0;
    this.lastT[slot] = Number.NaN;
    this.interval[slot] = Number.NaN;
    this.preferred.reset(slot);
    this.capRun[slot] = 0;
    this.util0[slot] = Number.NaN;
    this.segN[slot] = this.segSum[slot] = this.segSumIX[slot] = 0;
  }

  /**
   * Whether the samples since the CUSUM left zero dropped as a step, not a slide: their least-squares decline
   * (first to last), plus one standard error of it, is less than their mean drop below the baseline. A step
   * down at the segment's start declines by about nothing; a linear slide declines by about twice its mean drop.
   */
  private stepShaped(slot: number): boolean {
    const n = this.segN[slot]!;
    if (n < 6) return false;
    const mean = this.segSum[slot]! / n;
    const sxx = (n * (n * n - 1)) / 12;
    const slope = (this.segSumIX[slot]! - ((n - 1) / 2) * this.segSum[slot]!) / sxx;
    const decline = -slope * (n - 1);
    const se = (this.sigma0[slot]! * (n - 1)) / Math.sqrt(sxx);
    return decline + se < this.mu0[slot]! - mean;
  }

  override alloc(info: SeriesInfo, params: unknown): number {
    const slot = super.alloc(info, params);
    const key = `${info.tenant}\u0000${info.labels.job_id ?? ''}\u0000${info.name}`;
    let g = this.groups.get(key);
    if (!g) {
      g = { slots: [], sumLevel: 0, sumBase: 0, withBase: 0 };
      this.groups.set(key, g);
    }
    g.slots.push(slot);
    this.groupOf[slot] = g;
    return slot;
  }

  override free(slot: number): void {
    const g = this.groupOf[slot];
    if (g) {
      this.account(slot, -1);
      const i = g.slots.indexOf(slot);
      if (i >= 0) g.slots.splice(i, 1);
      if (g.slots.length === 0)
        for (const [k, x] of this.groups)
          if (x === g) {
            this.groups.delete(k);
            break;
          }
      this.groupOf[slot] = undefined;
    }
    super.free(slot);
  }

  /** Adds (`sign` 1) or removes (-1) the slot's level and baseline in its job's sums, where it has a baseline. */
  private account(slot: number, sign: 1 | -1): void {
    const g = this.groupOf[slot];
    const base = this.mu0[slot]!;
    if (!g || !Number.isFinite(base)) return;
    g.sumLevel += sign * this.level[slot]!;
    g.sumBase += sign * base;
    g.withBase += sign;
    if (g.withBase === 0) g.sumLevel = g.sumBase = 0;
  }

  /** How many of the slot's job's series must be degraded for the job's alert. */
  private quorum(slot: number): number {
    const g = this.groupOf[slot];
    return g ? Math.max(1, Math.ceil(THROUGHPUT_QUORUM * g.slots.length)) : 1;
  }

  /**
   * The job's throughput now and its baseline, summed over its series that have a baseline (exact: summed
   * afresh, for the alert's text), and how many series that is.
   */
  private jobTotals(slot: number): { level: number; base: number; n: number; of: number } {
    const g = this.groupOf[slot];
    if (!g) return { level: this.level[slot]!, base: this.mu0[slot]!, n: 1, of: 1 };
    let level = 0;
    let base = 0;
    let n = 0;
    for (const x of g.slots) {
      if (!Number.isFinite(this.mu0[x]!)) continue;
      level += this.level[x]!;
      base += this.mu0[x]!;
      n++;
    }
    return { level, base, n, of: g.slots.length };
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    return this.ctx.identity(
      'throughput',
      'ThroughputDegraded',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(this.info(slot)),
    );
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    // The sample covers a gap (the series sent nothing for more than 3 usual intervals): it averages a pause.
    const dt = t - this.lastT[slot]!;
    this.lastT[slot] = t;
    let interval = this.interval[slot]!;
    const coversGap = dt > 3 * interval;
    if (dt > 0) {
      interval = Number.isNaN(interval) ? dt : interval + 0.1 * (Math.min(dt, 2 * interval) - interval);
      this.interval[slot] = interval;
    }
    // Nothing trained (0), a sample during or covering a checkpoint or evaluation, or every rank frozen:
    // not the throughput of training (stall and pauses are the job's to judge).
    const job = this.ctx.info(this.series[slot]!).job;
    if (v <= 0 || coversGap) return;
    if (job) {
      const phase = job.phase;
      if (phase === PHASE_STARTUP || phase === PHASE_WARMUP || phase === PHASE_COOLDOWN) return;
      if (isPausePhase(phase) || phase === PHASE_FROZEN || t - job.pauseEndT < interval) return;
    }
    // Samples per second change with the sequence length (a curriculum); where the rank also reports tokens
    // per second, that is its throughput.
    if (p.prefer !== '' && this.info(slot).name !== p.prefer) {
      const preferred = this.preferred.get(this.ctx, slot, this.series[slot]!, p.prefer);
      if (preferred >= 0 && t - this.ctx.lastT(preferred) <= 3 * interval) {
        this.member(slot, false, t, 0, NO_ANNOTATIONS);
        return;
      }
    }
    if (Number.isNaN(this.firstT[slot]!)) this.firstT[slot] = t;
    const age = t - this.firstT[slot]!;
    if (age < p.skip) return;
    if (Number.isNaN(this.mu0[slot]!)) {
      this.n[slot]!++;
      this.sum[slot]! += v;
      this.sumSq[slot]! += v * v;
      const n = this.n[slot]!;
      if (age < p.skip + p.warmup || n < 10) return;
      const mean = this.sum[slot]! / n;
      if (!(mean > 0)) {
        // No throughput during warm-up (still loading, or idle): learn again later.
        this.firstT[slot] = t - p.skip;
        this.n[slot] = this.sum[slot] = this.sumSq[slot] = 0;
        return;
      }
      const variance = Math.max(0, this.sumSq[slot]! / n - mean * mean);
      this.mu0[slot] = mean;
      this.sigma0[slot] = Math.max(Math.sqrt(variance), p.min_std_ratio * mean);
      this.level[slot] = mean;
      this.account(slot, 1);
      this.util0[slot] = job ? job.gpuUtilization(t) : Number.NaN;
      return;
    }
    const mu0 = this.mu0[slot]!;
    const level = this.level[slot]! + p.alpha * (v - this.level[slot]!);
    const g = this.groupOf[slot];
    if (g) g.sumLevel += level - this.level[slot]!;
    this.level[slot] = level;
    const h = p.h;
    // Each sample moves the CUSUM by at most CUSUM_STEP_CAP: one outlier (a sample that averages a stall the
    // job did not report) cannot raise the alert on its own; a lasting drop still does.
    const z = (mu0 - v) / this.sigma0[slot]!;
    this.capRun[slot] = z >= CUSUM_STEP_CAP ? this.capRun[slot]! + 1 : 0;
    const step = Math.min(CUSUM_STEP_CAP, z) - p.k;
    const cusum = Math.min(5 * h, Math.max(0, this.cusum[slot]! + step));
    // The segment starts where the CUSUM last stood at no more than a tenth of its threshold: noise moves it
    // that much before a change, and a segment that began in that noise would see a step as a slide.
    if (cusum > h / 10) {
      if (this.cusum[slot]! <= h / 10) this.segN[slot] = this.segSum[slot] = this.segSumIX[slot] = 0;
      this.segSumIX[slot]! += this.segN[slot]! * v;
      this.segSum[slot]! += v;
      this.segN[slot]!++;
    }
    this.cusum[slot] = cusum;
    const drop = 1 - level / mu0;
    const degraded = this.degraded[slot]
      ? cusum > h / 2 || drop >= p.min_drop / 2
      : cusum > h && drop >= p.min_drop;
    if (
      degraded &&
      this.degraded[slot] === 0 &&
      (this.capRun[slot]! >= h / (CUSUM_STEP_CAP - p.k) || this.stepShaped(slot))
    ) {
      // An abrupt shift down while the GPUs stay as busy as they were: more work per sample (a longer
      // sequence, another batch size), a new level of this job, not a degradation. Learn the baseline again,
      // from now, over `warmup`.
      const u = job ? job.gpuUtilization(t) : Number.NaN;
      if (u >= this.util0[slot]! - UTIL_SAME) {
        this.account(slot, -1);
        this.mu0[slot] = Number.NaN;
        this.firstT[slot] = t - p.skip;
        this.n[slot] = this.sum[slot] = this.sumSq[slot] = 0;
        this.cusum[slot] = 0;
        this.capRun[slot] = 0;
        this.segN[slot] = this.segSum[slot] = this.segSumIX[slot] = 0;
        this.degraded[slot] = 0;
        this.member(slot, false, t, 0, NO_ANNOTATIONS);
        return;
      }
    }
    this.degraded[slot] = degraded ? 1 : 0;
    if (!degraded && this.maybeActive[slot] === 0) return;
    // The alert's value and text are the job's: its total throughput against its total baseline, as the job
    // page shows it (the sum over ranks), not one rank's.
    // Rounded to a millionth: the running sums depend on the order members were added and updated (a restored
    // engine adds them anew), and the value must not differ in its last bits between the two.
    const jobDrop = Math.round(1e6 * (g && g.sumBase > 0 ? 1 - g.sumLevel / g.sumBase : drop)) / 1e6;
    this.member(
      slot,
      degraded,
      t,
      jobDrop,
      () => {
        const series = this.info(slot);
        const tot = this.jobTotals(slot);
        const d = tot.base > 0 ? 1 - tot.level / tot.base : drop;
        const over = tot.of > 1 ? `, the sum over its ${tot.n} ranks` : '';
        return {
          summary: `throughput is ${Math.round(100 * d)}% below its baseline`,
          description: `${series.name} of job ${series.labels.job_id ?? ''} fell to ${formatValue(tot.level)} from a baseline of ${formatValue(tot.base)} learned after start-up (${Math.round(100 * d)}% lower${over}; CUSUM change-point detector on each rank's series, degraded on at least ${Math.round(100 * THROUGHPUT_QUORUM)}% of them).`,
          evidence: 'throughput_cusum_below_baseline',
        };
      },
      this.quorum(slot),
    );
  }

  override save(slot: number): unknown {
    const base = [
      this.firstT[slot],
      this.n[slot],
      this.sum[slot],
      this.sumSq[slot],
      this.mu0[slot],
      this.sigma0[slot],
      this.cusum[slot],
      this.level[slot],
      this.degraded[slot],
    ];
    // State restored from before the sampling interval was kept, and nothing seen since: as it was.
    if (Number.isNaN(this.lastT[slot]!) && this.capRun[slot] === 0 && Number.isNaN(this.util0[slot]!))
      return base;
    return [
      ...base,
      this.lastT[slot],
      this.interval[slot],
      this.capRun[slot],
      this.util0[slot],
      this.segN[slot],
      this.segSum[slot],
      this.segSumIX[slot],
    ];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length < 9) return;
    const d = data.map(num);
    this.account(slot, -1);
    this.firstT[slot] = d[0]!;
    this.n[slot] = d[1]!;
    this.sum[slot] = d[2]!;
    this.sumSq[slot] = d[3]!;
    this.mu0[slot] = d[4]!;
    this.sigma0[slot] = d[5]!;
    this.cusum[slot] = d[6]!;
    this.level[slot] = d[7]!;
    this.degraded[slot] = d[8] === 1 ? 1 : 0;
    this.lastT[slot] = d[9] ?? Number.NaN;
    this.interval[slot] = d[10] ?? Number.NaN;
    this.capRun[slot] = d[11] ?? 0;
    this.util0[slot] = d[12] ?? Number.NaN;
    // State from before the CUSUM's segment was kept: it starts afresh.
    this.segN[slot] = d[13] ?? 0;
    this.segSum[slot] = d[14] ?? 0;
    this.segSumIX[slot] = d[15] ?? 0;
    this.account(slot, 1);
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.firstT[slot]!);
    w.float(this.n[slot]!);
    w.float(this.sum[slot]!);
    w.float(this.sumSq[slot]!);
    w.float(this.mu0[slot]!);
    w.float(this.sigma0[slot]!);
    w.float(this.cusum[slot]!);
    w.float(this.level[slot]!);
    w.u8(this.degraded[slot]!);
    w.float(this.lastT[slot]!);
    w.float(this.interval[slot]!);
    w.float(this.capRun[slot]!);
    w.float(this.util0[slot]!);
    w.float(this.segN[slot]!);
    w.float(this.segSum[slot]!);
    w.float(this.segSumIX[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.account(slot, -1);
    this.firstT[slot] = r.float('ThroughputFamily');
    this.n[slot] = r.float('ThroughputFamily');
    this.sum[slot] = r.float('ThroughputFamily');
    this.sumSq[slot] = r.float('ThroughputFamily');
    this.mu0[slot] = r.float('ThroughputFamily');
    this.sigma0[slot] = r.float('ThroughputFamily');
    this.cusum[slot] = r.float('ThroughputFamily');
    this.level[slot] = r.float('ThroughputFamily');
    this.degraded[slot] = r.u8('ThroughputFamily') === 1 ? 1 : 0;
    // State written before the sampling interval was kept ends here.
    this.lastT[slot] = r.remaining >= 16 ? r.float('ThroughputFamily') : Number.NaN;
    this.interval[slot] = r.remaining >= 8 ? r.float('ThroughputFamily') : Number.NaN;
    const more = r.remaining >= 16;
    this.capRun[slot] = more ? r.float('ThroughputFamily') : 0;
    this.util0[slot] = more ? r.float('ThroughputFamily') : Number.NaN;
    // State from before the CUSUM's segment was kept ends here: it starts afresh.
    const seg = r.remaining >= 24;
    this.segN[slot] = seg ? r.float('ThroughputFamily') : 0;
    this.segSum[slot] = seg ? r.float('ThroughputFamily') : 0;
    this.segSumIX[slot] = seg ? r.float('ThroughputFamily') : 0;
    this.account(slot, 1);
  }
}

/**
 * Accuracy plateau, as early stopping sees it: the smoothed value has not beaten its best by `min_delta`
 * for `patience`.
 */
export class PlateauFamily extends MemberFamily<DetectorParams<'plateau'>> {
  readonly detector = 'plateau' as const;
  private ewma = new Float64Array(0);
  private count = new Float64Array(0);
  private best = new Float64Array(0);
  private bestT = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.ewma = growF64(this.ewma, n);
    this.count = growF64(this.count, n);
    this.best = growF64(this.best, n);
    this.bestT = growF64(this.bestT, n);
  }

  protected reset(slot: number): void {
    this.ewma[slot] = Number.NaN;
    this.count[slot] = 0;
    this.best[slot] = Number.NaN;
    this.bestT[slot] = Number.NaN;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    return this.ctx.identity(
      'plateau',
      'AccuracyPlateau',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    const prev = this.ewma[slot]!;
    const ewma = Number.isNaN(prev) ? v : prev + p.alpha * (v - prev);
    this.ewma[slot] = ewma;
    if (++this.count[slot]! < p.min_samples) return;
    if (Number.isNaN(this.best[slot]!) || ewma > this.best[slot]! + p.min_delta) {
      this.best[slot] = ewma;
      this.bestT[slot] = t;
    }
    const since = t - this.bestT[slot]!;
    const best = this.best[slot]!;
    this.member(slot, since >= p.patience, t, since / 1000, (s) => {
      const series = this.info(slot);
      return {
        summary: `${series.name} has not improved for ${formatSeconds(s)}`,
        description: `${series.name} of job ${series.labels.job_id ?? ''} has stayed within ${p.min_delta} of its best (${formatValue(best)}) for ${formatSeconds(s)}: the run has plateaued.`,
      };
    });
  }

  override save(slot: number): unknown {
    return [this.ewma[slot], this.count[slot], this.best[slot], this.bestT[slot]];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length !== 4) return;
    this.ewma[slot] = num(data[0]);
    this.count[slot] = num(data[1]);
    this.best[slot] = num(data[2]);
    this.bestT[slot] = num(data[3]);
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.ewma[slot]!);
    w.float(this.count[slot]!);
    w.float(this.best[slot]!);
    w.float(this.bestT[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.ewma[slot] = r.float('PlateauFamily');
    this.count[slot] = r.float('PlateauFamily');
    this.best[slot] = r.float('PlateauFamily');
    this.bestT[slot] = r.float('PlateauFamily');
  }
}

/** ECC errors: any increase of the counter (a reset counts what the counter shows after it). */
export class EccFamily extends Family<DetectorParams<'ecc'>> {
  readonly detector = 'ecc' as const;
  private prev = new Float64Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.prev = growF64(this.prev, n);
  }

  protected reset(slot: number): void {
    this.prev[slot] = Number.NaN;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    const uncorrectable = /uncorrect|dbe|double/i.test(
      `${series.labels.type ?? ''} ${series.labels.error_type ?? ''}`,
    );
    const severity: Severity = uncorrectable ? 'critical' : p.severity;
    return this.ctx.identity(
      'ecc',
      'GPUECCErrors',
      severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(slot: number, t: number, v: number): void {
    const prev = this.prev[slot]!;
    this.prev[slot] = v;
    if (Number.isNaN(prev) || !Number.isFinite(v)) return;
    const delta = v >= prev ? v - prev : v;
    if (delta > 0) {
      this.raise(slot, t, delta, (d) => {
        const series = this.info(slot);
        return {
          summary: `GPU ECC errors: +${formatValue(d)}`,
          description: `${series.name} ${describeWhere(series.labels)} increased by ${formatValue(d)} to ${formatValue(v)}. Repeated errors mean the GPU should be drained and checked.`,
        };
      });
    } else {
      this.clear(slot, t);
    }
  }

  override save(slot: number): unknown {
    return this.prev[slot];
  }

  override load(slot: number, data: unknown): void {
    if (typeof data === 'number') this.prev[slot] = data;
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.prev[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    this.prev[slot] = r.float('EccFamily');
  }
}

/** Thermal or power throttling reported by the GPU (a non-zero `gpu_throttled`). */
export class ThrottleFamily extends Family<DetectorParams<'throttle'>> {
  readonly detector = 'throttle' as const;

  protected reset(): void {}

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    return this.ctx.identity(
      'throttle',
      'GPUThrottled',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(this.info(slot)),
    );
  }

  observe(slot: number, t: number, v: number): void {
    if (v > 0) {
      this.raise(slot, t, v, () => {
        const { labels } = this.info(slot);
        return {
          summary: `GPU throttled${labels.reason ? ` (${labels.reason})` : ''}`,
          description: `${describeWhere(labels)} is being throttled${labels.reason ? ` (${labels.reason})` : ''}: its clocks are reduced and the whole job waits for it.`,
        };
      });
    } else {
      this.clear(slot, t);
    }
  }
}

/** Fine windows (buckets of `bucket`) and coarse ones (buckets of `coarse_bucket`) the leak detector tries. */
const FINE_BUCKETS = 24;
const COARSE_BUCKETS = 48;
const WINDOWS = [6, 12, 24, 48] as const;
/**
 * Memory windows start at 12 buckets: in 6, a glitch of a few samples (a reading of a tenth of the memory)
 * covers half the window and looks like growth.
 */
const LEAK_WINDOWS = [12, 24, 48] as const;
/** A leak grows by more than this many times the largest rise its memory made and released before. */
const SWING_FACTOR = 1.5;
/** One-sided confidence of the slope's lower bound (sign test, normal quantile of 95%). */
const SLOPE_Z = 1.645;
/**
 * A series' start-up memory ramp is over once its newest this many fine buckets (two minutes or more) stay
 * within half the least material growth of each other: it has levelled off, however long the job's own start-up
 * took. Shorter flats are the pauses of a ramp that loads in chunks (shards, optimizer state, caches).
 */
const RAMP_FLAT_BUCKETS = 12;
/** Or once the job has trained this long since its (re)start (a leak from the first step is still found). */
const RAMP_MAX_MS = 10 * 60_000;

/**
 * GPU memory growing towards out-of-memory, fast or slow: memory samples averaged into buckets of `bucket`
 * (the last few minutes) and of `coarse_bucket` (the last hours), and over windows of 6 to 48 buckets of
 * each, Sen's slope with a sign-test lower bound (trend.ts). A window says "leak" when:
 * - the lower bound of its slope is above zero (the growth is sustained, not a few steps or outliers);
 * - its newest half still grows at least at half that rate (a start-up ramp or a cache that filled up and
 *   stays is not a leak: the growth must be going on now);
 * - the growth over the window is at least `min_growth` of the GPU's total memory (the sibling series);
 * - the forecast time until the memory is full, at the slope's lower bound, is within `horizon` and within
 *   `max_extrapolation` × the window's span (a forecast extrapolates only so far beyond what it saw).
 * Samples of the job's start-up and warm-up (phase.ts; a series of a job without step series: its first
 * `startup`) and of its pauses are not used: the memory ramp of a fresh or restarted job is no leak.
 */
export class MemoryLeakFamily extends Family<DetectorParams<'memory_leak'>> {
  readonly detector = 'memory_leak' as const;
  private readonly fine = new BucketRing(FINE_BUCKETS);
  private readonly coarse = new BucketRing(COARSE_BUCKETS);
  private firstT = new Float64Array(0);
  /** The verdict of the last evaluation (at a bucket's close): leaking, seconds to full, slope (bytes/s). */
  private leaking = new Uint8Array(0);
  private toFull = new Float64Array(0);
  /** When `toFull` counts from (the forecast window's newest bucket; NaN: from now, as older state restored). */
  private toFullFrom = new Float64Array(0);
  private slope = new Float64Array(0);
  private spanOf = new Float64Array(0);
  /**
   * The job's own memory swings: lowest and highest bucket mean of the current rise, and the largest rise
   * that was released again (a cache that fills and empties, a sawtooth). A leak grows beyond it.
   */
  private lo = new Float64Array(0);
  private hi = new Float64Array(0);
  private swing = new Float64Array(0);
  /**
   * When the series' start-up memory ramp was over (NaN: still ramping): the memory levelled off, or the job
   * trained for {@link RAMP_MAX_MS}. Growth before it is the job filling its working set, not a leak.
   */
  private rampEndT = new Float64Array(0);
  private readonly sibling = new SiblingColumn();
  private readonly fit = new SenFit();
  private readonly recent = new SenFit();

  protected override grow(n: number): void {
    super.grow(n);
    this.rampEndT = growF64(this.rampEndT, n);
    this.lo = growF64(this.lo, n);
    this.hi = growF64(this.hi, n);
    this.swing = growF64(this.swing, n);
    this.fine.grow(n);
    this.coarse.grow(n);
    this.firstT = growF64(this.firstT, n);
    this.leaking = growU8(this.leaking, n);
    this.toFull = growF64(this.toFull, n);
    this.toFullFrom = growF64(this.toFullFrom, n);
    this.slope = growF64(this.slope, n);
    this.spanOf = growF64(this.spanOf, n);
    this.sibling.grow(n);
  }

  protected reset(slot: number): void {
    this.fine.reset(slot);
    this.coarse.reset(slot);
    this.rampEndT[slot] = Number.NaN;
    this.firstT[slot] = Number.NaN;
    this.leaking[slot] = 0;
    this.toFull[slot] = Number.POSITIVE_INFINITY;
    this.toFullFrom[slot] = Number.NaN;
    this.slope[slot] = 0;
    this.spanOf[slot] = 0;
    this.lo[slot] = Number.NaN;
    this.hi[slot] = Number.NaN;
    this.swing[slot] = 0;
    this.sibling.reset(slot);
  }

  /** Follows the rises and releases of the newest fine bucket mean `m`. */
  private trackSwing(slot: number, m: number): void {
    const lo = this.lo[slot]!;
    const hi = this.hi[slot]!;
    if (Number.isNaN(lo)) {
      this.lo[slot] = this.hi[slot] = m;
    } else if (hi > lo && hi - m > (hi - lo) / 2) {
      // Released: more than half of the rise came back.
      if (hi - lo > this.swing[slot]!) this.swing[slot] = hi - lo;
      this.lo[slot] = this.hi[slot] = m;
    } else if (m > hi) this.hi[slot] = m;
    else if (m < lo) this.lo[slot] = this.hi[slot] = m;
  }

  /** Forgets the series' memory history: the job (re)starts and ramps its memory again. */
  private startOver(slot: number): void {
    this.fine.reset(slot);
    this.coarse.reset(slot);
    this.firstT[slot] = Number.NaN;
    this.rampEndT[slot] = Number.NaN;
    this.leaking[slot] = 0;
    this.lo[slot] = this.hi[slot] = Number.NaN;
  }

  /** Whether the newest {@link RAMP_FLAT_BUCKETS} fine buckets lie within half the least material growth. */
  private levelledOff(slot: number, p: DetectorParams<'memory_leak'>): boolean {
    if (this.fine.count(slot) < RAMP_FLAT_BUCKETS) return false;
    const totalRef = this.sibling.get(this.ctx, slot, this.series[slot]!, p.total_metric);
    const total = totalRef >= 0 ? this.ctx.lastV(totalRef) : Number.NaN;
    if (!(total > 0)) return false;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < RAMP_FLAT_BUCKETS; i++) {
      const m = this.fine.valueAt(slot, i);
      if (m < lo) lo = m;
      if (m > hi) hi = m;
    }
    return hi - lo <= 0.5 * p.min_growth * total;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    return this.ctx.identity(
      'memory_leak',
      'GPUMemoryLeak',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(this.info(slot)),
    );
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    const job = this.ctx.info(this.series[slot]!).job;
    const phase = job ? job.phase : PHASE_STEADY;
    const progressSince = job ? job.progressSinceT : Number.NaN;
    // A job that (re)started after this series' ramp was over (a restart, or the first step after a start-up
    // whose memory had levelled off: optimizer state and activations come with it) ramps its memory again.
    const restarted = progressSince > this.rampEndT[slot]!;
    if (phase === PHASE_COOLDOWN || restarted) {
      if (!Number.isNaN(this.firstT[slot]!) || !this.fine.isEmpty(slot)) this.startOver(slot);
      if (phase === PHASE_COOLDOWN) {
        this.clear(slot, t);
        return;
      }
    }
    if (isPausePhase(phase)) {
      if (this.leaking[slot] === 0) this.clear(slot, t);
      return;
    }
    // The series' first sample past the job's start-up and warm-up (a job without step series is in neither).
    if (Number.isNaN(this.firstT[slot]!) && phase !== PHASE_STARTUP && phase !== PHASE_WARMUP)
      this.firstT[slot] = t;
    const closedFine = this.fine.add(slot, t, v, p.bucket);
    const closedCoarse = this.coarse.add(slot, t, v, p.coarse_bucket);
    if (closedFine) this.trackSwing(slot, this.fine.valueAt(slot, 0));
    if (Number.isNaN(this.rampEndT[slot]!)) {
      // Ramping up to its working set, from the series' first sample (start-up and warm-up included, so that a
      // memory that is flat from the start is past its ramp when training begins): nothing is fitted until the
      // memory levels off, and then only from where it did. A job's own start-up timer says nothing about it.
      const since = Number.isFinite(progressSince) ? progressSince : this.firstT[slot]!;
      if (closedFine && this.levelledOff(slot, p)) {
        // Fits use the levelled memory, never the ramp; nor, where the job has no step series to say when it
        // trains, the series' first `startup`.
        let keepFrom = Math.floor(this.fine.timeAt(slot, RAMP_FLAT_BUCKETS - 1) / p.bucket) * p.bucket;
        if (!Number.isFinite(progressSince) && Number.isFinite(this.firstT[slot]!))
          keepFrom = Math.max(keepFrom, this.firstT[slot]! + p.startup);
        this.rampEndT[slot] = t;
        this.fine.keepSince(slot, keepFrom, p.bucket);
        this.coarse.keepSince(slot, keepFrom, p.coarse_bucket);
        this.lo[slot] = this.hi[slot] = Number.NaN;
      } else if (t - since >= RAMP_MAX_MS) {
        // Still growing after this long: a slow ramp, or a leak from the first step. Fit from here on.
        this.rampEndT[slot] = t;
        this.fine.reset(slot);
        this.coarse.reset(slot);
        this.lo[slot] = this.hi[slot] = Number.NaN;
      } else {
        this.clear(slot, t);
        return;
      }
    }
    // Fits only in training: not in the job's start-up and warm-up, nor in a series' first `startup` where the
    // job has no step series to say when it trains.
    const training =
      phase !== PHASE_STARTUP &&
      phase !== PHASE_WARMUP &&
      (Number.isFinite(progressSince) || t - this.firstT[slot]! >= p.startup);
    if (!training) {
      // Past its ramp but not training yet (warm-up): what it does now is not the job's steady memory.
      this.fine.reset(slot);
      this.coarse.reset(slot);
      this.clear(slot, t);
      return;
    }
    if (closedFine || closedCoarse) this.evaluate(slot, p);
    if (this.leaking[slot] === 1) {
      const slopePerSecond = this.slope[slot]!;
      const span = this.spanOf[slot]!;
      const from = this.toFullFrom[slot]!;
      // The forecast counts down between evaluations (a coarse window's is up to a bucket old).
      const left = Math.max(0, this.toFull[slot]! - (Number.isNaN(from) ? 0 : (t - from) / 1000));
      this.raise(slot, t, left, (s) => {
        const series = this.info(slot);
        const totalRef = this.sibling.get(this.ctx, slot, this.series[slot]!, p.total_metric);
        const total = totalRef >= 0 ? this.ctx.lastV(totalRef) : Number.NaN;
        return {
          summary: `GPU memory grows ${formatRate(slopePerSecond)}: out of memory in about ${formatSeconds(s)}`,
          description: `${series.name} ${describeWhere(series.labels)} grows ${formatRate(slopePerSecond)} (its steady growth over the last ${formatSeconds(span / 1000)}) and is at ${formatValue(v / 2 ** 30)} GiB of ${formatValue(total / 2 ** 30)} GiB: at that rate it runs out of memory in about ${formatSeconds(s)}.`,
          evidence: 'memory_sen_slope_lower_bound_forecast',
        };
      });
    } else {
      this.clear(slot, t);
    }
  }

  /**
   * Tries every window of both rings. Whether the memory leaks is decided on each window's slope's lower bound
   * (above); how soon it runs out is forecast from the current slope: of the windows that say "leak", the
   * longest whose newest half grows at its rate (within a quarter: the growth is a line over the whole
   * window, the most buckets for the least noise), else the shortest (the leak began inside the longer ones,
   * whose slopes average in the flat memory before it, or it speeds up). Its Sen's slope and its line's
   * value at its newest bucket give the time the line reaches the GPU's total.
   */
  private evaluate(slot: number, p: DetectorParams<'memory_leak'>): void {
    const totalRef = this.sibling.get(this.ctx, slot, this.series[slot]!, p.total_metric);
    const total = totalRef >= 0 ? this.ctx.lastV(totalRef) : Number.NaN;
    let leak = false;
    /** The forecast window's precision (see below). */
    let bestLower = 0;
    let best = Number.POSITIVE_INFINITY;
    let bestFrom = Number.NaN;
    let bestSlope = 0;
    let bestSpan = 0;
    if (total > 0) {
      for (let r = 0; r < 2; r++) {
        const ring = r === 0 ? this.fine : this.coarse;
        for (const k of LEAK_WINDOWS) {
          if (k > ring.capacity || ring.count(slot) < k) break;
          // Most memory is flat: a window whose ends grew by less than half the least material growth
          // needs no fit.
          if (!(ring.endsRise(slot, k) >= 0.5 * p.min_growth * total)) continue;
          const fit = this.fit;
          if (!ring.fit(slot, k, SLOPE_Z, fit) || !(fit.lower > 0)) continue;
          // The forecast's window, whether or not it says "leak" itself: the one whose slope is known best
          // (the narrowest confidence interval for its size, lower ÷ upper bound), the longest still all in the
          // leak: a longer one mixes in the flat memory before the leak began (its pair slopes spread from
          // none to the leak's), a shorter one is noisier.
          const precision = fit.lower / fit.upper;
          if (precision > bestLower) {
            bestLower = precision;
            best = Math.max(0, total - fit.level) / fit.slope;
            bestFrom = ring.timeAt(slot, 0);
            bestSlope = fit.slope * 1000;
            bestSpan = fit.span;
          }
          // Material growth: a share of the GPU, a share of what was free when the window began (a forecast
          // that holds has seen part of the way), and beyond the largest swing this memory made and released.
          const growth = fit.slope * fit.span;
          const headroom = total - (fit.level - growth);
          if (growth < p.min_growth * total || growth < p.min_headroom_share * headroom) continue;
          if (growth < SWING_FACTOR * this.swing[slot]!) continue;
          const recent = Math.max(4, k >> 1);
          if (!ring.fit(slot, recent, 0, this.recent) || this.recent.slope < 0.5 * fit.slope) continue;
          const ms = Math.max(0, total - fit.level) / fit.lower;
          if (ms > p.horizon || ms > p.max_extrapolation * fit.span) continue;
          leak = true;
        }
      }
    }
    this.leaking[slot] = leak ? 1 : 0;
    this.toFull[slot] = best / 1000;
    this.toFullFrom[slot] = bestFrom;
    this.slope[slot] = bestSlope;
    this.spanOf[slot] = bestSpan;
  }

  override save(slot: number): unknown {
    return [
      this.firstT[slot],
      this.leaking[slot],
      this.toFull[slot],
      this.slope[slot],
      this.spanOf[slot],
      this.fine.save(slot),
      this.coarse.save(slot),
      this.lo[slot],
      this.hi[slot],
      this.swing[slot],
      this.toFullFrom[slot],
      this.rampEndT[slot],
    ];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length < 10 || data.length > 12) return;
    // Older state: 10 entries (before the forecast's start was handed over: it counts down from now) or 11
    // (before the ramp was followed: a series that had begun is past its ramp).
    this.toFullFrom[slot] = data.length >= 11 ? num(data[10]) : Number.NaN;
    this.rampEndT[slot] = data.length >= 12 ? num(data[11]) : num(data[0]);
    this.lo[slot] = num(data[7]);
    this.hi[slot] = num(data[8]);
    this.swing[slot] = num(data[9]);
    this.firstT[slot] = num(data[0]);
    this.leaking[slot] = data[1] === 1 ? 1 : 0;
    this.toFull[slot] = data[2] === null ? Number.POSITIVE_INFINITY : num(data[2]);
    this.slope[slot] = num(data[3]);
    this.spanOf[slot] = num(data[4]);
    this.fine.load(slot, (data[5] as (number | null)[]).map(num));
    this.coarse.load(slot, (data[6] as (number | null)[]).map(num));
  }

  override write(slot: number, w: StateWriter): void {
    w.float(this.firstT[slot]!);
    w.u8(this.leaking[slot]!);
    w.float(this.toFull[slot]!);
    w.float(this.slope[slot]!);
    w.float(this.spanOf[slot]!);
    this.fine.write(slot, w);
    this.coarse.write(slot, w);
    w.float(this.lo[slot]!);
    w.float(this.hi[slot]!);
    w.float(this.swing[slot]!);
    w.float(this.toFullFrom[slot]!);
    w.float(this.rampEndT[slot]!);
  }

  override read(slot: number, r: StateReader): void {
    // State of the linear-fit leak detector before (eight numbers) is not continued: learn again.
    if (r.remaining === 64) return;
    this.firstT[slot] = r.float('MemoryLeakFamily');
    this.leaking[slot] = r.u8('MemoryLeakFamily') === 1 ? 1 : 0;
    this.toFull[slot] = r.float('MemoryLeakFamily');
    this.slope[slot] = r.float('MemoryLeakFamily');
    this.spanOf[slot] = r.float('MemoryLeakFamily');
    this.fine.read(slot, r, 'MemoryLeakFamily');
    this.coarse.read(slot, r, 'MemoryLeakFamily');
    this.lo[slot] = r.float('MemoryLeakFamily');
    this.hi[slot] = r.float('MemoryLeakFamily');
    this.swing[slot] = r.float('MemoryLeakFamily');
    // Older state ends before the forecast's start (it counts down from now) or before the ramp (a series
    // that had begun is past its ramp).
    this.toFullFrom[slot] = r.remaining >= 8 ? r.float('MemoryLeakFamily') : Number.NaN;
    this.rampEndT[slot] = r.remaining >= 8 ? r.float('MemoryLeakFamily') : this.firstT[slot]!;
  }
}

/** A memory growth rate per GPU in the page's unit, MiB/s (a slow leak's too: 0.9 MiB/s, not 3.2 GiB/h). */
function formatRate(bytesPerSecond: number): string {
  return `${formatValue(bytesPerSecond / MiB)} MiB/s`;
}

/**
 * A loss drifting upwards (TrainingLossDiverging): the loss averaged into buckets of `bucket`, Sen's slope
 * over the newest 6 to `window` buckets (trend.ts) with its sign-test lower bound above zero at `z`, and a
 * rise over the window of at least `min_rise` of the loss level. Training loss falls or holds; a sustained
 * rise for minutes is the run diverging slowly, before the NaN. Not during the job's start-up and warm-up.
 */
export class LossTrendFamily extends MemberFamily<DetectorParams<'loss_trend'>> {
  readonly detector = 'loss_trend' as const;
  private readonly ring = new BucketRing(LOSS_BUCKETS);
  private rising = new Uint8Array(0);
  private rise = new Float64Array(0);
  private spanOf = new Float64Array(0);
  private readonly fit = new SenFit();

  protected override grow(n: number): void {
    super.grow(n);
    this.ring.grow(n);
    this.rising = growU8(this.rising, n);
    this.rise = growF64(this.rise, n);
    this.spanOf = growF64(this.spanOf, n);
  }

  protected reset(slot: number): void {
    this.ring.reset(slot);
    this.rising[slot] = 0;
    this.rise[slot] = 0;
    this.spanOf[slot] = 0;
  }

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    const series = this.info(slot);
    return this.ctx.identity(
      'loss_trend',
      'TrainingLossDiverging',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(slot: number, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const p = this.params[slot]!;
    const job = this.ctx.info(this.series[slot]!).job;
    const phase = job ? job.phase : PHASE_STEADY;
    if (phase === PHASE_STARTUP || phase === PHASE_WARMUP) {
      if (this.ring.count(slot) > 0) this.ring.reset(slot);
      this.rising[slot] = 0;
      this.member(slot, false, t, 0, NO_ANNOTATIONS);
      return;
    }
    if (this.ring.add(slot, t, v, p.bucket)) {
      let rising = 0;
      const n = this.ring.count(slot);
      for (const k of WINDOWS) {
        if (k > p.window || n < k) break;
        // A loss that falls or holds (most of training) needs no fit.
        const ends = this.ring.endsRise(slot, k);
        if (!(ends >= 0.5 * p.min_rise * Math.abs(this.ring.valueAt(slot, k - 1)))) continue;
        const fit = this.fit;
        if (!this.ring.fit(slot, k, p.z, fit) || !(fit.lower > 0)) continue;
        const start = fit.level - fit.slope * fit.span;
        const rise = (fit.slope * fit.span) / Math.max(Math.abs(start), 1e-12);
        // The rise must also stand out of this run's own noise: `noise` × the bucket-to-bucket spread.
        if (rise >= p.min_rise && fit.slope * fit.span >= p.noise * this.bucketNoise(slot, k, fit)) {
          rising = 1;
          this.rise[slot] = rise;
          this.spanOf[slot] = fit.span;
          break;
        }
      }
      this.rising[slot] = rising;
    }
    const rising = this.rising[slot] === 1;
    const rise = this.rise[slot]!;
    const span = this.spanOf[slot]!;
    this.member(slot, rising, t, rise, (r) => {
      const series = this.info(slot);
      return {
        summary: `${series.name} has been rising for ${formatSeconds(span / 1000)} (+${Math.round(100 * r)}%)`,
        description: `${series.name} ${describeWhere(series.labels)} rose steadily by ${Math.round(100 * r)}% over ${formatSeconds(span / 1000)} (robust slope above zero with confidence): the run is diverging. It is at ${formatValue(v)}.`,
        evidence: 'loss_sen_slope_lower_bound_rise',
      };
    });
  }

  /**
   * The noise of one bucket mean over the newest `k` buckets around the fitted line, robust to outliers: the
   * larger of 1.4826 × median |difference of neighbours| / √2 (sample noise) and 1.4826 × median |residual
   * from the line| (also a slow wander of the loss that no line explains).
   */
  private bucketNoise(slot: number, k: number, fit: SenFit): number {
    const n = Math.min(k, this.ring.count(slot));
    const work = scratchOf(n);
    for (let i = 0; i + 1 < n; i++)
      work[i] = Math.abs(this.ring.valueAt(slot, i) - this.ring.valueAt(slot, i + 1));
    const neighbours = (MAD_TO_SIGMA * medianInPlace(work, n - 1)) / Math.SQRT2;
    const tEnd = this.ring.timeAt(slot, 0);
    for (let i = 0; i < n; i++)
      work[i] = Math.abs(
        this.ring.valueAt(slot, i) - (fit.level - fit.slope * (tEnd - this.ring.timeAt(slot, i))),
      );
    return Math.max(neighbours, MAD_TO_SIGMA * medianInPlace(work, n));
  }

  override save(slot: number): unknown {
    if (this.ring.isEmpty(slot) && this.rising[slot] === 0) return undefined;
    return [this.rising[slot], this.rise[slot], this.spanOf[slot], this.ring.save(slot)];
  }

  override load(slot: number, data: unknown): void {
    if (!Array.isArray(data) || data.length !== 4) return;
    this.rising[slot] = data[0] === 1 ? 1 : 0;
    this.rise[slot] = num(data[1]);
    this.spanOf[slot] = num(data[2]);
    this.ring.load(slot, (data[3] as (number | null)[]).map(num));
  }

  override write(slot: number, w: StateWriter): void {
    w.u8(this.rising[slot]!);
    w.float(this.rise[slot]!);
    w.float(this.spanOf[slot]!);
    this.ring.write(slot, w);
  }

  override read(slot: number, r: StateReader): void {
    this.rising[slot] = r.u8('LossTrendFamily') === 1 ? 1 : 0;
    this.rise[slot] = r.float('LossTrendFamily');
    this.spanOf[slot] = r.float('LossTrendFamily');
    this.ring.read(slot, r, 'LossTrendFamily');
  }
}

const LOSS_BUCKETS = 48;

/** Waste: a GPU of a running job that makes progress, idle (utilization below `below`) for `for`. */
export class WasteFamily extends Family<DetectorParams<'waste'>> {
  readonly detector = 'waste' as const;

  protected reset(): void {}

  protected buildIdentity(slot: number): AlertIdentity {
    const p = this.params[slot]!;
    return this.ctx.identity(
      'waste',
      'GPUIdle',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(this.info(slot)),
    );
  }

  observe(slot: number, t: number, v: number): void {
    const p = this.params[slot]!;
    const job = this.info(slot).job;
    // Idle GPUs of a pausing or frozen job are the stall detector's (a checkpoint, an evaluation, a hang).
    const training = job === undefined || job.phase === PHASE_STEADY || job.phase === PHASE_WARMUP;
    if (job && v < p.below && training && job.progressing(t)) {
      this.raise(slot, t, v, (u) => ({
        summary: `GPU allocated to a running job but idle (${Math.round(100 * u)}% utilization)`,
        description: `${describeWhere(this.info(slot).labels)} has been below ${Math.round(100 * p.below)}% utilization while the job keeps training: the GPU is allocated but wasted.`,
        evidence: 'gpu_idle_while_job_trains',
      }));
    } else {
      this.clear(slot, t);
    }
  }
}

export { MiB };
