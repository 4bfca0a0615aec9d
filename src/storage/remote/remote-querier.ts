/**
 * The read side of `storage.kind: remote`: a tenant's querier, which scopes every selector to its tenant,
 * reads raw samples through the TSDB's Prometheus API (or `/api/v1/export` on VictoriaMetrics) and pushes
 * rollup hints down to the TSDB's window functions. remote-storage.ts states the contract (tenancy, which
 * reads return raw samples, which windows a push-down answers); separate from it because the write side
 * (remote-write.ts) and the storage's lifecycle share nothing with the query path.
 */

import { Errors, twError } from '../../model/errors.js';
import {
  isValidLabelName,
  LabelMatcher,
  type LabelSet,
  METRIC_NAME_LABEL,
  WellKnownLabel,
} from '../../model/labels.js';
import {
  AGG_COLUMNS,
  AGG_COUNT,
  AGG_LAST,
  AGG_MAX,
  AGG_MIN,
  AGG_SUM,
  ROLLUP_FUNCS,
  RollupColumns,
} from '../rollup.js';
import type { Querier, SelectedSeries, SelectHints, SeriesSet } from '../storage.js';
import { labelSetSortKey } from '../symbols.js';
import { parseValue, RemoteWindows, SeriesCollector, sortByWindow } from './remote-series.js';
import type { RemoteStorage } from './remote-storage.js';

const TENANT = WellKnownLabel.tenant;

function labelName(name: string): string {
  return isValidLabelName(name) ? name : JSON.stringify(name);
}

/** `{a="x",b=~"y"}`: a series selector for `match[]` or a query. */
export function selectorString(matchers: readonly LabelMatcher[]): string {
  return `{${matchers.map((m) => `${labelName(m.name)}${m.type}${JSON.stringify(m.value)}`).join(',')}}`;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** Samples of one series as read back, in timestamp order, one per timestamp. */

/** The query function that yields each AGG_* column. */
const AGG_FUNCTION: Readonly<Record<number, string>> = {
  [AGG_MIN]: 'min_over_time',
  [AGG_MAX]: 'max_over_time',
  [AGG_SUM]: 'sum_over_time',
  [AGG_COUNT]: 'count_over_time',
  [AGG_LAST]: 'last_over_time',
};

const AGG_COLUMN: Readonly<Record<string, number>> = {
  min: AGG_MIN,
  max: AGG_MAX,
  sum: AGG_SUM,
  count: AGG_COUNT,
  last: AGG_LAST,
};

/** The smallest step pushed down: the embedded TSDB's finest rollup tier. */
const MIN_PUSH_DOWN_STEP_MS = 10_000;

interface PushDownPlan {
  /** The metric name the selector fixes (aggregations drop `__name__`; it is put back). */
  readonly name: string;
  readonly step: number;
  /** Last millisecond of the first and of the last window: windows end on multiples of the step. */
  readonly first: number;
  readonly last: number;
  /** AGG_* columns to ask for (count always). */
  readonly columns: readonly number[];
  /** The column `iterator()` yields (-1: sum / count, for avg_over_time). */
  readonly column: number;
}

/**
 * Whether rollup hints can be answered by the TSDB's window functions: a step of 10 s or more (whole ms), a
 * range function with a rollup column and a range equal to the step (the dashboard's grids), and a metric
 * name fixed by an equality matcher. Otherwise undefined: raw samples are read.
 */
function pushDownPlan(
  scoped: readonly LabelMatcher[],
  hints: SelectHints | undefined,
  lo: number,
  hi: number,
): PushDownPlan | undefined {
  if (!hints?.func || !hints.stepMs || !hints.rangeMs) return undefined;
  const step = hints.stepMs;
  if (step < MIN_PUSH_DOWN_STEP_MS || !Number.isInteger(step) || hints.rangeMs !== step) return undefined;
  const column = ROLLUP_FUNCS[hints.func];
  if (column === undefined) return undefined;
  const named = scoped.find((m) => m.name === METRIC_NAME_LABEL && m.type === '=' && m.value !== '');
  if (!named) return undefined;
  const cols = new Set<number>([AGG_COUNT]);
  cols.add(column < 0 ? AGG_SUM : column);
  for (const a of hints.aggregates ?? ['min', 'max', 'sum', 'count', 'last']) cols.add(AGG_COLUMN[a]!);
  return {
    name: named.value,
    step,
    first: Math.floor(lo / step) * step + step - 1,
    last: Math.floor(hi / step) * step + step - 1,
    columns: [...cols].sort((a, b) => a - b),
    column,
  };
}

interface PromResponse<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
  warnings?: string[];
  infos?: string[];
}

interface MatrixData {
  resultType: string;
  result: { metric: Record<string, string>; values?: [number, string][] }[];
}

