import type { JsonSample } from './api';

/** Compact numbers for tables: 1234567 → 1.23M, 0.000123 → 1.23e-4. */
export function fmtNumber(v: JsonSample | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e15)) return v.toExponential(digits - 1);
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, unit] of units) if (a >= size) return `${(v / size).toPrecision(digits)}${unit}`;
  return Number(v.toPrecision(digits)).toString();
}

export function fmtPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  return `${(ratio * 100).toFixed(0)}%`;
}

export function fmtAge(fromMs: number | null, toMs: number = Date.now()): string {
  if (fromMs === null) return '—';
  const s = Math.max(0, Math.round((toMs - fromMs) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function fmtTime(ms: number | null): string {
  if (ms === null) return '—';
  return new Date(ms).toLocaleString();
}

/** Integers such as steps, with thousands separators. */
export function fmtInt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return Math.round(v).toLocaleString('en-US');
}
