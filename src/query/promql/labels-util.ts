/** Label and number helpers that must behave exactly as Prometheus's Go code does. */
import { type LabelSet, METRIC_NAME_LABEL } from '../../model/labels.js';

/** Labels Prometheus drops together with the metric name (type-and-unit metadata labels). */
const NAME_LIKE_LABELS = [METRIC_NAME_LABEL, '__type__', '__unit__'];

export function withoutMetricName(labels: LabelSet): LabelSet {
  if (!NAME_LIKE_LABELS.some((n) => n in labels)) return labels;
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels)) if (!NAME_LIKE_LABELS.includes(k)) out[k] = labels[k]!;
  return out;
}

/** A stable string identity for a label set (names sorted); used per series, never per sample. */
export function labelKey(labels: LabelSet): string {
  const names = Object.keys(labels).sort();
  let key = '';
  for (const n of names) key += `${n}\u0000${labels[n]}\u0001`;
  return key;
}

/** Prometheus's labels.Compare: label by label in name order, names first, then values; shorter first. */
export function compareLabels(a: LabelSet, b: LabelSet): number {
  const an = Object.keys(a).sort();
  const bn = Object.keys(b).sort();
  const n = Math.min(an.length, bn.length);
  for (let i = 0; i < n; i++) {
    const x = an[i]!;
    const y = bn[i]!;
    if (x !== y) return x < y ? -1 : 1;
    const xv = a[x]!;
    const yv = b[y]!;
    if (xv !== yv) return xv < yv ? -1 : 1;
  }
  return an.length - bn.length;
}

/** Prometheus's Labels.String(): `{a="1", b="2"}` in name order (Go %q quoting). */
export function labelsString(labels: LabelSet): string {
  const names = Object.keys(labels).sort();
  return `{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(', ')}}`;
}

/** Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, never an exponent. */
export function formatGoFloatF(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Object.is(v, -0)) return '-0';
  const s = v.toString();
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const sign = m[1]!;
  const digits = m[2]! + (m[3] ?? '');
  const exp = Number(m[4]);
  if (exp >= 0) {
    const intLen = 1 + exp;
    if (digits.length <= intLen) return sign + digits + '0'.repeat(intLen - digits.length);
    return `${sign}${digits.slice(0, intLen)}.${digits.slice(intLen)}`;
  }
  return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
}

/** Go's strconv.FormatFloat(v, 'g', -1, 64) (what `%g` prints for float64). */
export function formatGoFloatG(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const e = v.toExponential(); // shortest digits: "1.1e+0"
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(e)!;
  const exp = Number(m[4]);
  if (exp < -4 || exp >= 21) {
    const mant = m[3] ? `${m[2]}.${m[3]}` : m[2]!;
    const absExp = Math.abs(exp);
    return `${m[1]}${mant}e${exp < 0 ? '-' : '+'}${absExp < 10 ? `0${absExp}` : absExp}`;
  }
  return formatGoFloatF(v);
}

/**
 * Natural-order string comparison (github.com/facette/natsort as Prometheus uses it for sort_by_label):
 * digit runs compare by numeric value, other runs lexically.
 */
export function natsortLess(a: string, b: string): boolean {
  const chunk = /(\d+|\D+)/g;
  const ca = a.match(chunk) ?? [];
  const cb = b.match(chunk) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (x === y) continue;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const xn = BigInt(x);
      const yn = BigInt(y);
      if (xn !== yn) return xn < yn;
      return x.length < y.length;
    }
    return x < y;
  }
  return ca.length < cb.length;
}

// ---- xxhash64, for limit_ratio's stable per-series sampling (Prometheus hashes labels with xxhash) ----

const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;
const MASK = (1n << 64n) - 1n;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK;
}

function round(acc: bigint, input: bigint): bigint {
  acc = (acc + input * P2) & MASK;
  acc = rotl(acc, 31n);
  return (acc * P1) & MASK;
}

function mergeRound(acc: bigint, val: bigint): bigint {
  val = round(0n, val);
  acc ^= val;
  return (acc * P1 + P4) & MASK;
}

export function xxhash64(data: Uint8Array): bigint {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.length;
  let i = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (P1 + P2) & MASK;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (0n - P1) & MASK;
    while (i + 32 <= len) {
      v1 = round(v1, view.getBigUint64(i, true));
      v2 = round(v2, view.getBigUint64(i + 8, true));
      v3 = round(v3, view.getBigUint64(i + 16, true));
      v4 = round(v4, view.getBigUint64(i + 24, true));
      i += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(len)) & MASK;
  while (i + 8 <= len) {
    const k1 = round(0n, view.getBigUint64(i, true));
    h ^= k1;
    h = (rotl(h, 27n) * P1 + P4) & MASK;
    i += 8;
  }
  if (i + 4 <= len) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    i += 4;
  }
  while (i < len) {
    h ^= (BigInt(data[i]!) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
    i++;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

/** Prometheus's labels.Hash(): xxhash64 over `name 0xff value 0xff` for each label in name order. */
export function labelsHash(labels: LabelSet): bigint {
  const parts: Buffer[] = [];
  const sep = Buffer.from([0xff]);
  for (const n of Object.keys(labels).sort()) {
    parts.push(Buffer.from(n, 'utf8'), sep, Buffer.from(labels[n]!, 'utf8'), sep);
  }
  return xxhash64(new Uint8Array(Buffer.concat(parts)));
}