export class RemoteQuerier implements Querier {
  constructor(
    private readonly storage: RemoteStorage,
    private readonly tenant: string | null,
    private readonly minT: number,
    private readonly maxT: number,
  ) {}

  /**
   * The matchers to send, with the tenant's own `tenant` matcher; undefined when a caller's matcher on `tenant`
   * excludes the querier's tenant (the answer is then empty, never another tenant's data).
   */
  private scope(matchers: readonly LabelMatcher[]): LabelMatcher[] | undefined {
    if (this.tenant === null) {
      const all = [...matchers];
      // A selector needs one matcher that does not match the empty string (admin "everything": any name).
      if (!all.some((m) => !m.matches(''))) all.push(nameMatcher);
      return all;
    }
    const out: LabelMatcher[] = [];
    for (const m of matchers) {
      if (m.name === TENANT) {
        if (!m.matches(this.tenant)) return undefined;
        continue;
      }
      out.push(m);
    }
    out.push(new LabelMatcher('=', TENANT, this.tenant));
    return out;
  }

  async select(
    matchers: readonly LabelMatcher[],
    hints?: SelectHints,
    signal?: AbortSignal,
  ): Promise<SeriesSet> {
    signal?.throwIfAborted();
    const lo = Math.max(this.minT, hints?.minT ?? this.minT);
    const hi = Math.min(this.maxT, hints?.maxT ?? this.maxT);
    const scoped = this.scope(matchers);
    if (!scoped || lo > hi) return { series: [], warnings: [] };
    const pushed = pushDownPlan(scoped, hints, lo, hi);
    if (pushed) return this.selectWindows(scoped, pushed, signal);
    const selector = selectorString(scoped);
    const flavor = this.storage.readFlavor;
    const collector = new SeriesCollector(lo, hi, flavor === 'victoriametrics');
    let warnings: string[] = [];
    if (flavor === 'victoriametrics') {
      const form = new URLSearchParams({ 'match[]': selector, start: seconds(lo), end: seconds(hi) });
      const body = await this.storage.request('/api/v1/export', form, signal);
      let start = 0;
      while (start < body.length) {
        let end = body.indexOf('\n', start);
        if (end < 0) end = body.length;
        if (end > start) {
          const line = JSON.parse(body.slice(start, end)) as {
            metric: Record<string, string>;
            values: (number | null)[];
            timestamps: number[];
          };
          if (this.owns(line.metric)) collector.add(line.metric, line.timestamps, line.values);
        }
        start = end + 1;
      }
    } else {
      const form = new URLSearchParams({ query: `${selector}[${hi - lo + 1}ms]`, time: seconds(hi) });
      const res = JSON.parse(
        await this.storage.request('/api/v1/query', form, signal),
      ) as PromResponse<MatrixData>;
      if (res.status !== 'success')
        throw twError(Errors.badRequest, `remote TSDB query failed: ${res.error ?? 'no error message'}`);
      if (res.data.resultType !== 'matrix')
        throw twError(
          Errors.internal,
          `remote TSDB answered a range-vector selector with a ${res.data.resultType}, not a matrix`,
        );
      for (const r of res.data.result) {
        if (!this.owns(r.metric) || !r.values) continue;
        const ts = r.values.map((p) => Math.round(p[0] * 1000));
        collector.add(
          r.metric,
          ts,
          r.values.map((p) => p[1]),
        );
      }
      warnings = [...(res.warnings ?? []), ...(res.infos ?? [])];
    }
    return { series: collector.finish(), warnings };
  }

