/**
 * The detectors a user points at any metric: threshold rules (`metric op value`, or a ratio to a sibling
 * series) and the generic EWMA anomaly. They know nothing of training; the other series families each watch
 * one kind of training signal (loss-detectors.ts, throughput-detector.ts, memory-leak-detector.ts,
 * gpu-detectors.ts).
 */
import { formatValue } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams, ThresholdRule } from './config.js';
import { type AlertIdentity, describeWhere, seriesAlertLabels } from './context.js';

import { Family, growF64, SiblingColumn } from './family.js';

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
