/**
 * Detectors that look at one series at a time. Each instance holds O(1) state (or a small fixed ring), sees
 * every new sample of its series once, in time order, and raises or clears its alert through the engine.
 */
import { formatSeconds, formatValue, type Severity } from '../../alerting/alert.js';
import type { DetectorParams, ThresholdRule } from './config.js';
import {
  type AlertIdentity,
  type DetectorContext,
  describeWhere,
  jobAlertLabels,
  seriesAlertLabels,
} from './context.js';
import { Ewm, MAD_TO_SIGMA, medianMad, Ring, scratchOf } from './stats.js';
import type { SeriesDetector, SeriesInfo } from './types.js';

const MiB = 2 ** 20;
/** The loss-spike detector re-estimates its residuals' median and MAD every this many residuals. */
const RESCALE_EVERY = 8;

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

/** `metric op value`, or `metric / ratio_to op value` against the sibling series with the same labels. */
export class ThresholdDetector implements SeriesDetector {
  readonly detector = 'threshold' as const;
  private readonly id: AlertIdentity;
  private total: SeriesInfo | undefined;

  constructor(
    private readonly series: SeriesInfo,
    private readonly rule: ThresholdRule,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'threshold',
      rule.alert,
      rule.severity,
      rule.for,
      rule.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    let x = v;
    if (this.rule.ratio_to) {
      this.total ??= this.ctx.sibling(this.series, this.rule.ratio_to);
      const total = this.total;
      if (!total || !(total.lastV > 0)) return;
      x = v / total.lastV;
    }
    if (compare(x, this.rule.op, this.rule.value)) {
      this.ctx.activate(this.id, t, x, (val) => {
        const what = this.rule.ratio_to ? `${this.series.name} / ${this.rule.ratio_to}` : this.series.name;
        return {
          summary: this.rule.summary ?? `${what} ${this.rule.op} ${this.rule.value}`,
          description: `${what} is ${formatValue(val)} ${describeWhere(this.series.labels)} (threshold ${this.rule.op} ${this.rule.value}).`,
        };
      });
    } else {
      this.ctx.deactivate(this.id, t);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }
}

/** NaN or ±Inf in a loss or gradient metric: the run has diverged. One alert per job and metric. */
export class NonFiniteDetector implements SeriesDetector {
  readonly detector = 'nonfinite' as const;
  private readonly id: AlertIdentity;

