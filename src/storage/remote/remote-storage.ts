/**
 * `storage.kind: remote`: the processor remote-writes to a Prometheus-compatible TSDB (VictoriaMetrics single
 * or cluster, Mimir, Thanos receive, a managed Prometheus) and queries read raw samples back through the
 * TSDB's Prometheus HTTP API. trainwatch's PromQL engine still evaluates queries; the TSDB only stores and
 * selects.
 *
 * Durability and the bus (DESIGN.md "one log on the hot path"): a remote TSDB is durable once it acknowledged
 * a write, so this storage keeps no bus positions of its own. `checkpoint` resolves once everything appended
 * before it was acknowledged (or refused for good, and counted); the processor then commits its bus offsets,
 * and `coveredPositions` is empty: after a crash the processor resumes at the committed offsets and replays
 * what followed. Replayed samples carry the same (series, timestamp, value): the TSDB must deduplicate them
 * (VictoriaMetrics: `-dedup.minScrapeInterval=1ms`; Prometheus, Mimir and Thanos drop exact duplicates).
 *
 * Tenancy: writes set the `tenant` label, as the embedded TSDB does; a tenant's querier always adds
 * `tenant="<tenant>"` to what it sends, answers nothing to a matcher that excludes its own tenant, and drops
 * any returned series whose `tenant` label is not its own (a misbehaving proxy must not leak data either).
 *
 * Reading raw samples:
 * - `flavor: 'prometheus'` (Prometheus, Mimir, Thanos): an instant query of the selector as a range vector,
 *   `{matchers}[<maxT-minT+1>ms]` at `time=maxT`: the API returns a matrix of the raw samples in
 *   (maxT-range, maxT] = [minT, maxT]. Prometheus leaves staleness markers out of range vectors; a NaN read
 *   back is an ordinary NaN.
 * - `flavor: 'victoriametrics'`: `/api/v1/export` (JSON lines), which streams raw samples without the query
 *   path's limits on points per series. VictoriaMetrics drops ordinary NaN samples at ingestion but keeps
 *   staleness markers (exported as `null`): a NaN/null read back is the staleness marker. The instant-query
 *   form also returns raw samples on VictoriaMetrics 1.79 (checked), so 'prometheus' works against it too.
 *
 * Rollup hints (a dashboard grid: `stepMs` >= 10 s, a rollup range function, `rangeMs === stepMs`, and a metric
 * name fixed by an `=` matcher) are pushed down to the TSDB's window functions: `query_range` of
 * `sum_over_time`, `count_over_time` (and `min_`/`max_`/`last_over_time` when asked) over `[<step>ms]`,
 * evaluated at `k*step - 1`: each window (t - step, t] is [k*step - step, k*step - 1], the same window the
 * embedded TSDB's rollup tiers store at its last millisecond. The answers come back as windows
 * (`resolutionMs = stepMs`) covering every window that overlaps [minT, maxT]. Anything else reads raw samples.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SeriesBatch } from '../../model/batch.js';
import { STALE_NAN_BITS_HI, STALE_NAN_BITS_LO } from '../../model/batch.js';
import { Errors, twError } from '../../model/errors.js';
import {
  isValidLabelName,
  LabelMatcher,
  type LabelSet,
  METRIC_NAME_LABEL,
  WellKnownLabel,
} from '../../model/labels.js';
import { ArraySeries } from '../iterators.js';
import {
  AGG_COLUMNS,
  AGG_COUNT,
  AGG_LAST,
  AGG_MAX,
  AGG_MIN,
  AGG_SUM,
  ROLLUP_FUNCS,
  RollupColumns,
  RollupIterator,
} from '../rollup.js';
import type {
  AggregateArrays,
  AggregateIterator,
  Appender,
  AppendStats,
  BusPositions,
  Querier,
  SampleArrays,
  SelectedSeries,
  SelectHints,
  SeriesSet,
  Storage,
} from '../storage.js';
import { labelSetSortKey } from '../symbols.js';
import { type RemoteWriteOptions, RemoteWriteQueue } from './remote-write.js';

export type RemoteFlavor = 'prometheus' | 'victoriametrics';

export interface RemoteStorageOptions {
  /** Remote-write endpoint: VictoriaMetrics `http://vm:8428/api/v1/write`, Mimir `http://mimir/api/v1/push`. */
  readonly writeUrl: string;
  /**
   * Base of the Prometheus HTTP API (`<readUrl>/api/v1/query`): VictoriaMetrics single `http://vm:8428`,
   * cluster `http://vmselect:8481/select/0/prometheus`, Mimir `http://mimir/prometheus`.
   */
  readonly readUrl: string;
  /** How raw samples are read (see the file comment). Default 'prometheus'. */
  readonly flavor?: RemoteFlavor;
  /** Sent with every write and read, e.g. `{ 'X-Scope-OrgID': 'trainwatch' }` for Mimir. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly basicAuth?: { readonly username: string; readonly password: string };
  readonly bearerToken?: string;
  /** The send queue's tuning (shards, batch size, capacity, backoff): see {@link RemoteWriteOptions}. */
  readonly queue?: Omit<
    RemoteWriteOptions,
    'url' | 'headers' | 'basicAuth' | 'bearerToken' | 'registry' | 'logger'
  >;
  /**
   * Most windows one pushed-down `query_range` asks for (longer ranges are split). Default 10,000: under
   * Prometheus's 11,000 points per series and VictoriaMetrics' `-search.maxPointsPerTimeseries` (30,000).
   */
  readonly maxWindowsPerRequest?: number;
  /** Longest one read request may take. Default 60 s. */
  readonly queryTimeoutMs?: number;
  readonly registry?: Registry;
  readonly logger?: Logger;
}

