/**
 * The detectors of a GPU's health as its own counters report it: ECC errors, thermal or power throttling, and
 * waste (a GPU of a running job left idle). Each is a few lines per sample; kept together because they read
 * the hardware metrics the agent's GPU collector writes.
 */
import { formatValue, type Severity } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, describeWhere, seriesAlertLabels } from './context.js';
import { Family, growF64 } from './family.js';
import { PHASE_STEADY, PHASE_WARMUP } from './phase.js';

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