  constructor(
    private readonly series: SeriesInfo,
    p: DetectorParams<'nonfinite'>,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'nonfinite',
      'TrainingNaN',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(t: number, v: number): void {
    const bad = !Number.isFinite(v);
    this.ctx.member(this.id, this.series.key, bad, t, 1, () => ({
      summary: `${this.series.name} is ${String(v)}: the run has diverged`,
      description: `${this.series.name} became ${String(v)} ${describeWhere(this.series.labels)}. Training produces no useful result from here; stop or roll back the run.`,
    }));
  }

  dispose(t: number): void {
    this.ctx.member(this.id, this.series.key, false, t, 0, () => ({}));
  }
}

/**
 * Loss spikes: the residual of each sample against an EWMA of the loss, scored by a robust z-score against
 * the last `window` ordinary residuals (median and MAD, so one spike does not widen the band), and required
 * to exceed `min_relative` of the loss level too (a smooth, noiseless curve has a tiny MAD). One-sided: only
 * increases are spikes. Residuals of spikes are kept out of the window.
 */
export class LossSpikeDetector implements SeriesDetector {
  readonly detector = 'loss_spike' as const;
  private readonly id: AlertIdentity;
  private ewma = 0;
  private count = 0;
  private residuals: Ring;
  /** Median and MAD of the residual window, recomputed every {@link RESCALE_EVERY} residuals. */
  private median = 0;
  private mad = 0;
  private sinceRescale = Number.POSITIVE_INFINITY;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'loss_spike'>,
    private readonly ctx: DetectorContext,
  ) {
    this.residuals = new Ring(p.window);
    this.id = ctx.identity(
      'loss_spike',
      'TrainingLossSpike',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    this.count++;
    if (this.count === 1) {
      this.ewma = v;
      return;
    }
    const r = v - this.ewma;
    let spike = false;
    let z = 0;
    if (this.count > this.p.min_samples && this.residuals.size >= 8) {
      if (this.sinceRescale >= RESCALE_EVERY) {
        const mm = medianMad(this.residuals.values, this.residuals.size, scratchOf(this.residuals.size));
        this.median = mm.median;
        this.mad = mm.mad;
        this.sinceRescale = 0;
      }
      const sigma = Math.max(MAD_TO_SIGMA * this.mad, 1e-9 * Math.max(1, Math.abs(this.ewma)));
      z = (r - this.median) / sigma;
      spike = z > this.p.z && r > this.p.min_relative * Math.abs(this.ewma);
    }
    const level = this.ewma;
    this.ctx.member(this.id, this.series.key, spike, t, z, (zv) => ({
      summary: `${this.series.name} spiked: ${formatValue(v)} against a recent level of ${formatValue(level)}`,
      description: `${this.series.name} ${describeWhere(this.series.labels)} jumped to ${formatValue(v)} (+${Math.round((100 * r) / Math.abs(level || 1))}%), a robust z-score of ${formatValue(zv)} against its recent residuals.`,
    }));
    if (!spike) {
      this.residuals.push(r);
      this.sinceRescale++;
    }
    this.ewma += this.p.alpha * (v - this.ewma);
  }

  dispose(t: number): void {
    this.ctx.member(this.id, this.series.key, false, t, 0, () => ({}));
  }

  save(): unknown {
    return [this.ewma, this.count, this.residuals.toArray()];
  }

  load(data: unknown): void {
    if (!Array.isArray(data)) return;
    this.ewma = data[0];
    this.count = data[1];
    this.residuals = Ring.from(this.p.window, data[2]);
  }
}

/**
 * Generic anomaly on a metric the user enabled: EWMA mean and variance, |z| above the threshold. Anomalous
 * samples update the baseline at a tenth of the rate, so a lasting level shift is reported for a while and
 * then becomes the new normal.
 */
export class AnomalyDetector implements SeriesDetector {
  readonly detector = 'anomaly' as const;
  private readonly id: AlertIdentity;
  private readonly ewm: Ewm;
  private readonly slow: Ewm;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'anomaly'>,
    private readonly ctx: DetectorContext,
  ) {
    this.ewm = new Ewm(p.alpha);
    this.slow = new Ewm(p.alpha / 10);
    this.id = ctx.identity('anomaly', 'MetricAnomaly', p.severity, p.for, p.keep_firing_for, {
      ...seriesAlertLabels(series),
      metric: series.name,
    });
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const e = this.ewm;
    let anomalous = false;
    let z = 0;
    if (e.count >= this.p.min_samples) {
      const sd = Math.max(Math.sqrt(e.variance), this.p.min_std_ratio * Math.abs(e.mean), 1e-12);
      z = (v - e.mean) / sd;
      anomalous = Math.abs(z) > this.p.z;
    }
    if (anomalous) {
      const mean = e.mean;
      this.ctx.activate(this.id, t, z, (zv) => ({
        summary: `${this.series.name} is anomalous: ${formatValue(v)} (z = ${formatValue(zv)})`,
        description: `${this.series.name} ${describeWhere(this.series.labels)} is ${formatValue(v)}, ${formatValue(Math.abs(zv))} standard deviations ${zv > 0 ? 'above' : 'below'} its recent mean of ${formatValue(mean)}.`,
      }));
      // Adapt slowly while anomalous: keep the fast estimator but feed it at a tenth of the rate.
      this.slow.mean = e.mean;
      this.slow.variance = e.variance;
      this.slow.count = e.count;
      this.slow.update(v);
      e.mean = this.slow.mean;
      e.variance = this.slow.variance;
    } else {
      this.ctx.deactivate(this.id, t);
      e.update(v);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }

  save(): unknown {
    return this.ewm.save();
  }

  load(data: unknown): void {
    this.ewm.load(data);
  }
}

/**
 * Gradual throughput degradation (change-point detection): after `skip` (start-up) the detector learns a
 * baseline mean and standard deviation over `warmup`, then runs a one-sided lower CUSUM
 * S = max(0, S + (μ0 − x)/σ0 − k). The alert holds while S > h and the smoothed level is at least `min_drop`
 * below the baseline. One alert per job, whichever rank or metric shows it.
 */
export class ThroughputDetector implements SeriesDetector {
  readonly detector = 'throughput' as const;
  private readonly id: AlertIdentity;
  private firstT = Number.NaN;
  private n = 0;
  private sum = 0;
  private sumSq = 0;
  private mu0 = Number.NaN;
  private sigma0 = Number.NaN;
  private cusum = 0;
  private level = Number.NaN;
  /** Hysteresis: once degraded, it stays so until CUSUM and drop are both below half their thresholds. */
  private degraded = false;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'throughput'>,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'throughput',
      'ThroughputDegraded',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    if (Number.isNaN(this.firstT)) this.firstT = t;
    const age = t - this.firstT;
    if (age < this.p.skip) return;
    if (Number.isNaN(this.mu0)) {
      this.n++;
      this.sum += v;
      this.sumSq += v * v;
      if (age < this.p.skip + this.p.warmup || this.n < 10) return;
      const mean = this.sum / this.n;
      if (!(mean > 0)) {
        // No throughput during warm-up (still loading, or idle): learn again later.
        this.firstT = t - this.p.skip;
        this.n = this.sum = this.sumSq = 0;
        return;
      }
      const variance = Math.max(0, this.sumSq / this.n - mean * mean);
      this.mu0 = mean;
      this.sigma0 = Math.max(Math.sqrt(variance), this.p.min_std_ratio * mean);
      this.level = mean;
      return;
    }
    this.level += this.p.alpha * (v - this.level);
    const h = this.p.h;
    this.cusum = Math.min(5 * h, Math.max(0, this.cusum + (this.mu0 - v) / this.sigma0 - this.p.k));
    const drop = 1 - this.level / this.mu0;
    const degraded = this.degraded
      ? this.cusum > h / 2 || drop >= this.p.min_drop / 2
      : this.cusum > h && drop >= this.p.min_drop;
    this.degraded = degraded;
    const mu0 = this.mu0;
    const level = this.level;
    this.ctx.member(this.id, this.series.key, degraded, t, drop, (d) => ({
      summary: `throughput is ${Math.round(100 * d)}% below its baseline`,
      description: `${this.series.name} of job ${this.series.labels.job_id ?? ''} fell to ${formatValue(level)} from a baseline of ${formatValue(mu0)} learned after start-up (${Math.round(100 * d)}% lower; CUSUM change-point detector).`,
    }));
  }

