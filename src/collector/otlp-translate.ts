/**
 * OTLP metrics → Prometheus series, with the name translation of Prometheus's OTLP receiver
 * (otlptranslator, "UnderscoreEscapingWithSuffixes"): metric names split on characters Prometheus does not
 * allow and joined with `_`, the unit appended as a word (`s` → `seconds`, `By` → `bytes`, `By/s` →
 * `bytes_per_second`, `{requests}` annotations dropped), `_total` for monotonic sums, `_ratio` for gauges of
 * unit `1`; attribute names with invalid characters mapped to `_` (`http.method` → `http_method`).
 *
 * - gauge → gauge; sum → counter (`_total` when monotonic); delta sums are accumulated into cumulative
 *   totals per series (a restart of trainwatch is a counter reset); cumulative histograms → `_bucket{le}`
 *   (cumulative counts, `+Inf` included), `_sum`, `_count`; summaries → `{quantile}`, `_sum`, `_count`.
 * - Resource attributes become labels (`service.name` → `service_name`), except those describing the
 *   sending process (`process.*`, `telemetry.*`, `os.*`, `host.arch`), which change at every restart and would
 *   make every restart new series. trainwatch never maps anything onto `job`: Prometheus reserves it for the
 *   scrape job, and DESIGN.md keeps `job_id` for the training job.
 * - The instrumentation scope becomes `otel_scope_name`, `otel_scope_version` and `otel_scope_<attribute>`.
 * - A data point flagged "no recorded value" is written as Prometheus's staleness marker.
 * - What cannot be stored (exponential and delta histograms, points whose series is invalid) is rejected
 *   point by point and reported in the OTLP partial-success answer; the rest is stored.
 */
import { STALE_NAN } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import { METRIC_NAME_LABEL } from '../model/labels.js';
import type { MetricType } from '../model/metric-catalog.js';
import { formatFloatF, type OtlpAttribute, type OtlpMetric, type OtlpMetrics } from './otlp-decode.js';
import { checkSampleCount, checkTimestamp, type DecodeContext } from './remote-write-decode.js';

const UNIT_WORDS: Readonly<Record<string, string>> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
  GiBy: 'gibibytes',
  TiBy: 'tibibytes',
  KBy: 'kilobytes',
  MBy: 'megabytes',
  GBy: 'gigabytes',
  TBy: 'terabytes',
  m: 'meters',
  V: 'volts',
  A: 'amperes',
  J: 'joules',
  W: 'watts',
  g: 'grams',
  Cel: 'celsius',
  Hz: 'hertz',
  '1': '',
  '%': 'percent',
};

const PER_UNIT_WORDS: Readonly<Record<string, string>> = {
  s: 'second',
  m: 'minute',
  h: 'hour',
  d: 'day',
  w: 'week',
  mo: 'month',
  y: 'year',
};

const IGNORED_RESOURCE_PREFIXES = ['process.', 'telemetry.', 'os.', 'host.arch'];

