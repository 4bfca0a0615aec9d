import { useMemo, useState } from 'react';
import { FilterForm, PAGE_SIZE, Pager } from '../components/runs/run-controls';
import { GroupRows, RunRows } from '../components/runs/run-rows';
import { Scatter } from '../components/runs/run-scatter';
import { Empty, ErrorBox } from '../components/widgets';
import { useRuns } from '../hooks/use-runs';
import { compareUrl, RUN_VIEW_PARAMS, type RunColumn } from '../lib/runs';
import { navigate, useLocation } from '../router';

const MAX_COMPARE = 12;

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

/** Replaces the page's query string (no new history entry) and tells the router. */
function replaceSearch(p: URLSearchParams): void {
  const s = p.toString();
  const next = `${location.pathname}${s ? `?${s}` : ''}`;
  if (next === location.pathname + location.search) return;
  history.replaceState(null, '', next);
  window.dispatchEvent(new PopStateEvent('popstate'));
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

  const { data, error } = useRuns(apiKey);
  const [selected, setSelected] = useState<string[]>([]);

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
                {data.groups ? (
                  data.groups.map((g) => (
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
                ) : (
                  <RunRows runs={data.runs} shown={shown} selected={selected} onToggle={toggle} />
                )}
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
