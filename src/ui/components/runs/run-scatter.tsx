/**
 * The runs page's scatter plot (pages/runs.tsx): a hyperparameter against a metric, one point per run
 * matching the filters, drawn in SVG. Separate from the table: it loads its own runs, sorted by its metric.
 */
import { useEffect, useState } from 'react';
import { fetchRuns } from '../../api';
import { fmtNumber } from '../../format';
import { type Run, type RunColumn, runValue, scaleFor } from '../../lib/runs';
import { ErrorBox } from '../widgets';

const SCATTER_RUNS = 500;

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
export function Scatter({
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