const TENANT = WellKnownLabel.tenant;

export class RemoteStorage implements Storage {
  readonly appender: Appender;
  readonly queue: RemoteWriteQueue;
  private readonly readBase: string;
  private readonly flavor: RemoteFlavor;
  private readonly readHeaders: Record<string, string>;
  private readonly queryTimeoutMs: number;
  /** @internal */
  readonly maxWindowsPerRequest: number;

  constructor(opts: RemoteStorageOptions) {
    this.queue = new RemoteWriteQueue({
      ...opts.queue,
      url: opts.writeUrl,
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.basicAuth ? { basicAuth: opts.basicAuth } : {}),
      ...(opts.bearerToken ? { bearerToken: opts.bearerToken } : {}),
      ...(opts.registry ? { registry: opts.registry } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.readBase = opts.readUrl.replace(/\/+$/, '');
    this.flavor = opts.flavor ?? 'prometheus';
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 60_000;
    this.maxWindowsPerRequest = Math.max(1, Math.floor(opts.maxWindowsPerRequest ?? 10_000));
    this.readHeaders = {
      Accept: 'application/json',
      'Content-Type': 'application/x-www-form-urlencoded',
      ...(opts.basicAuth
        ? {
            Authorization: `Basic ${Buffer.from(`${opts.basicAuth.username}:${opts.basicAuth.password}`).toString('base64')}`,
          }
        : {}),
      ...(opts.bearerToken ? { Authorization: `Bearer ${opts.bearerToken}` } : {}),
      ...opts.headers,
    };
    this.appender = {
      append: (tenant: string, batch: SeriesBatch, signal?: AbortSignal): Promise<AppendStats> =>
        this.queue.append(tenant, batch, signal),
    };
  }

  /** Resolves once everything appended before this call was acknowledged by the TSDB (or refused and counted). */
  async checkpoint(_positions: BusPositions, signal?: AbortSignal): Promise<void> {
    await this.queue.flush(signal);
  }

  /** Empty: the consumer group's committed offsets are the whole truth for a remote store (see file comment). */
  coveredPositions(): BusPositions {
    return new Map();
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  querier(tenant: string | null, minT: number, maxT: number): Querier {
    return new RemoteQuerier(this, tenant, minT, maxT);
  }

  /** @internal A read request: POST form to `<readUrl><path>`; the parsed JSON or text body, errors mapped. */
  async request(path: string, form: URLSearchParams, signal: AbortSignal | undefined): Promise<string> {
    const url = `${this.readBase}${path}`;
    const timeout = AbortSignal.timeout(this.queryTimeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: this.readHeaders,
        body: form.toString(),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted)
        throw twError(
          Errors.unavailable,
          `remote TSDB did not answer ${path} within ${this.queryTimeoutMs} ms (${this.readBase})`,
        );
      const cause = (err as Error).cause ? `: ${String((err as Error).cause)}` : '';
      throw twError(
        Errors.unavailable,
        `remote TSDB unreachable for ${path} (${this.readBase}): ${(err as Error).message}${cause}`,
      );
    }
    if (res.ok) return text;
    const message = errorMessage(text);
    if (res.status >= 500 || res.status === 429) {
      const ra = Number(res.headers.get('retry-after'));
      throw twError(
        Errors.unavailable,
        `remote TSDB answered ${path} with HTTP ${res.status}: ${message}`,
        Number.isFinite(ra) && ra > 0 ? ra : undefined,
      );
    }
    throw twError(Errors.badRequest, `remote TSDB refused ${path} with HTTP ${res.status}: ${message}`);
  }

  /** @internal */
  get readFlavor(): RemoteFlavor {
    return this.flavor;
  }
}

/** The TSDB's own message: the `error` field of a Prometheus API error, else the body's start. */
function errorMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: string };
    if (typeof j.error === 'string') return j.error;
  } catch {
    // not JSON (VictoriaMetrics' export answers plain text)
  }
  return body.trim().slice(0, 512) || '(empty body)';
}