  dispose(t: number): void {
    this.ctx.member(this.id, this.series.key, false, t, 0, () => ({}));
  }

  save(): unknown {
    return [
      this.firstT,
      this.n,
      this.sum,
      this.sumSq,
      this.mu0,
      this.sigma0,
      this.cusum,
      this.level,
      +this.degraded,
    ];
  }

  load(data: unknown): void {
    if (!Array.isArray(data) || data.length !== 9) return;
    const d = data.map((x) => (x === null ? Number.NaN : Number(x)));
    [this.firstT, this.n, this.sum, this.sumSq, this.mu0, this.sigma0, this.cusum, this.level] = d;
    this.degraded = d[8] === 1;
  }
}

/**
 * Accuracy plateau, as early stopping sees it: the smoothed value has not beaten its best by `min_delta`
 * for `patience`.
 */
export class PlateauDetector implements SeriesDetector {
  readonly detector = 'plateau' as const;
  private readonly id: AlertIdentity;
  private ewma = Number.NaN;
  private count = 0;
  private best = Number.NaN;
  private bestT = Number.NaN;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'plateau'>,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'plateau',
      'AccuracyPlateau',
      p.severity,
      p.for,
      p.keep_firing_for,
      jobAlertLabels(series, { metric: series.name }),
    );
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    this.ewma = Number.isNaN(this.ewma) ? v : this.ewma + this.p.alpha * (v - this.ewma);
    this.count++;
    if (this.count < this.p.min_samples) return;
    if (Number.isNaN(this.best) || this.ewma > this.best + this.p.min_delta) {
      this.best = this.ewma;
      this.bestT = t;
    }
    const since = t - this.bestT;
    const best = this.best;
    this.ctx.member(this.id, this.series.key, since >= this.p.patience, t, since / 1000, (s) => ({
      summary: `${this.series.name} has not improved for ${formatSeconds(s)}`,
      description: `${this.series.name} of job ${this.series.labels.job_id ?? ''} has stayed within ${this.p.min_delta} of its best (${formatValue(best)}) for ${formatSeconds(s)}: the run has plateaued.`,
    }));
  }

  dispose(t: number): void {
    this.ctx.member(this.id, this.series.key, false, t, 0, () => ({}));
  }

  save(): unknown {
    return [this.ewma, this.count, this.best, this.bestT];
  }

  load(data: unknown): void {
    if (!Array.isArray(data) || data.length !== 4) return;
    [this.ewma, this.count, this.best, this.bestT] = data.map((x) =>
      x === null ? Number.NaN : Number(x),
    ) as [number, number, number, number];
  }
}