function cleanUnitWord(s: string): string {
  return s.replace(/[^a-zA-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
}

/** The Prometheus type of an OTLP metric kind: a monotonic sum is a counter, another sum a gauge. */
function metricTypeOf(metric: { kind: string; monotonic?: boolean }): MetricType {
  switch (metric.kind) {
    case 'gauge':
      return 'gauge';
    case 'sum':
      return metric.monotonic ? 'counter' : 'gauge';
    case 'histogram':
      return 'histogram';
    case 'summary':
      return 'summary';
    default:
      return 'unknown';
  }
}

/**
 * The unit `/api/v1/metadata` shows for an OTLP metric: the words its name gets from the UCUM unit
 * (`By` → `bytes`, `By/s` → `bytes_per_second`, `1` on a gauge → `ratio`); '' for annotations (`{request}`).
 */
export function prometheusUnit(metric: { unit: string; kind: string }): string {
  if (metric.unit === '1') return metric.kind === 'gauge' ? 'ratio' : '';
  const [main = '', per] = metric.unit.split('/', 2) as [string?, string?];
  const m = main.trim();
  let out = '';
  if (m !== '' && !/[{}]/.test(m)) out = cleanUnitWord(Object.hasOwn(UNIT_WORDS, m) ? UNIT_WORDS[m]! : m);
  if (per !== undefined && per.trim() !== '' && !/[{}]/.test(per)) {
    const p = per.trim();
    const word = cleanUnitWord(Object.hasOwn(PER_UNIT_WORDS, p) ? PER_UNIT_WORDS[p]! : p);
    if (word !== '') out = out === '' ? `per_${word}` : `${out}_per_${word}`;
  }
  return out;
}

/** The Prometheus name of an OTLP metric (Prometheus's otlptranslator `normalizeName`). */
export function prometheusMetricName(metric: {
  name: string;
  unit: string;
  kind: string;
  monotonic?: boolean;
}): string {
  const tokens = metric.name.split(/[^a-zA-Z0-9:]+/).filter((t) => t !== '');
  const [main = '', per] = metric.unit.split('/', 2) as [string?, string?];
  const mainUnit = main.trim();
  if (mainUnit !== '' && !/[{}]/.test(mainUnit)) {
    // Own keys only: a unit named `constructor` or `toString` must not find Object.prototype's functions.
    const word = cleanUnitWord(Object.hasOwn(UNIT_WORDS, mainUnit) ? UNIT_WORDS[mainUnit]! : mainUnit);
    if (word !== '' && !tokens.includes(word)) tokens.push(word);
  }
  if (per !== undefined && per.trim() !== '' && !/[{}]/.test(per)) {
    const p = per.trim();
    const word = cleanUnitWord(Object.hasOwn(PER_UNIT_WORDS, p) ? PER_UNIT_WORDS[p]! : p);
    if (word !== '' && !tokens.includes(word)) tokens.push('per', word);
  }
  let out = tokens;
  if (metric.kind === 'sum' && metric.monotonic) out = [...out.filter((t) => t !== 'total'), 'total'];
  if (metric.unit === '1' && metric.kind === 'gauge') out = [...out.filter((t) => t !== 'ratio'), 'ratio'];
  let name = out.join('_');
  if (/^[0-9]/.test(name)) name = `_${name}`;
  return name;
}

/** Prometheus's otlptranslator `NormalizeLabel`: invalid characters → `_`, no leading digit or single `_`. */
export function prometheusLabelName(key: string): string {
  if (key === '') return key;
  let label = key.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(label)) label = `key_${label}`;
  else if (label.startsWith('_')) label = `key${label}`;
  return label;
}

/** Adds attributes to a label map; names that collide after translation join their values with `;`. */
function addAttributes(into: Map<string, string>, attrs: readonly OtlpAttribute[], prefix = ''): void {
  const fresh = new Map<string, string>();
  for (const a of attrs) {
    const name = prefix + prometheusLabelName(a.key);
    if (name === '' || name === prefix) continue;
    const prev = fresh.get(name);
    fresh.set(name, prev === undefined ? a.value : `${prev};${a.value}`);
  }
  for (const [k, v] of fresh) into.set(k, v);
}

export interface TranslateResult {
  /** Data points not stored, for the partial-success answer. */
  rejectedPoints: number;
  /** Why the first rejected point was rejected. */
  firstError: string | undefined;
  /** Points not stored because trainwatch does not store their kind (counted in self-metrics too). */
  unsupportedPoints: number;
}

/**
 * Appends every storable data point of the request to `ctx.batch`. Limits of the tenant (active series,
 * samples per request) refuse the whole request by throwing; problems of one point reject that point only.
 */
export function translateOtlp(request: OtlpMetrics, ctx: DecodeContext): TranslateResult {
  const result: TranslateResult = { rejectedPoints: 0, firstError: undefined, unsupportedPoints: 0 };
  const reject = (points: number, why: string, unsupported = false) => {
    result.rejectedPoints += points;
    if (unsupported) result.unsupportedPoints += points;
    result.firstError ??= why;
  };
  for (const rm of request) {
    const resourceLabels = new Map<string, string>();
    addAttributes(
      resourceLabels,
      rm.resourceAttributes.filter((a) => !IGNORED_RESOURCE_PREFIXES.some((p) => a.key.startsWith(p))),
    );
    for (const scope of rm.scopes) {
      const baseLabels = new Map(resourceLabels);
      if (scope.scopeName !== '') baseLabels.set('otel_scope_name', scope.scopeName);
      if (scope.scopeVersion !== '') baseLabels.set('otel_scope_version', scope.scopeVersion);
      addAttributes(baseLabels, scope.scopeAttributes, 'otel_scope_');
      for (const metric of scope.metrics) translateMetric(metric, baseLabels, ctx, reject);
    }
  }
  return result;
}

type Reject = (points: number, why: string, unsupported?: boolean) => void;

function translateMetric(
  metric: OtlpMetric,
  base: Map<string, string>,
  ctx: DecodeContext,
  reject: Reject,
): void {
  if (metric.kind === 'unsupported') {
    if (metric.pointCount > 0)
      reject(metric.pointCount, `metric ${metric.name}: ${metric.what} data points are not supported`, true);
    return;
  }
  if (metric.kind === 'histogram' && metric.temporality === 'delta') {
    reject(
      metric.points.length,
      `metric ${metric.name}: delta histograms are not supported; configure the exporter for cumulative temporality`,
      true,
    );
    return;
  }
  const name = prometheusMetricName(
    metric as { name: string; unit: string; kind: string; monotonic?: boolean },
  );
  if (name === '') {
    reject(metric.points.length, `a metric has no usable name (${JSON.stringify(metric.name)})`);
    return;
  }
  ctx.metadata?.note(name, metricTypeOf(metric), metric.description ?? '', prometheusUnit(metric));
  const batch = ctx.batch;
  for (const point of metric.points) {
    const labels = new Map(base);
    addAttributes(labels, point.attributes);
    // timeNs is a double: around 2^60 ns it is within ±128 ns (below 2^63 within ±1024) of the sent integer,
    // so a time on a whole millisecond may read as a hair below it; the margin keeps it on its millisecond.
    const t = Math.floor((point.timeNs + 1024) / 1e6);
    const seriesBefore = batch.seriesCount;
    const samplesBefore = batch.sampleCount;
    const accumulatedBefore = ctx.registry.accumulations().length;
    try {
      if (metric.kind === 'gauge' || metric.kind === 'sum') {
        const p = point as (typeof metric.points)[number];
        let value = p.value;
        if (!p.noRecordedValue && metric.kind === 'sum' && metric.temporality === 'delta') {
          const ref = emit(ctx, name, labels, undefined, undefined, t, 0);
          value = ctx.registry.accumulate(ref, p.value);
          batch.values[batch.sampleCount - 1] = value;
          continue;
        }
        emit(ctx, name, labels, undefined, undefined, t, p.noRecordedValue ? STALE_NAN : value);
      } else if (metric.kind === 'histogram') {
        const p = point as (typeof metric.points)[number];
        const stale = p.noRecordedValue;
        let cumulative = 0;
        const n = p.explicitBounds.length;
        if (p.bucketCounts.length !== 0 && p.bucketCounts.length !== n + 1) {
          throw new PointError(
            `histogram ${name} has ${p.bucketCounts.length} bucket counts for ${n} bounds; OTLP needs bounds + 1`,
          );
        }
        for (let i = 0; i < p.bucketCounts.length; i++) {
          cumulative += p.bucketCounts[i]!;
          const le = i < n ? formatFloatF(p.explicitBounds[i]!) : '+Inf';
          emit(ctx, `${name}_bucket`, labels, 'le', le, t, stale ? STALE_NAN : cumulative);
        }
        if (p.sum !== undefined)
          emit(ctx, `${name}_sum`, labels, undefined, undefined, t, stale ? STALE_NAN : p.sum);
        emit(ctx, `${name}_count`, labels, undefined, undefined, t, stale ? STALE_NAN : p.count);
      } else {
        const p = point as (typeof metric.points)[number];
        const stale = p.noRecordedValue;
        for (const q of p.quantiles) {
          emit(ctx, name, labels, 'quantile', formatFloatF(q.quantile), t, stale ? STALE_NAN : q.value);
        }
        emit(ctx, `${name}_sum`, labels, undefined, undefined, t, stale ? STALE_NAN : p.sum);
        emit(ctx, `${name}_count`, labels, undefined, undefined, t, stale ? STALE_NAN : p.count);
      }
    } catch (err) {
      // One point's problem rejects that point; limits of the tenant refuse the whole request.
      const pointProblem =
        err instanceof PointError || (err instanceof TrainwatchError && err.kind.code === 'invalid_series');
      if (!pointProblem) throw err;
      batch.truncate(seriesBefore, samplesBefore);
      const log = ctx.registry.accumulations();
      if (log.length > accumulatedBefore) {
        ctx.registry.undoAccumulations(log.slice(accumulatedBefore), ctx.registry.generation);
        (log as number[]).length = accumulatedBefore;
      }
      reject(1, (err as Error).message);
    }
    checkSampleCount(ctx);
  }
}

class PointError extends Error {}

/** Appends one sample of the series `name{labels, extraName=extraValue}`; returns its ref. */
function emit(
  ctx: DecodeContext,
  name: string,
  labels: Map<string, string>,
  extraName: string | undefined,
  extraValue: string | undefined,
  t: number,
  value: number,
): number {
  const kb = ctx.keys;
  kb.beginStrings();
  kb.addStrings(METRIC_NAME_LABEL, name);
  for (const [k, v] of labels) if (k !== extraName) kb.addStrings(k, v);
  if (extraName !== undefined) kb.addStrings(extraName, extraValue!);
  kb.finish();
  const ref = ctx.registry.resolve(kb, ctx.nowMs);
  checkTimestamp(ctx, ref, t);
  ctx.batch.beginSeries(ref);
  ctx.batch.add(t, value);
  return ref;
}
