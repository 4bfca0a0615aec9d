/**
 * Alert identity and the pieces every alert source shares: the fingerprint (as Prometheus and Alertmanager
 * compute it, so that an alert forwarded to a real Alertmanager keeps the same id), the dashboard link, and
 * the required labels.
 */
import type { LabelSet } from '../model/labels.js';

export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

const TWO32 = 4294967296;

/** FNV-1a 64 state as two unsigned 32-bit halves (no BigInt: alerts are identified at series creation). */
let fnvHi = 0;
let fnvLo = 0;

function fnvByte(byte: number): void {
  const lo = (fnvLo ^ byte) >>> 0;
  // (hi·2^32 + lo) × (0x100·2^32 + 0x1b3) mod 2^64; every partial product is exact in a double (< 2^53).
  const loProduct = lo * 0x1b3;
  const newLo = loProduct >>> 0;
  const carry = (loProduct - newLo) / TWO32;
  fnvHi = (fnvHi * 0x1b3 + lo * 0x100 + carry) >>> 0;
  fnvLo = newLo;
}

/** Feeds the UTF-8 bytes of `s`, then the 0xff separator. */
function fnvString(s: string): void {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      fnvByte(c);
      continue;
    }
    if (c < 0x800) {
      fnvByte(0xc0 | (c >> 6));
      fnvByte(0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        fnvByte(0xf0 | (c >> 18));
        fnvByte(0x80 | ((c >> 12) & 0x3f));
        fnvByte(0x80 | ((c >> 6) & 0x3f));
        fnvByte(0x80 | (c & 0x3f));
        continue;
      }
    }
    // A lone surrogate is encoded as U+FFFD, as Buffer.from(s, 'utf8') and TextEncoder do.
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    fnvByte(0xe0 | (c >> 12));
    fnvByte(0x80 | ((c >> 6) & 0x3f));
    fnvByte(0x80 | (c & 0x3f));
  }
  fnvByte(0xff);
}

/**
 * Prometheus's `model.LabelSet.Fingerprint`: FNV-1a 64 over `name 0xff value 0xff` for the labels sorted by
 * name, printed as 16 hex digits. Runs once per alert identity (when a detector or rule first raises it).
 */
export function fingerprint(labels: LabelSet): string {
  fnvHi = 0xcbf29ce4;
  fnvLo = 0x84222325;
  for (const name of Object.keys(labels).sort()) {
    fnvString(name);
    fnvString(labels[name]!);
  }
  return fnvHi.toString(16).padStart(8, '0') + fnvLo.toString(16).padStart(8, '0');
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
