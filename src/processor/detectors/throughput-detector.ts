/**
 * Gradual throughput degradation of a job (one-sided CUSUM per rank, a quorum of the job's ranks for the
 * job's alert). Its own file: the per-job groups and the GPU-utilization cross-check make it the largest
 * series family.
 */
import { formatValue } from '../../alerting/contract.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorParams } from './config.js';
import { type AlertIdentity, jobAlertLabels } from './context.js';
import { growF64, growU8, MemberFamily, NO_ANNOTATIONS, num, SiblingColumn } from './family.js';
import { isPausePhase, PHASE_COOLDOWN, PHASE_FROZEN, PHASE_STARTUP, PHASE_WARMUP } from './phase.js';
import type { SeriesInfo } from './types.js';

/** The most one throughput sample moves the CUSUM, in baseline standard deviations (before the allowance). */
const CUSUM_STEP_CAP = 2.5;
/** GPU utilization within this of the baseline's counts as "as busy as before". */
const UTIL_SAME = 0.1;

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