/** A label name in a selector: bare when valid, quoted otherwise (Prometheus 3 / UTF-8 names). */
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

/** Sorts one column's (window index, value) pairs by window, keeping the last of equal windows. */
function sortByWindow(c: { i: number[]; v: number[] }): void {
  let sorted = true;
  for (let k = 1; k < c.i.length; k++)
    if (c.i[k]! <= c.i[k - 1]!) {
      sorted = false;
      break;
    }
  if (sorted) return;
  const order = c.i.map((_, k) => k).sort((a, b) => c.i[a]! - c.i[b]! || a - b);
  const i: number[] = [];
  const v: number[] = [];
  for (const k of order) {
    if (i.length > 0 && i[i.length - 1] === c.i[k]) {
      v[v.length - 1] = c.v[k]!;
      continue;
    }
    i.push(c.i[k]!);
    v.push(c.v[k]!);
  }
  c.i = i;
  c.v = v;
}

function parseValue(raw: string): number {
  return raw === '+Inf' || raw === 'Inf'
    ? Number.POSITIVE_INFINITY
    : raw === '-Inf'
      ? Number.NEGATIVE_INFINITY
      : Number(raw);
}

/** Windows of one series computed by the TSDB (see RemoteQuerier.selectWindows). */
class RemoteWindows implements SelectedSeries {
  constructor(
    readonly labels: LabelSet,
    readonly resolutionMs: number,
    private readonly windows: RollupColumns,
    private readonly column: number,
  ) {}

  iterator(): RollupIterator {
    return new RollupIterator(this.windows, this.column);
  }

  aggregates(): AggregateIterator {
    return new RollupIterator(this.windows, this.column);
  }

  readAggregates(out: AggregateArrays): number {
    const w = this.windows;
    out.reset();
    out.reserve(w.n);
    out.t.set(w.t.subarray(0, w.n));
    for (let c = 0; c < w.cols.length; c++) out.cols[c]!.set(w.cols[c]!.subarray(0, w.n));
    out.n = w.n;
    return w.n;
  }

