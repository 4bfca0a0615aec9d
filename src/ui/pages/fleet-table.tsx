import type { FleetJob } from '../api';
import { HealthBadges, StatusBadge, UtilBar } from '../components/widgets';
import { fmtAge, fmtInt, fmtNumber } from '../format';
import type { useVirtualRows } from '../hooks/use-virtual-rows';
import type { JobHealth } from '../lib/alerts';
import { jobStatusOf } from '../lib/causes';
import { jobKey, SERVER_SORT, type SortKey } from '../lib/fleet';
import { onLinkClick } from '../router';

const COLUMNS: { key: SortKey; label: string; num?: boolean }[] = [
  { key: 'name', label: 'Job' },
  { key: 'status', label: 'Status' },
  { key: 'health', label: 'Health' },
  { key: 'owner', label: 'Owner' },
  { key: 'gpus', label: 'GPUs', num: true },
  { key: 'util', label: 'GPU util' },
  { key: 'throughput', label: 'Throughput', num: true },
  { key: 'loss', label: 'Loss', num: true },
  { key: 'step', label: 'Step', num: true },
  { key: 'age', label: 'Age', num: true },
];

/** A row's height in px before one is measured (two lines of text and padding; styles.css fixes it). */
export const FLEET_ROW_HEIGHT = 54;

export interface FleetTableProps {
  readonly total: number;
  readonly at: (index: number) => FleetJob | undefined;
  readonly health: ReadonlyMap<string, JobHealth>;
  readonly healthUnknown: boolean;
  readonly showTenant: boolean;
  readonly sortKey: SortKey;
  readonly sortDir: 'asc' | 'desc';
  readonly onSort: (key: SortKey, dir: 'asc' | 'desc') => void;
  /** The window of rows in view (the page fetches their blocks). */
  readonly virtual: ReturnType<typeof useVirtualRows>;
  readonly now: number;
}

/**
 * The fleet's jobs as a virtualized table: `total` rows tall, of which only those in view (and a few either
 * side) are in the DOM; the rest is a spacer. Rows not loaded yet show as placeholders. Sorting is the
 * server's: the headers of columns it can sort by are buttons (the live numbers too: the server orders them
 * by the values it keeps per job).
 */
export function FleetTable(p: FleetTableProps) {
  const v = p.virtual;
  const rows: number[] = [];
  for (let i = v.first; i < v.last; i++) rows.push(i);
  return (
    <div
      className="table-scroll virtual-scroll"
      ref={v.containerRef}
      data-testid="jobs-scroll"
      data-total={p.total}
      data-first={v.first}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: the scroll area must be reachable by keyboard (axe: scrollable-region-focusable)
      tabIndex={0}
    >
      <div className="virtual-spacer" style={{ height: v.totalHeight + FLEET_ROW_HEIGHT }}>
        <table
          className="jobs virtual"
          data-testid="jobs-table"
          aria-rowcount={p.total + 1}
          style={{ transform: `translateY(${v.offset}px)` }}
        >
          <thead>
            <tr aria-rowindex={1}>
              {COLUMNS.map((c) => {
                const sortable = SERVER_SORT[c.key] !== undefined;
                const active = p.sortKey === c.key;
                return (
                  <th
                    key={c.key}
                    className={c.num ? 'num' : undefined}
                    aria-sort={active ? (p.sortDir === 'asc' ? 'ascending' : 'descending') : undefined}
                  >
                    {sortable ? (
                      <button
                        type="button"
                        className="sort"
                        onClick={() => p.onSort(c.key, active && p.sortDir === 'desc' ? 'asc' : 'desc')}
                      >
                        {c.label}
                        <span aria-hidden="true">{active ? (p.sortDir === 'asc' ? ' ▲' : ' ▼') : ''}</span>
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {rows.map((i, n) => {
              const j = p.at(i);
              if (!j)
                return (
                  <tr
                    key={`loading-${i}`}
                    aria-rowindex={i + 2}
                    data-loading="1"
                    ref={n === 0 ? v.measure : undefined}
                  >
                    <td colSpan={COLUMNS.length} className="muted">
                      Loading…
                    </td>
                  </tr>
                );
              const h = p.health.get(jobKey(j));
              return (
                <tr
                  key={jobKey(j)}
                  aria-rowindex={i + 2}
                  data-job-id={j.jobId}
                  data-alerts={h?.alerts.length ?? 0}
                  ref={n === 0 ? v.measure : undefined}
                >
                  <td>
                    <a
                      href={`/jobs/${encodeURIComponent(j.jobId)}`}
                      onClick={onLinkClick}
                      className="job-link"
                    >
                      {j.name !== j.jobId ? j.name : j.jobId}
                    </a>
                    <div className="sub">
                      {j.jobId}
                      {p.showTenant ? ` · ${j.tenant}` : ''}
                      {j.project ? ` · ${j.project}` : ''}
                    </div>
                  </td>
                  <td>
                    <StatusBadge status={jobStatusOf(j, p.health)} cause={h?.cause} />
                  </td>
                  <td>
                    <HealthBadges health={h} unknown={p.healthUnknown} />
                  </td>
                  <td>{j.owner || '—'}</td>
                  <td className="num">
                    {j.gpus || j.worldSize || '—'}
                    {j.idleGpus > 0 && <div className="sub warn">{j.idleGpus} idle</div>}
                  </td>
                  <td>
                    <UtilBar ratio={j.meanGpuUtilization} />
                  </td>
                  <td className="num">
                    {/* A hung job's 0 is news: only a job that reports no throughput shows a dash. */}
                    {j.tokensPerSecond !== null && (j.tokensPerSecond > 0 || !j.samplesPerSecond)
                      ? `${fmtNumber(j.tokensPerSecond)} tok/s`
                      : j.samplesPerSecond !== null
                        ? `${fmtNumber(j.samplesPerSecond)} samples/s`
                        : '—'}
                  </td>
                  <td className={`num ${j.loss === 'NaN' ? 'bad' : ''}`}>{fmtNumber(j.loss, 4)}</td>
                  <td className="num">{fmtInt(j.step)}</td>
                  <td className="num">{fmtAge(j.startMs, j.endMs ?? p.now)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