  /**
   * Rollup hints pushed down: one `query_range` of `<agg>_over_time(selector[step])` per aggregate (split into
   * requests of at most `maxWindowsPerRequest` windows), evaluated at each window's last millisecond,
   * joined per series into window columns.
   */
  private async selectWindows(
    scoped: readonly LabelMatcher[],
    plan: PushDownPlan,
    signal: AbortSignal | undefined,
  ): Promise<SeriesSet> {
    const selector = selectorString(scoped);
    const { step, first, last } = plan;
    const per = this.storage.maxWindowsPerRequest;
    const chunks: [number, number][] = [];
    for (let t = first; t <= last; t += per * step) chunks.push([t, Math.min(last, t + (per - 1) * step)]);
    const nWindows = (last - first) / step + 1;
    // Per series and column, the windows the TSDB answered (window index, value): as sparse as its answer.
    const series = new Map<string, { labels: LabelSet; cols: { i: number[]; v: number[] }[] }>();
    const warnings = new Set<string>();
    const answers = await Promise.all(
      plan.columns.flatMap((col) =>
        chunks.map(async ([start, end]) => {
          const form = new URLSearchParams({
            query: `${AGG_FUNCTION[col]}(${selector}[${step}ms])`,
            start: seconds(start),
            end: seconds(end),
            step: seconds(step),
          });
          const res = JSON.parse(
            await this.storage.request('/api/v1/query_range', form, signal),
          ) as PromResponse<MatrixData>;
          return { col, res };
        }),
      ),
    );
    for (const { col, res } of answers) {
      if (res.status !== 'success')
        throw twError(Errors.badRequest, `remote TSDB query failed: ${res.error ?? 'no error message'}`);
      if (res.data.resultType !== 'matrix')
        throw twError(
          Errors.internal,
          `remote TSDB answered query_range with a ${res.data.resultType}, not a matrix`,
        );
      for (const w of [...(res.warnings ?? []), ...(res.infos ?? [])]) warnings.add(w);
      for (const r of res.data.result) {
        if (!this.owns(r.metric) || !r.values) continue;
        // *_over_time drops the metric name (VictoriaMetrics keeps it for some): the selector fixes it.
        const labels: LabelSet = { ...r.metric, [METRIC_NAME_LABEL]: plan.name };
        const key = labelSetSortKey(labels);
        let s = series.get(key);
        if (!s) {
          s = { labels, cols: [] };
          series.set(key, s);
        }
        let c = s.cols[col];
        if (!c) {
          c = { i: [], v: [] };
          s.cols[col] = c;
        }
        for (const [ts, v] of r.values) {
          const i = Math.round((Math.round(ts * 1000) - first) / step);
          if (i < 0 || i >= nWindows) continue;
          c.i.push(i);
          c.v.push(parseValue(v));
        }
      }
    }
    const out: SelectedSeries[] = [];
    for (const key of [...series.keys()].sort()) {
      const s = series.get(key)!;
      const counts = s.cols[AGG_COUNT];
      if (!counts) continue;
      // Requests answer in time order and were issued in time order, but a proxy may merge them otherwise.
      for (const c of s.cols) if (c) sortByWindow(c);
      const w = new RollupColumns(counts.i.length);
      // A merge: one cursor per column, moving forward with the windows of `count`.
      const at = new Int32Array(AGG_COLUMNS);
      const value = (c: number, i: number): number => {
        const col = s.cols[c];
        if (!col) return Number.NaN;
        let p = at[c]!;
        while (p < col.i.length && col.i[p]! < i) p++;
        at[c] = p;
        return col.i[p] === i ? col.v[p]! : Number.NaN;
      };
      for (let k = 0; k < counts.i.length; k++) {
        const count = counts.v[k]!;
        if (!(count > 0)) continue;
        const i = counts.i[k]!;
        w.push(
          first + i * step,
          value(AGG_MIN, i),
          value(AGG_MAX, i),
          value(AGG_SUM, i),
          count,
          value(AGG_LAST, i),
        );
      }
      if (w.n === 0) continue;
      out.push(new RemoteWindows(s.labels, step, w, plan.column));
    }
    return { series: out, warnings: [...warnings] };
  }

  /** Defence in depth: a tenant's querier drops any series of another tenant, whatever the TSDB returned. */
  private owns(labels: Record<string, string>): boolean {
    return this.tenant === null || labels[TENANT] === this.tenant;
  }

  async labelNames(matchers: readonly LabelMatcher[] = [], signal?: AbortSignal): Promise<string[]> {
    const form = this.labelForm(matchers);
    if (!form) return [];
    const res = JSON.parse(await this.storage.request('/api/v1/labels', form, signal)) as PromResponse<
      string[]
    >;
    return [...(res.data ?? [])].sort();
  }

  async labelValues(
    name: string,
    matchers: readonly LabelMatcher[] = [],
    signal?: AbortSignal,
  ): Promise<string[]> {
    const form = this.labelForm(matchers);
    if (!form) return [];
    const res = JSON.parse(
      await this.storage.request(`/api/v1/label/${encodeURIComponent(name)}/values`, form, signal),
    ) as PromResponse<string[]>;
    const values = [...(res.data ?? [])].sort();
    // Within a tenant, the only `tenant` value there is to see is its own.
    if (name === TENANT && this.tenant !== null) return values.filter((v) => v === this.tenant);
    return values;
  }

  private labelForm(matchers: readonly LabelMatcher[]): URLSearchParams | undefined {
    const form = new URLSearchParams({ start: seconds(this.minT), end: seconds(this.maxT) });
    if (this.tenant === null && matchers.length === 0) return form;
    const scoped = this.scope(matchers);
    if (!scoped) return undefined;
    form.set('match[]', selectorString(scoped));
    return form;
  }
}

const nameMatcher = new LabelMatcher('=~', METRIC_NAME_LABEL, '.+');
