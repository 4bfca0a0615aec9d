/**
 * Configuration of the streaming detectors (the `detectors:` section of trainwatch.yaml): every detector has
 * named defaults that suit the canonical metrics (DESIGN.md), and `overrides` change any parameter for the
 * series or jobs whose labels match (per tenant, per job, per metric).
 *
 * ```yaml
 * detectors:
 *   stall: {min: 2m}
 *   anomaly: {metrics: [host_cpu_utilization_ratio]}
 *   overrides:
 *     - match: {tenant: research, job_id: "llama-.*"}
 *       stall: {min: 10m}
 *       loss_spike: {enabled: false}
 * ```
 */
import { z } from 'zod';
import { durationMs, SEVERITIES } from '../../alerting/contract.js';
import { isValidLabelName, isValidMetricName, type LabelSet } from '../../model/labels.js';

const regex = z.string().refine(
  (s) => {
    try {
      new RegExp(`^(?:${s})$`);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be a valid regular expression' },
);

const severity = z.enum(SEVERITIES);
const ratio = z.number().min(0).max(1);

const common = {
  enabled: z.boolean(),
  severity,
  for: durationMs,
  keep_firing_for: durationMs,
};

/** Each detector's parameters; in the file every field is optional (see {@link DETECTOR_DEFAULTS}). */
export const detectorParamSchemas = {
  /** NaN or ±Inf in a loss or gradient metric (STALE markers excepted). */
  nonfinite: z.object({ ...common, metrics: z.array(regex) }).strict(),
  /** Loss spikes: robust z-score (median/MAD over `window` residuals) of the residual against an EWMA. */
  loss_spike: z
    .object({
      ...common,
      metrics: z.array(regex),
      alpha: z.number().gt(0).max(1),
      window: z.number().int().min(8).max(1024),
      z: z.number().positive(),
      /** The residual must also exceed this fraction of the EWMA level (guards smooth, noiseless curves). */
      min_relative: z.number().min(0),
      min_samples: z.number().int().min(2),
      /** A spike is an incident once it has not recovered for this long, or has made `rising` new highs in a row. */
      persist: durationMs,
      rising: z.number().int().min(1),
    })
    .strict(),
  /** Generic EWMA z-score anomaly on the metrics the user lists (none by default). */
  anomaly: z
    .object({
      ...common,
      metrics: z.array(regex),
      alpha: z.number().gt(0).max(1),
      z: z.number().positive(),
      min_samples: z.number().int().min(2),
      /** Relative floor of the standard deviation, so a constant series does not alert on its first wiggle. */
      min_std_ratio: z.number().min(0),
    })
    .strict(),
  /** Step not advancing for max(factor × median step time, min) while the job's processes still report. */
  stall: z
    .object({
      ...common,
      metric: z.string(),
      factor: z.number().positive(),
      min: durationMs,
      /**
       * The job's phase as its training framework reports it (SDK): `metric{phase="checkpoint"} 1` while in
       * that phase, or the phase's code as the value (phase.ts). Optional: phases are also read from the signals.
       */
      phase_metric: z.string(),
      /** After first step progress the job warms up for this long (no leak, trend or throughput verdicts). */
      warmup: durationMs,
      /**
       * How long every rank may stand still with its GPUs idle (a checkpoint save or an evaluation) before the
       * job counts as stalled, until the job has shown its own pauses; then `pause_factor` × its longest one.
       */
      pause_max: durationMs,
      pause_factor: z.number().min(1),
      /**
       * Utilization at or above which a GPU of a frozen job spins (a hang: the collective never completes),
       * below which it idles (a checkpoint save); between the two it is partly busy (an evaluation).
       */
      spin_above: ratio,
      idle_below: ratio,
    })
    .strict(),
  /** A running job, or one node of it, whose series stopped arriving. */
  absence: z
    .object({
      ...common,
      job_absent_for: durationMs,
      node_absent_for: durationMs,
      /** Jobs silent for longer than this are no longer alerted on (they are gone, not absent). */
      forget_after: durationMs,
    })
    .strict(),
  /** Throughput degradation: one-sided CUSUM against a baseline learned after `skip`, over `warmup`. */
  throughput: z
    .object({
      ...common,
      metrics: z.array(regex),
      skip: durationMs,
      warmup: durationMs,
      /** CUSUM allowance and decision interval, in baseline standard deviations. */
      k: z.number().min(0),
      h: z.number().positive(),
      /** The smoothed level must also be at least this fraction below the baseline. */
      min_drop: ratio,
      alpha: z.number().gt(0).max(1),
      /** Floor of the baseline's standard deviation, as a fraction of its mean. */
      min_std_ratio: z.number().min(0),
      /** A series with a fresh sibling of this metric (same labels) leaves the verdict to it ('' none). */
      prefer: z.string(),
    })
    .strict(),
  /** Accuracy plateau: the smoothed best value has not improved by `min_delta` for `patience`. */
  plateau: z
    .object({
      ...common,
      metrics: z.array(regex),
      patience: durationMs,
      min_delta: z.number().positive(),
      alpha: z.number().gt(0).max(1),
      min_samples: z.number().int().min(1),
    })
    .strict(),
  /** Stragglers: a rank whose smoothed value deviates from the job's other ranks (robust z, median/MAD). */
  straggler: z
    .object({
      ...common,
      metrics: z.array(regex),
      alpha: z.number().gt(0).max(1),
      z: z.number().positive(),
      min_relative: z.number().min(0),
      min_ranks: z.number().int().min(3),
      /** Values below this are left to the waste detector (an idle GPU is not a straggler). */
      exclude_below: z.number(),
      /** Only ranks that reported within this much of the job's newest sample take part. */
      fresh: durationMs,
      every: durationMs,
      /**
       * Intermittent stragglers: a rank off its peers in at least this fraction of the comparisons over about
       * `duty_horizon` (slow in bursts) is one too.
       */
      duty: ratio,
      duty_horizon: durationMs,
      /** Clocks and power are compared only between GPUs at least half busy by this metric. */
      load_metric: z.string(),
    })
    .strict(),
  /** ECC errors: any increase of the error counter. */
  ecc: z.object({ ...common, metric: z.string() }).strict(),
  /** Thermal or power throttling reported by the GPU. */
  throttle: z.object({ ...common, metric: z.string() }).strict(),
  /**
   * GPU memory growth: Sen's slope with a confidence bound over windows of time buckets, and the forecast
   * time until the GPU's memory (`total_metric`) is full at the slope's lower bound.
   */
  memory_leak: z
    .object({
      ...common,
      metric: z.string(),
      total_metric: z.string(),
      /** Bucket widths of the recent (minutes) and the long (hours) windows. */
      bucket: durationMs,
      coarse_bucket: durationMs,
      /** Forecasts of out-of-memory later than this are not alerted on. */
      horizon: durationMs,
      /** Nor those further ahead than this many times the span of the window that makes them. */
      max_extrapolation: z.number().positive(),
      /** Growth over the window, as a fraction of the total, below which nothing is said. */
      min_growth: ratio,
      /** Nor below this fraction of the memory that was free when the window began. */
      min_headroom_share: ratio,
      /** A series of a job without step series is this old before its growth counts (the start-up ramp). */
      startup: durationMs,
    })
    .strict(),
  /** Loss drifting upwards: Sen's slope with a sign-test confidence bound over buckets of the loss. */
  loss_trend: z
    .object({
      ...common,
      metrics: z.array(regex),
      bucket: durationMs,
      /** The longest window, in buckets (windows of 6, 12, 24, 48 buckets up to it are tried). */
      window: z.number().int().min(6).max(48),
      /** Normal quantile of the slope's lower confidence bound (1.645: 95%, 2.33: 99%). */
      z: z.number().min(0),
      /** The rise over the window, as a fraction of the loss level, below which nothing is said. */
      min_rise: z.number().min(0),
      /** Nor below this many times the noise of one bucket's mean (learned from the run itself). */
      noise: z.number().min(0),
    })
    .strict(),
  /** Waste: a GPU of a running (not stalled) job idle for `for`. */
  waste: z.object({ ...common, metric: z.string(), below: z.number() }).strict(),
} as const;

export type DetectorName = keyof typeof detectorParamSchemas;
export const DETECTOR_NAMES = Object.keys(detectorParamSchemas) as DetectorName[];
export type DetectorParams<N extends DetectorName> = z.output<(typeof detectorParamSchemas)[N]>;

const m = 60_000;
const s = 1000;

export const DETECTOR_DEFAULTS: { readonly [N in DetectorName]: DetectorParams<N> } = {
  nonfinite: {
    enabled: true,
    severity: 'critical',
    for: 0,
    keep_firing_for: 0,
    metrics: ['.*loss.*', '.*grad.*'],
  },
  loss_spike: {
    enabled: true,
    severity: 'warning',
    for: 5 * s,
    keep_firing_for: 0,
    metrics: ['.*loss.*'],
    alpha: 0.1,
    window: 64,
    z: 6,
    min_relative: 0.1,
    min_samples: 30,
    persist: m,
    rising: 3,
  },
  anomaly: {
    enabled: true,
    severity: 'warning',
    for: m,
    keep_firing_for: 0,
    metrics: [],
    alpha: 0.05,
    z: 4,
    min_samples: 30,
    min_std_ratio: 0.001,
  },
  stall: {
    enabled: true,
    severity: 'critical',
    for: 0,
    keep_firing_for: 0,
    metric: 'train_step',
    factor: 10,
    min: m,
    phase_metric: 'train_phase',
    warmup: 2 * m,
    pause_max: 3 * m,
    pause_factor: 2,
    spin_above: 0.9,
    idle_below: 0.2,
  },
  absence: {
    enabled: true,
    severity: 'warning',
    for: 0,
    keep_firing_for: 0,
    job_absent_for: 2 * m,
    node_absent_for: 2 * m,
    forget_after: 60 * m,
  },
  throughput: {
    enabled: true,
    severity: 'warning',
    for: 0,
    keep_firing_for: 0,
    metrics: ['train_samples_per_second', 'train_tokens_per_second'],
    skip: 30 * s,
    warmup: 2 * m,
    k: 0.5,
    h: 20,
    min_drop: 0.05,
    alpha: 0.05,
    min_std_ratio: 0.005,
    prefer: 'train_tokens_per_second',
  },
  plateau: {
    enabled: true,
    severity: 'info',
    for: 0,
    keep_firing_for: 0,
    metrics: ['eval_accuracy', 'train_accuracy'],
    patience: 30 * m,
    min_delta: 0.001,
    alpha: 0.3,
    min_samples: 5,
  },
  straggler: {
    enabled: true,
    severity: 'warning',
    for: m,
    keep_firing_for: 0,
    // SM clock (compared at similar load) finds a power-capped or slowed GPU whatever its throttle flag says;
    // power would too, at the cost of one more series per GPU on the sample path.
    metrics: ['train_step_duration_seconds', 'gpu_utilization_ratio', 'gpu_sm_clock_hertz'],
    alpha: 0.2,
    z: 3.5,
    min_relative: 0.1,
    min_ranks: 3,
    exclude_below: 0.1,
    fresh: 30 * s,
    every: 5 * s,
    duty: 0.25,
    duty_horizon: 10 * m,
    load_metric: 'gpu_utilization_ratio',
  },
  ecc: {
    enabled: true,
    severity: 'warning',
    for: 0,
    keep_firing_for: 10 * m,
    metric: 'gpu_ecc_errors_total',
  },
  throttle: {
    enabled: true,
    severity: 'warning',
    for: 30 * s,
    keep_firing_for: 0,
    metric: 'gpu_throttled',
  },
  memory_leak: {
    enabled: true,
    severity: 'warning',
    for: 30 * s,
    keep_firing_for: 0,
    metric: 'gpu_memory_used_bytes',
    total_metric: 'gpu_memory_total_bytes',
    bucket: 10 * s,
    coarse_bucket: 2 * m,
    horizon: 24 * 60 * m,
    max_extrapolation: 10,
    min_growth: 0.01,
    min_headroom_share: 0.2,
    startup: 2 * m,
  },
  loss_trend: {
    enabled: true,
    severity: 'warning',
    for: 0,
    keep_firing_for: 0,
    metrics: ['(?!.*(?:eval|valid|val_|test)).*loss.*'],
    bucket: 10 * s,
    window: 24,
    z: 2.33,
    min_rise: 0.1,
    noise: 6,
  },
  waste: {
    enabled: true,
    severity: 'warning',
    for: 3 * m,
    keep_firing_for: 0,
    metric: 'gpu_utilization_ratio',
    below: 0.1,
  },
};

/** A static threshold: `metric op value`, or `metric / ratio_to op value` with the sibling series. */
const thresholdFields = {
  alert: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a valid alert name'),
  metric: z.string().refine(isValidMetricName, 'must be a valid metric name'),
  /** Divide by the newest sample of this metric with the same labels (e.g. memory used / total). */
  ratio_to: z.string().refine(isValidMetricName, 'must be a valid metric name').optional(),
  op: z.enum(['>', '>=', '<', '<=']),
  value: z.number(),
  for: durationMs.default(0),
  keep_firing_for: durationMs.default(0),
  severity: severity.default('warning'),
  enabled: z.boolean().default(true),
  summary: z.string().optional(),
};
export const thresholdSchema = z.object(thresholdFields).strict();
export type ThresholdRule = z.output<typeof thresholdSchema>;
const thresholdPatchSchema = z
  .object({
    value: z.number(),
    op: thresholdFields.op,
    for: durationMs,
    keep_firing_for: durationMs,
    severity,
    enabled: z.boolean(),
  })
  .partial()
  .strict();

export const DEFAULT_THRESHOLDS: readonly ThresholdRule[] = [
  {
    alert: 'GPUTemperatureHigh',
    metric: 'gpu_temperature_celsius',
    op: '>',
    value: 85,
    for: m,
    keep_firing_for: 0,
    severity: 'warning',
    enabled: true,
    summary: 'GPU temperature above 85 °C',
  },
  {
    alert: 'GPUMemoryNearFull',
    metric: 'gpu_memory_used_bytes',
    ratio_to: 'gpu_memory_total_bytes',
    op: '>=',
    value: 0.95,
    for: 30 * s,
    keep_firing_for: 0,
    severity: 'warning',
    enabled: true,
    summary: 'GPU memory at least 95% full',
  },
];

const patchShape = Object.fromEntries(
  DETECTOR_NAMES.map((n) => [n, detectorParamSchemas[n].partial().optional()]),
) as { [N in DetectorName]: z.ZodOptional<ReturnType<(typeof detectorParamSchemas)[N]['partial']>> };

const labelRegexMap = z.record(z.string().refine(isValidLabelName, 'must be a label name'), regex);

export const overrideSchema = z
  .object({
    /** Label name → anchored regular expression; every one must match (tenant, job_id, __name__, node_id...). */
    match: labelRegexMap,
    ...patchShape,
    /** Changes to static thresholds, by alert name. */
    thresholds: z.record(z.string(), thresholdPatchSchema).optional(),
  })
  .strict();

export const detectorsConfigSchema = z
  .object({
    /** Turns every detector off at once. */
    enabled: z.boolean().default(true),
    ...patchShape,
    /** Static thresholds; replaces the defaults (GPUTemperatureHigh, GPUMemoryNearFull) when given. */
    thresholds: z.array(thresholdSchema).optional(),
    overrides: z.array(overrideSchema).default([]),
  })
  .strict();

export type DetectorsConfig = z.output<typeof detectorsConfigSchema>;
type Override = z.output<typeof overrideSchema>;

interface CompiledOverride {
  readonly match: readonly [string, RegExp][];
  readonly patch: Override;
}

/**
 * Resolves the effective parameters of a detector for one series or job: defaults ← `detectors.<name>` ←
 * each matching override in order. Called when a series or job is first seen, never per sample.
 */
export class DetectorSettings {
  readonly enabled: boolean;
  private readonly overrides: readonly CompiledOverride[];
  readonly thresholds: readonly ThresholdRule[];

  constructor(readonly config: DetectorsConfig) {
    this.enabled = config.enabled;
    this.overrides = config.overrides.map((o) => ({
      match: Object.entries(o.match).map(([k, v]) => [k, new RegExp(`^(?:${v})$`, 's')] as [string, RegExp]),
      patch: o,
    }));
    this.thresholds = config.thresholds ?? DEFAULT_THRESHOLDS;
  }

  /** Whether any override is configured (without, parameters depend on the metric name alone). */
  get hasOverrides(): boolean {
    return this.overrides.length > 0;
  }

  static defaults(): DetectorSettings {
    return new DetectorSettings(detectorsConfigSchema.parse({}));
  }

  /** The indexes of the overrides matching `labels`, as a cache key ('' when none matches). */
  private matching(labels: LabelSet): string {
    let key = '';
    for (let i = 0; i < this.overrides.length; i++) {
      const o = this.overrides[i]!;
      if (o.match.every(([k, re]) => re.test(labels[k] ?? ''))) key += `${i},`;
    }
    return key;
  }

  /**
   * Effective parameters are shared objects, one per detector and set of matching overrides: detectors keep
   * them per series, so a fleet of series with the same settings holds one copy (never mutate them).
   */
  private readonly paramsCache = new Map<string, unknown>();

  params<N extends DetectorName>(name: N, labels: LabelSet): DetectorParams<N> {
    const matched = this.matching(labels);
    const cacheKey = `${name}\u0000${matched}`;
    const cached = this.paramsCache.get(cacheKey);
    if (cached !== undefined) return cached as DetectorParams<N>;
    let p = { ...DETECTOR_DEFAULTS[name], ...stripUndefined(this.config[name]) } as DetectorParams<N>;
    for (const i of matched.split(',')) {
      if (i === '') continue;
      const patch = this.overrides[Number(i)]!.patch[name];
      if (patch) p = { ...p, ...stripUndefined(patch) } as DetectorParams<N>;
    }
    if (!this.enabled) p = { ...p, enabled: false };
    this.paramsCache.set(cacheKey, p);
    return p;
  }

  threshold(rule: ThresholdRule, labels: LabelSet): ThresholdRule {
    const matched = this.matching(labels);
    const cacheKey = `threshold\u0000${this.thresholds.indexOf(rule)}\u0000${rule.alert}\u0000${matched}`;
    const cached = this.paramsCache.get(cacheKey);
    if (cached !== undefined) return cached as ThresholdRule;
    let r = rule;
    for (const i of matched.split(',')) {
      if (i === '') continue;
      const patch = this.overrides[Number(i)]!.patch.thresholds?.[rule.alert];
      if (patch) r = { ...r, ...stripUndefined(patch) };
    }
    if (!this.enabled) r = { ...r, enabled: false };
    this.paramsCache.set(cacheKey, r);
    return r;
  }

  /**
   * Every metric-name pattern any detector might apply to, under any override: the processor's cheap
   * pre-filter that skips series no detector looks at without building their keys.
   */
  metricPatterns(): RegExp[] {
    const out: string[] = [];
    const collect = (p: Partial<Record<string, unknown>> | undefined) => {
      if (!p) return;
      if (Array.isArray(p.metrics)) out.push(...(p.metrics as string[]));
      for (const k of ['metric', 'total_metric', 'phase_metric'] as const)
        if (typeof p[k] === 'string') out.push(escapeRegex(p[k]));
    };
    for (const n of DETECTOR_NAMES) {
      collect(DETECTOR_DEFAULTS[n] as Record<string, unknown>);
      collect(this.config[n] as Record<string, unknown> | undefined);
      for (const o of this.overrides) collect(o.patch[n] as Record<string, unknown> | undefined);
    }
    for (const t of this.thresholds) {
      out.push(escapeRegex(t.metric));
      if (t.ratio_to) out.push(escapeRegex(t.ratio_to));
    }
    return [...new Set(out)].map((p) => new RegExp(`^(?:${p})$`));
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {};
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

const compiled = new Map<string, RegExp>();

/** Whether `name` matches one of the anchored patterns of a detector's `metrics` (compiled once each). */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    let re = compiled.get(p);
    if (!re) {
      re = new RegExp(`^(?:${p})$`);
      compiled.set(p, re);
    }
    if (re.test(name)) return true;
  }
  return false;
}
