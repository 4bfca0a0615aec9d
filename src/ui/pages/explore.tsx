import { useEffect, useMemo, useState } from 'react';
import {
  type ApiError,
  fetchMetricMetadata,
  fetchMetricNames,
  type PromResult,
  promQuery,
  promQueryRange,
} from '../api';
import { Chart, type ChartSeries } from '../components/chart';
import { RangePicker } from '../components/range-picker';
import { Empty, ErrorBox } from '../components/widgets';
import { JOB_GUTTERS } from '../lib/time-axis';
import { parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import {
  formatWithUnit,
  type MetricMetadata,
  metricsOfQuery,
  type Unit,
  unitName,
  unitOfQuery,
} from '../lib/units';
import { useSearchParams } from '../router';

const MAX_SERIES_DRAWN = 50;
const EXAMPLES = [
  'avg by (job_id) (gpu_utilization_ratio)',
  'sum by (job_id) (train_tokens_per_second)',
  'max by (job_id, rank) (train_step_duration_seconds)',
  'train_loss{rank="0"}',
];

function formatMetric(m: Record<string, string>): string {
  const name = m.__name__ ?? '';
  const rest = Object.keys(m)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}="${m[k]}"`)
    .join(', ');
  return rest ? `${name}{${rest}}` : name || '{}';
}

function parseValue(s: string): number {
  return s === '+Inf' ? Number.POSITIVE_INFINITY : s === '-Inf' ? Number.NEGATIVE_INFINITY : Number(s);
}

/** A PromQL box with graph (query_range) and table (instant query) results; the query lives in the URL. */
export function ExplorePage() {
  const [params, setParams] = useSearchParams();
  const query = params.get('q') ?? '';
  const tab = params.get('tab') === 'table' ? 'table' : 'graph';
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '1h', ms: 3_600_000 });
  const [draft, setDraft] = useState(query);
  const [result, setResult] = useState<PromResult | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [took, setTook] = useState<number | null>(null);
  const [names, setNames] = useState<string[]>([]);
  const [runs, setRuns] = useState(0);
  /** Metadata of the metrics the query selects (their units); absent metrics or a failed fetch: names only. */
  const [meta, setMeta] = useState<MetricMetadata>({});
  // biome-ignore lint/correctness/useExhaustiveDependencies: the range is re-resolved (now moves) on every run
  const w = useMemo(() => resolveRange(range, Date.now()), [JSON.stringify(range), runs]);

  useEffect(() => setDraft(query), [query]);
  useEffect(() => {
    const abort = new AbortController();
    fetchMetricNames(abort.signal)
      .then(setNames)
      .catch(() => {});
    return () => abort.abort();
  }, []);

  useEffect(() => {
    const names = metricsOfQuery(query).slice(0, 10);
    if (names.length === 0) return;
    const abort = new AbortController();
    Promise.all(names.map((n) => fetchMetricMetadata(n, abort.signal).catch(() => ({}))))
      .then((list) => {
        if (!abort.signal.aborted) setMeta(Object.assign({}, ...list));
      })
      .catch(() => {});
    return () => abort.abort();
  }, [query]);
  const unit: Unit | null = useMemo(() => unitOfQuery(query, meta), [query, meta]);
  const fmt = (v: number) => formatWithUnit(v, unit);

  useEffect(() => {
    if (!query.trim()) {
      setResult(null);
      setError(null);
      return;
    }
    const abort = new AbortController();
    setLoading(true);
    const started = performance.now();
    const width = Math.max(200, Math.min(1500, window.innerWidth - 120));
    const step = Math.max(1000, Math.ceil((w.end - w.start) / width / 1000) * 1000);
    (tab === 'graph'
      ? promQueryRange(query, w.start, w.end, step, abort.signal)
      : promQuery(query, w.end, abort.signal)
    )
      .then((r) => {
        setResult(r);
        setError(null);
        setTook(performance.now() - started);
      })
      .catch((err) => {
        if (!abort.signal.aborted) {
          setError(err as ApiError);
          setResult(null);
        }
      })
      .finally(() => {
        if (!abort.signal.aborted) setLoading(false);
      });
    return () => abort.abort();
  }, [query, tab, w]);

  const series: ChartSeries[] = useMemo(() => {
    if (!result) return [];
    if (result.resultType === 'matrix')
      return result.result.slice(0, MAX_SERIES_DRAWN).map((s) => ({
        label: formatMetric(s.metric),
        x: s.values.map(([t]) => t * 1000),
        y: s.values.map(([, v]) => parseValue(v)),
      }));
    if (result.resultType === 'scalar')
      return [
        { label: 'scalar', x: [result.result[0] * 1000], y: [parseValue(result.result[1])], points: true },
      ];
    return [];
  }, [result]);

  const run = () => {
    setParams({ q: draft.trim() || null }, true);
    setRuns((r) => r + 1);
  };

  return (
    <section className="page" aria-labelledby="explore-title">
      <div className="page-head">
        <h1 id="explore-title">Explore</h1>
      </div>
      <form
        className="promql"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <label htmlFor="promql" className="sr-only">
          PromQL query
        </label>
        <textarea
          id="promql"
          rows={2}
          spellCheck={false}
          placeholder="PromQL, e.g. avg by (job_id) (gpu_utilization_ratio) — Enter runs, Shift+Enter adds a line"
          value={draft}
          data-testid="promql-input"
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              run();
            }
          }}
        />
        <button type="submit" className="btn btn-primary" data-testid="promql-run">
          Run
        </button>
      </form>
      <div className="toolbar">
        <div className="tabs" role="tablist" aria-label="Result">
          <button
            type="button"
            role="tab"
            aria-selected={tab === 'graph'}
            onClick={() => setParams({ tab: null })}
          >
            Graph
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={tab === 'table'}
            onClick={() => setParams({ tab: 'table' })}
          >
            Table
          </button>
        </div>
        <RangePicker value={range} onChange={(r) => setParams(rangeParams(r))} resolved={w} />
        {loading && <span className="muted">running…</span>}
        {!loading && took !== null && result && <span className="muted small">{Math.round(took)} ms</span>}
        {names.length > 0 && (
          <select
            aria-label="Insert a metric name"
            value=""
            onChange={(e) => setDraft((d) => (d ? `${d} ${e.target.value}` : e.target.value))}
          >
            <option value="">Metrics ({names.length})…</option>
            {names.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        )}
      </div>
      {error &&
        (error.missingRoute ? (
          <Empty title="PromQL is not on this server yet">
            <p>
              The Prometheus query API (/api/v1/query, /api/v1/query_range) comes with trainwatch's PromQL
              engine.
            </p>
          </Empty>
        ) : (
          <ErrorBox error={error} what="the query result" />
        ))}
      {!query && !error && (
        <Empty title="Ask a question in PromQL">
          <p>Try:</p>
          <ul className="examples">
            {EXAMPLES.map((ex) => (
              <li key={ex}>
                <button type="button" className="link" onClick={() => setParams({ q: ex }, true)}>
                  <code>{ex}</code>
                </button>
              </li>
            ))}
          </ul>
        </Empty>
      )}
      {result && tab === 'graph' && (
        <>
          {result.resultType === 'matrix' && result.result.length > MAX_SERIES_DRAWN && (
            <div className="note">
              Drawing {MAX_SERIES_DRAWN} of {result.result.length} series; aggregate (e.g.{' '}
              <code>topk(10, …)</code>) to see the rest.
            </div>
          )}
          <Chart
            title={query}
            testId="explore-graph"
            series={series}
            height={360}
            yFormat={fmt}
            legendList
            gutters={JOB_GUTTERS}
            subtitle={
              <span data-testid="explore-unit" data-unit={unit ? unitName(unit) : ''}>
                {unit
                  ? `unit: ${unitName(unit)} (from the ${unit.source === 'metadata' ? 'metric metadata' : 'metric name'})`
                  : 'no unit known'}
              </span>
            }
            emptyText="The query returned no series."
          />
        </>
      )}
      {result && tab === 'table' && <ResultTable result={result} format={unit ? fmt : null} />}
    </section>
  );
}

function ResultTable({ result, format }: { result: PromResult; format: ((v: number) => string) | null }) {
  const show = (raw: string) => (format && Number.isFinite(parseValue(raw)) ? format(parseValue(raw)) : raw);
  if (result.resultType === 'scalar' || result.resultType === 'string')
    return (
      <table className="jobs" data-testid="explore-table">
        <tbody>
          <tr>
            <th>{result.resultType}</th>
            <td className="num">
              {result.resultType === 'scalar' ? show(result.result[1]) : result.result[1]}
            </td>
          </tr>
        </tbody>
      </table>
    );
  const rows =
    result.resultType === 'vector'
      ? result.result.map((s) => ({ metric: s.metric, value: show(s.value[1]) }))
      : result.result.map((s) => {
          const last = s.values[s.values.length - 1]?.[1];
          return { metric: s.metric, value: `${s.values.length} points, last ${last ? show(last) : '—'}` };
        });
  if (rows.length === 0) return <div className="empty small">The query returned no series.</div>;
  return (
    <div className="table-scroll">
      <table className="jobs" data-testid="explore-table">
        <thead>
          <tr>
            <th>Series ({rows.length})</th>
            <th className="num">Value</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={formatMetric(r.metric)}>
              <td>
                <code>{formatMetric(r.metric)}</code>
              </td>
              <td className="num">{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