/** ECC errors: any increase of the counter (a reset counts what the counter shows after it). */
export class EccDetector implements SeriesDetector {
  readonly detector = 'ecc' as const;
  private readonly id: AlertIdentity;
  private prev = Number.NaN;

  constructor(
    private readonly series: SeriesInfo,
    p: DetectorParams<'ecc'>,
    private readonly ctx: DetectorContext,
  ) {
    const uncorrectable = /uncorrect|dbe|double/i.test(
      `${series.labels.type ?? ''} ${series.labels.error_type ?? ''}`,
    );
    const severity: Severity = uncorrectable ? 'critical' : p.severity;
    this.id = ctx.identity(
      'ecc',
      'GPUECCErrors',
      severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    const prev = this.prev;
    this.prev = v;
    if (Number.isNaN(prev) || !Number.isFinite(v)) return;
    const delta = v >= prev ? v - prev : v;
    if (delta > 0) {
      this.ctx.activate(this.id, t, delta, (d) => ({
        summary: `GPU ECC errors: +${formatValue(d)}`,
        description: `${this.series.name} ${describeWhere(this.series.labels)} increased by ${formatValue(d)} to ${formatValue(v)}. Repeated errors mean the GPU should be drained and checked.`,
      }));
    } else {
      this.ctx.deactivate(this.id, t);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }

  save(): unknown {
    return this.prev;
  }

  load(data: unknown): void {
    if (typeof data === 'number') this.prev = data;
  }
}

/** Thermal or power throttling reported by the GPU (a non-zero `gpu_throttled`). */
export class ThrottleDetector implements SeriesDetector {
  readonly detector = 'throttle' as const;
  private readonly id: AlertIdentity;

  constructor(
    private readonly series: SeriesInfo,
    p: DetectorParams<'throttle'>,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'throttle',
      'GPUThrottled',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    if (v > 0) {
      this.ctx.activate(this.id, t, v, () => ({
        summary: `GPU throttled${this.series.labels.reason ? ` (${this.series.labels.reason})` : ''}`,
        description: `${describeWhere(this.series.labels)} is being throttled${this.series.labels.reason ? ` (${this.series.labels.reason})` : ''}: its clocks are reduced and the whole job waits for it.`,
      }));
    } else {
      this.ctx.deactivate(this.id, t);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }
}

/**
 * GPU memory growing towards out-of-memory: an exponentially weighted least-squares line through the memory
 * samples (half-life `half_life`), and from its slope the time until the GPU's total memory (the sibling
 * series) is reached. Alerts when that is within `horizon`, the fit is good (R² ≥ `min_r2`) and the growth is
 * material (slope × half-life ≥ `min_growth` of the total).
 */
export class MemoryLeakDetector implements SeriesDetector {
  readonly detector = 'memory_leak' as const;
  private readonly id: AlertIdentity;
  private readonly lambda: number;
  private totalSeries: SeriesInfo | undefined;
  private w = 0;
  private mt = 0;
  private my = 0;
  private ctt = 0;
  private cty = 0;
  private cyy = 0;
  private lastT = Number.NaN;
  private firstT = Number.NaN;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'memory_leak'>,
    private readonly ctx: DetectorContext,
  ) {
    this.lambda = Math.LN2 / Math.max(1, p.half_life);
    this.id = ctx.identity(
      'memory_leak',
      'GPUMemoryLeak',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    if (Number.isNaN(this.firstT)) this.firstT = t;
    const decay = Number.isNaN(this.lastT) ? 0 : Math.exp(-this.lambda * (t - this.lastT));
    this.lastT = t;
    // Weighted Welford update with exponentially decayed weights.
    const w = decay * this.w + 1;
    const dt = t - this.mt;
    const dy = v - this.my;
    const mt = this.mt + dt / w;
    const my = this.my + dy / w;
    this.ctt = decay * this.ctt + dt * (t - mt);
    this.cty = decay * this.cty + dt * (v - my);
    this.cyy = decay * this.cyy + dy * (v - my);
    this.w = w;
    this.mt = mt;
    this.my = my;

    this.totalSeries ??= this.ctx.sibling(this.series, this.p.total_metric);
    const total = this.totalSeries?.lastV;
    let leaking = false;
    let secondsToFull = Number.POSITIVE_INFINITY;
    let slopePerSecond = 0;
    if (total !== undefined && total > 0 && t - this.firstT >= this.p.min_span && this.ctt > 0) {
      const slope = this.cty / this.ctt; // bytes per ms
      slopePerSecond = slope * 1000;
      const r2 = this.cyy > 0 ? (this.cty * this.cty) / (this.ctt * this.cyy) : 0;
      const fitted = this.my + slope * (t - this.mt);
      if (slope > 0) {
        secondsToFull = Math.max(0, (total - fitted) / slope / 1000);
        leaking =
          r2 >= this.p.min_r2 &&
          slope * this.p.half_life >= this.p.min_growth * total &&
          secondsToFull * 1000 <= this.p.horizon;
      }
    }
    if (leaking) {
      this.ctx.activate(this.id, t, secondsToFull, (s) => ({
        summary: `GPU memory grows ${formatValue(slopePerSecond / MiB)} MiB/s: out of memory in about ${formatSeconds(s)}`,
        description: `${this.series.name} ${describeWhere(this.series.labels)} grows steadily by ${formatValue(slopePerSecond / MiB)} MiB/s and is at ${formatValue(v / 2 ** 30)} GiB of ${formatValue(total! / 2 ** 30)} GiB: at this rate it runs out of memory in about ${formatSeconds(s)}.`,
      }));
    } else {
      this.ctx.deactivate(this.id, t);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }

  save(): unknown {
    return [this.w, this.mt, this.my, this.ctt, this.cty, this.cyy, this.lastT, this.firstT];
  }

  load(data: unknown): void {
    if (!Array.isArray(data) || data.length !== 8) return;
    [this.w, this.mt, this.my, this.ctt, this.cty, this.cyy, this.lastT, this.firstT] = data.map((x) =>
      x === null ? Number.NaN : Number(x),
    ) as [number, number, number, number, number, number, number, number];
  }
}

/** Waste: a GPU of a running job that makes progress, idle (utilization below `below`) for `for`. */
export class WasteDetector implements SeriesDetector {
  readonly detector = 'waste' as const;
  private readonly id: AlertIdentity;

  constructor(
    private readonly series: SeriesInfo,
    private readonly p: DetectorParams<'waste'>,
    private readonly ctx: DetectorContext,
  ) {
    this.id = ctx.identity(
      'waste',
      'GPUIdle',
      p.severity,
      p.for,
      p.keep_firing_for,
      seriesAlertLabels(series),
    );
  }

  observe(t: number, v: number): void {
    const job = this.series.job;
    if (job && v < this.p.below && job.progressing(t)) {
      this.ctx.activate(this.id, t, v, (u) => ({
        summary: `GPU allocated to a running job but idle (${Math.round(100 * u)}% utilization)`,
        description: `${describeWhere(this.series.labels)} has been below ${Math.round(100 * this.p.below)}% utilization while the job keeps training: the GPU is allocated but wasted.`,
      }));
    } else {
      this.ctx.deactivate(this.id, t);
    }
  }

  dispose(t: number): void {
    this.ctx.end(this.id, t);
  }
}

export { MiB };
