/**
 * The runs table's body (pages/runs.tsx): one row per run (select box, linked name, status, summary and config
 * cells), and a group's header row with its aggregates whose runs load when it is expanded.
 */

import { useEffect, useState } from 'react';
import { fetchRuns } from '../../api';
import { fmtAge, fmtNumber, fmtPercent, fmtTime } from '../../format';
import { type Run, type RunColumn, type RunGroup, runValue } from '../../lib/runs';
import type { JobStatus } from '../../lib/types';
import { onLinkClick } from '../../router';
import { ErrorBox, StatusBadge } from '../widgets';

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

/** Runs as table rows: the ungrouped page's, and an expanded group's. */
export function RunRows({
  runs,
  shown,
  selected,
  onToggle,
}: {
  runs: readonly Run[];
  shown: readonly RunColumn[];
  selected: readonly string[];
  onToggle: (jobId: string) => void;
}) {
  return runs.map((r) => (
    <RunRow key={r.jobId} run={r} shown={shown} selected={selected.includes(r.jobId)} onToggle={onToggle} />
  ));
}

/** One group: a header row (value, count, aggregates) and, once expanded, its runs (fetched on demand). */
export function GroupRows({
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
      {open && runs && <RunRows runs={runs} shown={shown} selected={selected} onToggle={onToggle} />}
    </>
  );
}
