/**
 * The detectors of a run's training curve (loss, gradients, accuracy): non-finite values (the run diverged),
 * loss spikes, an accuracy plateau, and a loss drifting upwards. Each watches one series at a time and is one
 * member of a job-level alert (one alert per job and metric, whichever rank shows it).
 */
import { formatSeconds, formatValue, type Severity } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorName, DetectorParams } from './config.js';
import { type AlertIdentity, type DetectorContext, describeWhere, jobAlertLabels } from './context.js';
import { growF64, growI32, growU8, MemberFamily, NO_ANNOTATIONS, num } from './family.js';
import { PHASE_STARTUP, PHASE_STEADY, PHASE_WARMUP } from './phase.js';
import { MAD_TO_SIGMA, medianInPlace, medianMad, scratchOf } from './stats.js';
import { BucketRing, SenFit } from './trend.js';
import type { SeriesInfo } from './types.js';

/** The alert of a training-curve detector: `alertname` once per job and metric, whichever rank's series shows it. */
function jobMetricIdentity(
  ctx: DetectorContext,
  detector: DetectorName,
  alertname: string,
  p: { readonly severity: Severity; readonly for: number; readonly keep_firing_for: number },
  series: SeriesInfo,
): AlertIdentity {
  return ctx.identity(
    detector,
    alertname,
    p.severity,
    p.for,
    p.keep_firing_for,
    jobAlertLabels(series, { metric: series.name }),
  );
}

/** The loss-spike detector re-estimates its residuals' median and MAD every this many residuals. */
const RESCALE_EVERY = 8;

/** NaN or ±Inf in a loss or gradient metric: the run has diverged. One alert per job and metric. */
export class NonFiniteFamily extends MemberFamily<DetectorParams<'nonfinite'>> {
  readonly detector = 'nonfinite' as const;

  protected reset(): void {}

  protected buildIdentity(slot: number): AlertIdentity {
    return jobMetricIdentity(this.ctx, 'nonfinite', 'TrainingNaN', this.params[slot]!, this.info(slot));
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
    return jobMetricIdentity(
      this.ctx,
      'loss_spike',
      'TrainingLossSpike',
      this.params[slot]!,
      this.info(slot),
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
    return jobMetricIdentity(this.ctx, 'plateau', 'AccuracyPlateau', this.params[slot]!, this.info(slot));
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

/** The windows, in buckets, over which the loss-trend detector fits Sen's slope (the newest 6 to 48). */
const WINDOWS = [6, 12, 24, 48] as const;

const LOSS_BUCKETS = 48;

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
    return jobMetricIdentity(
      this.ctx,
      'loss_trend',
      'TrainingLossDiverging',
      this.params[slot]!,
      this.info(slot),
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
