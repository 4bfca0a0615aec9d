/**
 * GPU memory growing towards out-of-memory: Sen's slope over fine and coarse bucket windows, with a forecast
 * of the time until the memory is full. Its own file: the start-up ramp and the release/swing bookkeeping make
 * it a large family of its own.
 */
import { formatSeconds, formatValue } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, describeWhere, seriesAlertLabels } from './context.js';
import { Family, growF64, growU8, num, SiblingColumn } from './family.js';
import { isPausePhase, PHASE_COOLDOWN, PHASE_STARTUP, PHASE_STEADY, PHASE_WARMUP } from './phase.js';
import { BucketRing, SenFit } from './trend.js';

const MiB = 2 ** 20;

/** Fine windows (buckets of `bucket`) and coarse ones (buckets of `coarse_bucket`) the leak detector tries. */
const FINE_BUCKETS = 24;
const COARSE_BUCKETS = 48;

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
