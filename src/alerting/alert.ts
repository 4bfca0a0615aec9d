/**
 * Alert identity and the pieces every alert source shares: the fingerprint (as Prometheus and Alertmanager
 * compute it, so that an alert forwarded to a real Alertmanager keeps the same id), the dashboard link, and
 * the required labels.
 */
import type { LabelSet } from '../model/labels.js';

export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;
const SEPARATOR = 0xff;

/**
 * Prometheus's `model.LabelSet.Fingerprint`: FNV-1a 64 over `name 0xff value 0xff` for the labels sorted by
 * name, printed as 16 hex digits. Runs once per alert, never per sample.
 */
export function fingerprint(labels: LabelSet): string {
  let h = FNV64_OFFSET;
  const add = (s: string) => {
    for (const byte of Buffer.from(s, 'utf8')) {
      h ^= BigInt(byte);
      h = (h * FNV64_PRIME) & MASK64;
    }
    h ^= BigInt(SEPARATOR);
    h = (h * FNV64_PRIME) & MASK64;
  };
  for (const name of Object.keys(labels).sort()) {
    add(name);
    add(labels[name]!);
  }
  return h.toString(16).padStart(16, '0');
}

/** The dashboard link of an alert: the job page centred on the moment it started. */
export function alertUrl(labels: LabelSet, atMs: number): string {
  const jobId = labels.job_id;
  if (!jobId) return `/alerts?t=${Math.round(atMs)}`;
  return `/jobs/${encodeURIComponent(jobId)}?t=${Math.round(atMs)}`;
}

/** Formats a value for a message: 3 significant digits, no exponent for ordinary magnitudes. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

/** `Xm Ys` for messages about durations in seconds. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h${m ? ` ${m}m` : ''}`;
}
