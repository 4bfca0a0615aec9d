import { useEffect, useMemo, useState } from 'react';
import { fetchRuns } from '../api';
import { Empty, ErrorBox, StatusBadge } from '../components/widgets';
import { fmtAge, fmtNumber, fmtPercent, fmtTime } from '../format';
import {
  compareUrl,
  FILTER_OPS,
  type FilterOp,
  formatFilter,
  parseFilter,
  RUN_VIEW_PARAMS,
  type Run,
  type RunColumn,
  type RunGroup,
  type RunsResponse,
  runValue,
  scaleFor,
} from '../lib/runs';
import type { JobStatus } from '../lib/types';
import { navigate, onLinkClick, useLocation } from '../router';

const PAGE_SIZE = 100;
const SCATTER_RUNS = 500;
const MAX_COMPARE = 12;
const REFRESH_MS = 30_000;

/** Columns shown before the config keys (every config key is shown after them). */
const SHOWN = [
  'name',
  'status',
  'owner',
  'loss',
  'loss_best',
  'eval_loss',
  'samples_per_second',
  'tokens_per_second',
  'step',
  'gpu_hours',
  'duration',
  'start',
];

/** Group rows show these aggregates under their columns (the server's names). */
const GROUP_AGGREGATES: Readonly<Record<string, string>> = {
  loss: 'mean',
  loss_best: 'min',
  eval_loss: 'mean',
  samples_per_second: 'mean',
  tokens_per_second: 'mean',
  step: 'max',
  gpu_hours: 'sum',
};

