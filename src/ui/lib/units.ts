/**
 * Units of metrics and of PromQL results, for axes and values: from the metric's metadata (`unit` of
 * /api/v1/metadata, Prometheus's words or OpenTelemetry's UCUM codes) when it names one, else from the
 * name's suffix by Prometheus's naming conventions (`_bytes`, `_seconds`, `_ratio`, `_celsius`, `_watts`,
 * `_hertz`, and `_total` for counters of those). DOM-free, so unit tests run it in Node.
 */

import { type SuffixUnit, unitOfSuffix } from '../../model/metric-units.js';
import { NON_METRIC_WORDS } from '../../model/promql-words.js';

export type BaseUnit = SuffixUnit | 'count';

export interface Unit {
  readonly base: BaseUnit;
  /** A rate: the base unit per second (rate() of a counter). */
  readonly perSecond: boolean;
  /** Where the unit came from, for the chart's caption. */
  readonly source: 'metadata' | 'name';
}

/** Prometheus's metadata answer: `{<metric>: [{type, help, unit}]}`. */
export type MetricMetadata = Readonly<
  Record<string, readonly { readonly type?: string; readonly help?: string; readonly unit?: string }[]>
>;

/** Metadata unit words (Prometheus's and OpenTelemetry's UCUM codes) → a base unit. */
const METADATA_UNITS: Readonly<Record<string, BaseUnit>> = {
  bytes: 'bytes',
  byte: 'bytes',
  by: 'bytes',
  seconds: 'seconds',
  second: 'seconds',
  s: 'seconds',
  ratio: 'ratio',
  celsius: 'celsius',
  cel: 'celsius',
  watts: 'watts',
  watt: 'watts',
  w: 'watts',
  hertz: 'hertz',
  hz: 'hertz',
};

/** The unit a metric's name says by its suffix, or null. */
export function unitFromName(name: string): BaseUnit | null {
  const stem = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
  return unitOfSuffix(stem) ?? (name.endsWith('_total') ? 'count' : null);
}

/** The unit metadata gives, or null when it has none (missing, empty, `unknown`, or a word not known here). */
export function unitFromMetadata(meta: MetricMetadata | null | undefined, name: string): BaseUnit | null {
  for (const m of meta?.[name] ?? []) {
    const u = (m.unit ?? '').trim().toLowerCase();
    if (u === '' || u === 'unknown') continue;
    const base = METADATA_UNITS[u];
    if (base) return base;
  }
  return null;
}

/** A metric's unit: metadata first, then the name; null if neither says. */
export function unitOfMetric(name: string, meta?: MetricMetadata | null): Unit | null {
  const fromMeta = unitFromMetadata(meta, name);
  if (fromMeta) return { base: fromMeta, perSecond: false, source: 'metadata' };
  const fromName = unitFromName(name);
  return fromName ? { base: fromName, perSecond: false, source: 'name' } : null;
}

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;

/** Metric names a query selects: identifiers outside `{…}` and strings, not followed by `(`, not keywords. */
export function metricsOfQuery(query: string): string[] {
  // Label matchers and strings hold label names and values, not metrics.
  const bare = query
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1()');
  const out = new Set<string>();
  for (const m of bare.matchAll(IDENT)) {
    const word = m[0];
    const after = bare.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith('(') || NON_METRIC_WORDS.has(word.toLowerCase())) continue;
    out.add(word);
  }
  return [...out];
}

/**
 * The unit of a query's result: that of every metric it selects when they agree (else null: mixed or
 * unknown), per second under rate()/irate()/deriv(), and none for count() and friends.
 */
export function unitOfQuery(query: string, meta?: MetricMetadata | null): Unit | null {
  const names = metricsOfQuery(query);
  if (names.length === 0) return null;
  const units = names.map((n) => unitOfMetric(n, meta));
  const first = units[0];
  if (!first || units.some((u) => !u || u.base !== first.base)) return null;
  if (/^\s*(count|count_values|group)\s*(by|without|\()/.test(query)) return null;
  const perSecond = /\b(rate|irate|deriv)\s*\(/.test(query);
  if (perSecond && first.base === 'ratio') return null;
  return {
    base: first.base,
    perSecond,
    source: units.some((u) => u!.source === 'metadata') ? 'metadata' : 'name',
  };
}

function trim(v: number, digits = 3): string {
  return Number(v.toPrecision(digits)).toString();
}

function scaled(v: number, steps: readonly [number, string][], unit: string, digits = 3): string {
  const a = Math.abs(v);
  for (const [size, prefix] of steps) if (a >= size) return `${trim(v / size, digits)} ${prefix}${unit}`;
  return `${trim(v, digits)} ${unit}`;
}

const SI: readonly [number, string][] = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];
const IEC: readonly [number, string][] = [
  [2 ** 50, 'Pi'],
  [2 ** 40, 'Ti'],
  [2 ** 30, 'Gi'],
  [2 ** 20, 'Mi'],
  [2 ** 10, 'Ki'],
];

function formatSeconds(v: number, digits = 3): string {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-3) return `${trim(v * 1e6, digits)} µs`;
  if (a < 1) return `${trim(v * 1e3, digits)} ms`;
  if (a < 120) return `${trim(v, digits)} s`;
  if (a < 7200) return `${trim(v / 60, digits)} min`;
  if (a < 172_800) return `${trim(v / 3600, digits)} h`;
  return `${trim(v / 86_400, digits)} d`;
}

/** A value with its unit: `73.5 GiB`, `45%`, `1.2 ms`, `350 W`, `1.98 GHz`, `1.2 kB/s`-style rates. */
export function formatWithUnit(v: number, unit: Unit | null, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (!unit) return plain(v, digits);
  const rate = unit.perSecond ? '/s' : '';
  switch (unit.base) {
    case 'bytes':
      return scaled(v, IEC, `B${rate}`, digits);
    case 'seconds':
      // Seconds per second is a ratio of time (e.g. CPU seconds): show it plainly.
      return unit.perSecond ? `${plain(v, digits)} s/s` : formatSeconds(v, digits);
    case 'ratio':
      return `${trim(v * 100, digits)}%`;
    case 'celsius':
      return `${trim(v, digits)} °C${rate}`;
    case 'watts':
      return scaled(v, SI, `W${rate}`, digits);
    case 'hertz':
      return scaled(v, SI, `Hz${rate}`, digits);
    case 'count':
      return `${plain(v, digits)}${rate}`;
  }
}

function plain(v: number, digits = 3): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e15)) return v.toExponential(digits - 1);
  for (const [size, prefix] of SI) if (a >= size) return `${trim(v / size, digits)}${prefix}`;
  return trim(v, digits);
}

/**
 * A formatter for the ends of a range that tells them apart: as many significant digits as it takes
 * (3 to 8), so that a colour scale of 71.98–72.03 GiB does not read "72 GiB – 72 GiB".
 */
export function rangeFormatter(lo: number, hi: number, unit: Unit | null): (v: number) => string {
  let digits = 3;
  while (digits < 8 && lo !== hi && formatWithUnit(lo, unit, digits) === formatWithUnit(hi, unit, digits))
    digits++;
  return (v) => formatWithUnit(v, unit, digits);
}

/** The unit's name for a caption: `bytes`, `bytes per second`, `percent`… */
export function unitName(unit: Unit): string {
  const base = unit.base === 'ratio' ? 'percent' : unit.base === 'count' ? 'count' : unit.base;
  return unit.perSecond ? `${base} per second` : base;
}
