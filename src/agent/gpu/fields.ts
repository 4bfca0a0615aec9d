/**
 * The nvidia-smi `--query-gpu` fields the agent reads, and how each value becomes a canonical series
 * (DESIGN.md: base units, ratios 0–1, clocks in hertz, `_total` for counters).
 *
 * Values come from `--format=csv,noheader,nounits`: one line per GPU and reading, fields in the order asked,
 * separated by ", ". A value may be `[N/A]` (not applicable), `[Not Supported]`, `[Unknown Error]`,
 * `[Insufficient Permissions]` or `[GPU is lost]`: such a value gives no sample, never a zero.
 */

export type FieldKind = 'gauge' | 'counter';

export interface GpuField {
  /** The name nvidia-smi knows (`nvidia-smi --help-query-gpu`). */
  readonly query: string;
  /** Older drivers know the field under this name (tried when `query` is refused). */
  readonly fallback?: string;
  readonly metric: string;
  readonly kind: FieldKind;
  /** Extra fixed labels, e.g. {type: 'corrected'}. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Turns the text into the canonical value; undefined = no sample. */
  readonly convert: (text: string) => number | undefined;
}

const MIB = 1024 * 1024;
const MHZ = 1e6;

/** A plain number, or undefined for nvidia-smi's bracketed placeholders and anything else unparsable. */
export function numberOf(text: string): number | undefined {
  if (text === '' || text.charCodeAt(0) === 91 /* [ */) return undefined;
  const v = Number(text);
  return Number.isFinite(v) ? v : undefined;
}

const scaled = (factor: number) => (text: string) => {
  const v = numberOf(text);
  return v === undefined ? undefined : v * factor;
};

/** `P0`..`P15` → 0..15 (P0 is the highest performance state). */
function pstate(text: string): number | undefined {
  const m = /^P(\d{1,2})$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Identity fields, read first on every line; not series of their own. */
export const IDENTITY_FIELDS = ['index', 'uuid', 'name', 'pci.bus_id'] as const;

export const THROTTLE_FIELD: GpuField = {
  query: 'clocks_throttle_reasons.active',
  fallback: 'clocks_event_reasons.active',
  metric: 'gpu_throttled',
  kind: 'gauge',
  convert: (text) => {
    if (!/^0x[0-9a-fA-F]{1,16}$/.test(text)) return undefined;
    // Bit masks fit in 53 bits for every reason NVML defines (the highest is 0x100 today).
    return Number.parseInt(text.slice(2), 16);
  },
};

/**
 * NVML's clock throttle (since driver 535: "clock event") reasons, as bits of
 * `clocks_throttle_reasons.active`; each becomes `gpu_throttled{reason="..."}` 0 or 1.
 */
export const THROTTLE_REASONS: readonly (readonly [number, string])[] = [
  [0x1, 'gpu_idle'],
  [0x2, 'applications_clocks_setting'],
  [0x4, 'sw_power_cap'],
  [0x8, 'hw_slowdown'],
  [0x10, 'sync_boost'],
  [0x20, 'sw_thermal_slowdown'],
  [0x40, 'hw_thermal_slowdown'],
  [0x80, 'hw_power_brake_slowdown'],
  [0x100, 'display_clock_setting'],
];

/** nvidia-smi query fields → canonical metrics (a table: its rows look alike by design). */
export const GPU_FIELDS: readonly GpuField[] = [
  { query: 'utilization.gpu', metric: 'gpu_utilization_ratio', kind: 'gauge', convert: scaled(0.01) },
  {
    query: 'utilization.memory',
    metric: 'gpu_memory_utilization_ratio',
    kind: 'gauge',
    convert: scaled(0.01),
  },
  { query: 'memory.used', metric: 'gpu_memory_used_bytes', kind: 'gauge', convert: scaled(MIB) },
  { query: 'memory.total', metric: 'gpu_memory_total_bytes', kind: 'gauge', convert: scaled(MIB) },
  { query: 'power.draw', metric: 'gpu_power_watts', kind: 'gauge', convert: scaled(1) },
  { query: 'power.limit', metric: 'gpu_power_limit_watts', kind: 'gauge', convert: scaled(1) },
  { query: 'temperature.gpu', metric: 'gpu_temperature_celsius', kind: 'gauge', convert: scaled(1) },
  {
    query: 'temperature.memory',
    metric: 'gpu_memory_temperature_celsius',
    kind: 'gauge',
    convert: scaled(1),
  },
  { query: 'clocks.sm', metric: 'gpu_sm_clock_hertz', kind: 'gauge', convert: scaled(MHZ) },
  { query: 'clocks.mem', metric: 'gpu_memory_clock_hertz', kind: 'gauge', convert: scaled(MHZ) },
  { query: 'clocks.max.sm', metric: 'gpu_sm_clock_max_hertz', kind: 'gauge', convert: scaled(MHZ) },
  { query: 'fan.speed', metric: 'gpu_fan_speed_ratio', kind: 'gauge', convert: scaled(0.01) },
  { query: 'pstate', metric: 'gpu_performance_state', kind: 'gauge', convert: pstate },
  {
    query: 'ecc.errors.corrected.volatile.total',
    metric: 'gpu_ecc_errors_total',
    kind: 'counter',
    labels: { type: 'corrected' },
    convert: scaled(1),
  },
  {
    query: 'ecc.errors.uncorrected.volatile.total',
    metric: 'gpu_ecc_errors_total',
    kind: 'counter',
    labels: { type: 'uncorrected' },
    convert: scaled(1),
  },
  { query: 'pcie.link.gen.current', metric: 'gpu_pcie_link_generation', kind: 'gauge', convert: scaled(1) },
  { query: 'pcie.link.width.current', metric: 'gpu_pcie_link_width', kind: 'gauge', convert: scaled(1) },
  THROTTLE_FIELD,
];

/** The compute-apps query: which process uses which GPU and how much memory (MiB). */
export const COMPUTE_APPS_FIELDS = ['timestamp', 'gpu_uuid', 'pid', 'used_memory'] as const;

/** `Field "x" is not a valid field to query.`: nvidia-smi's answer to a field this driver does not know. */
export function invalidFieldOf(output: string): string | undefined {
  const m = /Field "([^"]+)" is not a valid field to query/.exec(output);
  return m ? m[1] : undefined;
}