  readSamples(out: SampleArrays): number {
    const w = this.windows;
    out.n = 0;
    out.ensure(w.n);
    out.t.set(w.t.subarray(0, w.n));
    const sum = w.cols[AGG_SUM]!;
    const count = w.cols[AGG_COUNT]!;
    if (this.column >= 0) out.v.set(w.cols[this.column]!.subarray(0, w.n));
    else for (let i = 0; i < w.n; i++) out.v[i] = sum[i]! / count[i]!;
    out.n = w.n;
    return w.n;
  }
}

/** Collects samples per series (a series may come in several parts, e.g. VictoriaMetrics export blocks). */
class SeriesCollector {
  private readonly parts = new Map<string, { labels: LabelSet; t: number[]; v: Float64Array[]; n: number }>();

  constructor(
    private readonly lo: number,
    private readonly hi: number,
    private readonly nanIsStale: boolean,
  ) {}

  /** Adds samples; `values[i]` null or NaN-ish strings are handled per flavor. */
  add(labels: LabelSet, ts: readonly number[], values: readonly (number | string | null)[]): void {
    const key = labelSetSortKey(labels);
    let p = this.parts.get(key);
    if (!p) {
      p = { labels, t: [], v: [], n: 0 };
      this.parts.set(key, p);
    }
    const v = new Float64Array(values.length);
    const bits = new Uint32Array(v.buffer);
    let k = 0;
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i]!;
      if (t < this.lo || t > this.hi) continue;
      const raw = values[i]!;
      const x =
        raw === null
          ? Number.NaN
          : typeof raw === 'number'
            ? raw
            : raw === '+Inf' || raw === 'Inf'
              ? Number.POSITIVE_INFINITY
              : raw === '-Inf'
                ? Number.NEGATIVE_INFINITY
                : Number(raw);
      p.t.push(t);
      if (Number.isNaN(x) && (raw === null || this.nanIsStale)) {
        // Written as bits: the marker's payload must not depend on how the engine moves NaNs around.
        bits[2 * k] = STALE_NAN_BITS_LO;
        bits[2 * k + 1] = STALE_NAN_BITS_HI;
      } else v[k] = x;
      k++;
    }
    p.v.push(v.subarray(0, k));
    p.n += k;
  }

  /** The series ordered by labels, each sorted by time with one sample per timestamp (the last read wins). */
  finish(): SelectedSeries[] {
    const keys = [...this.parts.keys()].sort();
    const out: SelectedSeries[] = [];
    for (const key of keys) {
      const p = this.parts.get(key)!;
      if (p.n === 0) continue;
      let v: Float64Array;
      if (p.v.length === 1) v = p.v[0]!;
      else {
        v = new Float64Array(p.n);
        let o = 0;
        for (const part of p.v) {
          v.set(part, o);
          o += part.length;
        }
      }
      let t = Float64Array.from(p.t);
      let sorted = true;
      for (let i = 1; i < t.length; i++) {
        if (t[i]! <= t[i - 1]!) {
          sorted = false;
          break;
        }
      }
      if (!sorted) {
        const idx = Array.from({ length: t.length }, (_, i) => i).sort((a, b) => t[a]! - t[b]! || a - b);
        const t2 = new Float64Array(t.length);
        const v2 = new Float64Array(t.length);
        const b = new Uint32Array(v.buffer, v.byteOffset, v.length * 2);
        const b2 = new Uint32Array(v2.buffer);
        let n = 0;
        for (const i of idx) {
          if (n > 0 && t2[n - 1] === t[i]) n--; // same timestamp: the later part wins
          t2[n] = t[i]!;
          b2[2 * n] = b[2 * i]!;
          b2[2 * n + 1] = b[2 * i + 1]!;
          n++;
        }
        t = t2.subarray(0, n);
        v = v2.subarray(0, n);
      }
      out.push(new ArraySeries(p.labels, t, v));
    }
    return out;
  }
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

class RemoteQuerier implements Querier {
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