/** Replaces the page's query string (no new history entry) and tells the router. */
function replaceSearch(p: URLSearchParams): void {
  const s = p.toString();
  const next = `${location.pathname}${s ? `?${s}` : ''}`;
  if (next === location.pathname + location.search) return;
  history.replaceState(null, '', next);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

function fmtCell(col: RunColumn | undefined, v: number | string | null): string {
  if (v === null) return '—';
  if (typeof v === 'string') return v;
  if (Number.isNaN(v)) return 'NaN';
  if (col?.kind === 'time') return fmtTime(v);
  if (col?.key === 'duration') return fmtAge(0, v * 1000);
  if (col?.key === 'step' || col?.key === 'world_size') return Math.round(v).toLocaleString('en-US');
  if (col?.key === 'gpu_utilization' || col?.key === 'gpu_utilization_best') return fmtPercent(v);
  return fmtNumber(v, 4);
}

/** The API query of the view: the page's sort, filters, group and offset (not the scatter's axes). */
function apiParams(search: string): URLSearchParams {
  const all = new URLSearchParams(search);
  const p = new URLSearchParams();
  for (const k of RUN_VIEW_PARAMS) for (const v of all.getAll(k)) if (v !== '') p.append(k, v);
  p.set('limit', String(PAGE_SIZE));
  return p;
}

/**
 * Runs, as in W&B: every job of the tenant as a row of summary metrics (last and best loss, throughput, step,
 * GPU-hours, status) and hyperparameters (config keys), sorted, filtered and grouped on the server by any
 * column; select runs to compare them; a scatter plot of a hyperparameter against a metric. The whole view
 * (sort, filters, group, page, scatter axes) is in the URL.
 */
export function RunsPage() {
  const { search } = useLocation();
  const params = new URLSearchParams(search);
  const sort = params.get('sort') ?? '';
  const filters = params.getAll('filter').filter((f) => f !== '');
  const group = params.get('group') ?? '';
  const offset = Math.max(0, Number(params.get('offset') ?? '0') || 0);
  const apiKey = apiParams(search).toString();

  const [data, setData] = useState<RunsResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string[]>([]);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    const load = () =>
      fetchRuns(new URLSearchParams(apiKey), abort.signal)
        .then((d) => {
          setData(d);
          setError(null);
        })
        .catch((err) => {
          if (!abort.signal.aborted) setError(err);
        });
    void load();
    // Summaries move while runs train: the view refreshes itself, as the fleet page does.
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [apiKey]);

  const update = (edit: (p: URLSearchParams) => void) => {
    const p = new URLSearchParams(location.search);
    edit(p);
    replaceSearch(p);
  };
  const setFilters = (next: string[]) =>
    update((p) => {
      p.delete('filter');
      for (const f of next) p.append('filter', f);
      p.delete('offset');
    });

  const columns = data?.columns ?? [];
  const byKey = useMemo(() => new Map(columns.map((c) => [c.key, c])), [columns]);
  const shown = useMemo(
    () => [
      ...SHOWN.map((k) => byKey.get(k)).filter((c): c is RunColumn => !!c),
      ...columns.filter((c) => c.source === 'config'),
    ],
    [columns, byKey],
  );

  const toggle = (jobId: string) =>
    setSelected((s) =>
      s.includes(jobId) ? s.filter((x) => x !== jobId) : [...s, jobId].slice(-MAX_COMPARE),
    );

  const sortBy = (key: string) =>
    update((p) => {
      p.set('sort', sort === key ? `-${key}` : key);
      p.delete('offset');
    });

  return (
    <section className="page" aria-labelledby="runs-title">
      <div className="page-head">
        <h1 id="runs-title">Runs</h1>
        <span className="muted" data-testid="runs-total">
          {data ? `${data.total} run${data.total === 1 ? '' : 's'}${filters.length ? ' match' : ''}` : ''}
        </span>
      </div>

      <div className="toolbar">
        <FilterForm
          columns={columns}
          onAdd={(f) => {
            if (!filters.includes(f)) setFilters([...filters, f]);
          }}
        />
        <label className="select">
          <span className="sr-only">Group by</span>
          <select
            aria-label="Group by"
            value={group}
            onChange={(e) =>
              update((p) => {
                if (e.target.value) p.set('group', e.target.value);
                else p.delete('group');
                p.delete('offset');
              })
            }
          >
            <option value="">Group by: none</option>
            {columns.map((c) => (
              <option key={c.key} value={c.key}>
                Group by: {c.label}
              </option>
            ))}
          </select>
        </label>
        <span className="spacer" />
        <button
          type="button"
          className="btn btn-primary"
          data-testid="runs-compare"
          disabled={selected.length < 2}
          onClick={() => navigate(compareUrl(selected))}
        >
          Compare {selected.length ? `(${selected.length})` : ''}
        </button>
        {selected.length > 0 && (
          <button type="button" className="btn btn-small" onClick={() => setSelected([])}>
            Clear selection
          </button>
        )}
      </div>

      {filters.length > 0 && (
        <fieldset className="chips" aria-label="Filters" data-testid="runs-filters">
          {filters.map((f, i) => (
            <span className="chip" key={f} data-filter={f}>
              <code>{f}</code>
              <button
                type="button"
                className="chip-x"
                aria-label={`Remove filter ${f}`}
                onClick={() => setFilters(filters.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </span>
          ))}
          <button type="button" className="btn btn-small" onClick={() => setFilters([])}>
            Clear filters
          </button>
        </fieldset>
      )}

      {error ? <ErrorBox error={error} what="the runs" /> : null}
      {!data && !error && <div className="empty">Loading runs…</div>}
      {data && data.total === 0 && (
        <Empty title={filters.length ? 'No run matches' : 'No runs yet'}>
          <p>
            {filters.length
              ? 'Change or remove the filters above.'
              : 'Runs appear here once a training job sends its first samples.'}
          </p>
        </Empty>
      )}
      {data && data.total > 0 && (
        <>
          <div className="table-scroll">
            <table className="jobs runs-table" data-testid="runs-table">
              <thead>
                <tr>
                  <th>
                    <span className="sr-only">Select</span>
                  </th>
                  {shown.map((c) => {
                    const state =
                      sort === c.key ? 'ascending' : sort === `-${c.key}` ? 'descending' : undefined;
                    return (
                      <th
                        key={c.key}
                        className={c.kind !== 'text' ? 'num' : undefined}
                        aria-sort={state}
                        data-column={c.key}
                      >
                        <button
                          type="button"
                          className="sort"
                          onClick={() => sortBy(c.key)}
                          title={c.source === 'config' ? `config key ${c.label}` : undefined}
                        >
                          {c.source === 'config' ? <span className="muted">cfg </span> : null}
                          {c.label}
                          <span aria-hidden="true">
                            {state === 'ascending' ? ' ▲' : state === 'descending' ? ' ▼' : ''}
                          </span>
                        </button>
                      </th>
                    );
                  })}
                </tr>
              </thead>
              <tbody>
                {data.groups
                  ? data.groups.map((g) => (
                      <GroupRows
                        key={String(g.value)}
                        group={g}
                        column={byKey.get(group)}
                        groupKey={group}
                        baseSearch={apiKey}
                        shown={shown}
                        selected={selected}
                        onToggle={toggle}
                      />
                    ))
                  : data.runs.map((r) => (
                      <RunRow
                        key={r.jobId}
                        run={r}
                        shown={shown}
                        selected={selected.includes(r.jobId)}
                        onToggle={toggle}
                      />
                    ))}
              </tbody>
            </table>
          </div>
          <Pager
            offset={offset}
            shown={data.groups ? data.groups.length : data.runs.length}
            total={data.groups ? (data.groupTotal ?? 0) : data.total}
            what={data.groups ? 'groups' : 'runs'}
            onOffset={(o) =>
              update((p) => {
                if (o > 0) p.set('offset', String(o));
                else p.delete('offset');
              })
            }
          />
          <Scatter
            columns={columns}
            filters={filters}
            selected={selected}
            onToggle={toggle}
            x={params.get('x') ?? ''}
            y={params.get('y') ?? ''}
            onAxes={(x, y) =>
              update((p) => {
                p.set('x', x);
                p.set('y', y);
              })
            }
          />
        </>
      )}
    </section>
  );
}

function RunRow({
  run,
  shown,
  selected,
  onToggle,
}: {
  run: Run;
  shown: readonly RunColumn[];
  selected: boolean;
  onToggle: (jobId: string) => void;
}) {
  return (
    <tr data-run-id={run.jobId} aria-selected={selected}>
      <td>
        <input
          type="checkbox"
          checked={selected}
          onChange={() => onToggle(run.jobId)}
          aria-label={`Select ${run.name} (${run.jobId})`}
        />
      </td>
      {shown.map((c) => {
        if (c.key === 'name')
          return (
            <td key={c.key} data-column={c.key}>
              <a href={`/jobs/${encodeURIComponent(run.jobId)}`} onClick={onLinkClick} className="job-link">
                {run.name}
              </a>
              <div className="sub">{run.jobId}</div>
            </td>
          );
        if (c.key === 'status')
          return (
            <td key={c.key} data-column={c.key}>
              <StatusBadge status={run.status as JobStatus} />
            </td>
          );
        const v = runValue(run, c.key);
        return (
          <td
            key={c.key}
            data-column={c.key}
            data-value={v === null ? '' : String(v)}
            className={typeof v === 'number' ? 'num' : undefined}
          >
            {fmtCell(c, v)}
          </td>
        );
      })}
    </tr>
  );
}

/** One group: a header row (value, count, aggregates) and, once expanded, its runs (fetched on demand). */
function GroupRows({
  group,
  column,
  groupKey,
  baseSearch,
  shown,
  selected,
  onToggle,
}: {
  group: RunGroup;
  column: RunColumn | undefined;
  groupKey: string;
  baseSearch: string;
  shown: readonly RunColumn[];
  selected: readonly string[];
  onToggle: (jobId: string) => void;
}) {
  const [open, setOpen] = useState(false);
  const [runs, setRuns] = useState<readonly Run[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const label = group.value === null ? '(none)' : fmtCell(column, group.value);
  useEffect(() => {
    if (!open) return;
    const abort = new AbortController();
    const p = new URLSearchParams(baseSearch);
    p.delete('group');
    p.delete('offset');
    p.append('filter', `${groupKey}=${group.value === null ? '' : String(group.value)}`);
    fetchRuns(p, abort.signal)
      .then((d) => setRuns(d.runs))
      .catch((err) => {
        if (!abort.signal.aborted) setError(err);
      });
    return () => abort.abort();
  }, [open, baseSearch, groupKey, group.value]);
  return (
    <>
      <tr className="run-group" data-group={group.value === null ? '' : String(group.value)}>
        <td />
        {shown.map((c, i) => {
          if (i === 0)
            return (
              <th key={c.key} scope="row">
                <button
                  type="button"
                  className="btn-quiet group-toggle"
                  aria-expanded={open}
                  onClick={() => setOpen(!open)}
                >
                  <span aria-hidden="true">{open ? '▾ ' : '▸ '}</span>
                  {column?.label ?? groupKey}: {label}
                </button>
                <div className="sub" data-testid="group-count">
                  {group.count} run{group.count === 1 ? '' : 's'}
                </div>
              </th>
            );
          const agg = GROUP_AGGREGATES[c.key];
          const v = agg ? (group.aggregates[c.key] ?? null) : null;
          return (
            <td key={c.key} className="num" data-column={c.key}>
              {agg && v !== null ? (
                <>
                  {fmtCell(c, v)} <span className="muted small">{agg}</span>
                </>
              ) : null}
            </td>
          );
        })}
      </tr>
      {open && error ? (
        <tr>
          <td colSpan={shown.length + 1}>
            <ErrorBox error={error} what="the runs of this group" />
          </td>
        </tr>
      ) : null}
      {open &&
        runs?.map((r) => (
          <RunRow
            key={r.jobId}
            run={r}
            shown={shown}
            selected={selected.includes(r.jobId)}
            onToggle={onToggle}
          />
        ))}
    </>
  );
}

function FilterForm({ columns, onAdd }: { columns: readonly RunColumn[]; onAdd: (f: string) => void }) {
  const [column, setColumn] = useState('');
  const [op, setOp] = useState<FilterOp>('=');
  const [value, setValue] = useState('');
  const col = column || columns[0]?.key || '';
  return (
    <form
      className="inline-form"
      aria-label="Add a filter"
      onSubmit={(e) => {
        e.preventDefault();
        if (!col) return;
        const f = formatFilter({ column: col, op, value });
        if (parseFilter(f)) onAdd(f);
        setValue('');
      }}
    >
      <select aria-label="Filter column" value={col} onChange={(e) => setColumn(e.target.value)}>
        {columns.map((c) => (
          <option key={c.key} value={c.key}>
            {c.source === 'config' ? `config: ${c.label}` : c.label}
          </option>
        ))}
      </select>
      <select aria-label="Filter operator" value={op} onChange={(e) => setOp(e.target.value as FilterOp)}>
        {FILTER_OPS.map((o) => (
          <option key={o} value={o}>
            {o === '~' ? 'contains' : o}
          </option>
        ))}
      </select>
      <input
        type="text"
        aria-label="Filter value"
        placeholder="value"
        value={value}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit" className="btn btn-small">
        Add filter
      </button>
    </form>
  );
}

function Pager({
  offset,
  shown,
  total,
  what,
  onOffset,
}: {
  offset: number;
  shown: number;
  total: number;
  what: string;
  onOffset: (o: number) => void;
}) {
  if (total <= PAGE_SIZE && offset === 0) return null;
  return (
    <nav className="toolbar" aria-label="Pages of runs">
      <span className="muted">
        {what} {shown ? offset + 1 : 0}–{offset + shown} of {total}
      </span>
      <button
        type="button"
        className="btn btn-small"
        disabled={offset === 0}
        onClick={() => onOffset(Math.max(0, offset - PAGE_SIZE))}
      >
        Previous
      </button>
      <button
        type="button"
        className="btn btn-small"
        disabled={offset + shown >= total}
        onClick={() => onOffset(offset + PAGE_SIZE)}
      >
        Next
      </button>
    </nav>
  );
}

const W = 720;
const H = 320;
const M = { left: 64, right: 16, top: 12, bottom: 44 };

function statusColor(status: string): string {
  if (status === 'failed') return 'var(--bad)';
  if (status === 'completed') return 'var(--good)';
  if (status === 'stalled' || status === 'unknown') return 'var(--warn)';
  return 'var(--accent)';
}

/**
 * A hyperparameter against a metric, one point per run matching the filters (up to 500), drawn in SVG: numbers on
 * a linear or (when they span decades, as learning rates do) logarithmic axis, strings as categories. A click on
 * a point selects the run for compare.
 */
function Scatter({
  columns,
  filters,
  selected,
  onToggle,
  x,
  y,
  onAxes,
}: {
  columns: readonly RunColumn[];
  filters: readonly string[];
  selected: readonly string[];
  onToggle: (jobId: string) => void;
  x: string;
  y: string;
  onAxes: (x: string, y: string) => void;
}) {
  const config = columns.filter((c) => c.source === 'config');
  const metrics = columns.filter((c) => c.source === 'summary');
  const xKey = x || config.find((c) => /learning_rate|lr/.test(c.key))?.key || config[0]?.key || 'gpu_hours';
  const yKey = y || 'loss';
  const [runs, setRuns] = useState<readonly Run[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const filterKey = filters.join('\n');
  useEffect(() => {
    const abort = new AbortController();
    const p = new URLSearchParams();
    for (const f of filterKey.split('\n')) if (f) p.append('filter', f);
    p.set('sort', yKey);
    p.set('limit', String(SCATTER_RUNS));
    setError(null);
    fetchRuns(p, abort.signal)
      .then((d) => setRuns(d.runs))
      .catch((err) => {
        if (!abort.signal.aborted) setError(err);
      });
    return () => abort.abort();
  }, [filterKey, yKey]);

  const points = (runs ?? [])
    .map((r) => ({ run: r, x: runValue(r, xKey), y: runValue(r, yKey) }))
    .filter(
      (p): p is { run: Run; x: number | string; y: number } =>
        p.x !== null &&
        !(typeof p.x === 'number' && !Number.isFinite(p.x)) &&
        typeof p.y === 'number' &&
        Number.isFinite(p.y),
    );
  const xCol = columns.find((c) => c.key === xKey);
  const yCol = columns.find((c) => c.key === yKey);
  const sx = points.length
    ? scaleFor(
        points.map((p) => p.x),
        (v) => fmtNumber(v),
      )
    : null;
  const sy = points.length
    ? scaleFor(
        points.map((p) => p.y),
        (v) => fmtNumber(v),
      )
    : null;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const left = (v: number | string) => M.left + sx!.at(v) * pw;
  const top = (v: number) => M.top + (1 - sy!.at(v)) * ph;
  const missing = (runs?.length ?? 0) - points.length;

  return (
    <section className="panel runs-scatter" aria-labelledby="runs-scatter-title">
      <div className="section-head">
        <h2 id="runs-scatter-title">Hyperparameter against metric</h2>
        <label className="select">
          <span className="sr-only">Scatter x axis</span>
          <select aria-label="Scatter x axis" value={xKey} onChange={(e) => onAxes(e.target.value, yKey)}>
            {[...config, ...metrics].map((c) => (
              <option key={c.key} value={c.key}>
                x: {c.source === 'config' ? `config ${c.label}` : c.label}
              </option>
            ))}
          </select>
        </label>
        <label className="select">
          <span className="sr-only">Scatter y axis</span>
          <select aria-label="Scatter y axis" value={yKey} onChange={(e) => onAxes(xKey, e.target.value)}>
            {metrics.map((c) => (
              <option key={c.key} value={c.key}>
                y: {c.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {error ? <ErrorBox error={error} what="the runs for the scatter plot" /> : null}
      {runs && points.length === 0 && (
        <p className="muted">
          No run has both {xCol?.label ?? xKey} and a finite {yCol?.label ?? yKey}.
        </p>
      )}
      {sx && sy && (
        <svg
          viewBox={`0 0 ${W} ${H}`}
          className="scatter"
          role="img"
          aria-label={`${yCol?.label ?? yKey} against ${xCol?.label ?? xKey}, ${points.length} runs`}
          data-testid="runs-scatter"
          data-x={xKey}
          data-y={yKey}
          data-log-x={sx.log ? '1' : undefined}
        >
          <g className="scatter-grid">
            {sy.ticks.map((t) => (
              <g key={`y${t.label}`}>
                <line
                  x1={M.left}
                  x2={W - M.right}
                  y1={M.top + (1 - t.at) * ph}
                  y2={M.top + (1 - t.at) * ph}
                />
                <text x={M.left - 6} y={M.top + (1 - t.at) * ph} textAnchor="end" dominantBaseline="middle">
                  {t.label}
                </text>
              </g>
            ))}
            {sx.ticks.map((t) => (
              <g key={`x${t.label}`}>
                <line x1={M.left + t.at * pw} x2={M.left + t.at * pw} y1={M.top} y2={H - M.bottom} />
                <text x={M.left + t.at * pw} y={H - M.bottom + 16} textAnchor="middle">
                  {t.label}
                </text>
              </g>
            ))}
          </g>
          <text className="scatter-axis" x={M.left + pw / 2} y={H - 6} textAnchor="middle">
            {xCol?.source === 'config' ? `config ${xCol.label}` : (xCol?.label ?? xKey)}
            {sx.log ? ' (log)' : ''}
          </text>
          <text
            className="scatter-axis"
            transform={`translate(14 ${M.top + ph / 2}) rotate(-90)`}
            textAnchor="middle"
          >
            {yCol?.label ?? yKey}
          </text>
          {points.map((p) => {
            const on = selected.includes(p.run.jobId);
            return (
              // biome-ignore lint/a11y/noStaticElementInteractions: a pointer shortcut; the table's checkboxes select runs by keyboard
              <circle
                key={p.run.jobId}
                data-run-id={p.run.jobId}
                cx={left(p.x)}
                cy={top(p.y)}
                r={on ? 7 : 5}
                fill={statusColor(p.run.status)}
                stroke={on ? 'var(--fg)' : 'none'}
                strokeWidth={2}
                fillOpacity={0.85}
                onClick={() => onToggle(p.run.jobId)}
              >
                <title>
                  {p.run.name} ({p.run.jobId}): {xCol?.label ?? xKey} {String(p.x)}, {yCol?.label ?? yKey}{' '}
                  {fmtNumber(p.y, 4)}
                </title>
              </circle>
            );
          })}
        </svg>
      )}
      {runs && missing > 0 && (
        <p className="muted small">
          {missing} run{missing === 1 ? '' : 's'} without both values (or with a NaN {yCol?.label ?? yKey})
          not drawn.
        </p>
      )}
    </section>
  );
}
