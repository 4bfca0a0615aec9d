import { useEffect, useMemo, useRef, useState } from 'react';
import type { ApiError } from '../../api';
import { fmtAge, fmtNumber, fmtTime } from '../../format';
import type { AlertGroup } from '../../lib/alert-groups';
import {
  alertCounts,
  groupKey,
  groupsInOrder,
  SILENCED_ELSEWHERE,
  shownAlerts,
  silenceOf,
} from '../../lib/alert-list';
import { alertStart, silenceMatchersFor } from '../../lib/alerts';
import type { Alert, Silence } from '../../lib/types';
import { onLinkClick } from '../../router';
import { DataTable } from '../data-table';
import { AlertPlace } from '../node-link';
import { Empty } from '../widgets';
import { notLoaded } from './missing';

/**
 * The alerts of the range, filtered by state, with related alerts folded under their likely cause; each
 * active one can be silenced in one click (or with options). `highlight` (a fingerprint from a link) is
 * marked, scrolled to, and its group opened.
 */
export function AlertList({
  alerts,
  error,
  silences,
  highlight,
  stateFilter,
  onState,
  onSilence,
  onEdit,
}: {
  alerts: Alert[] | null;
  error: ApiError | null;
  silences: Silence[];
  highlight: string | null;
  stateFilter: string;
  onState: (s: string) => void;
  onSilence: (a: Alert) => void;
  onEdit: (a: Alert) => void;
}) {
  const now = Date.now();
  const rowRef = useRef<HTMLTableRowElement>(null);
  // Silenced alerts are counted apart: a silence is someone saying "known, leave it".
  const counts = useMemo(() => alertCounts(alerts ?? []), [alerts]);
  const [opened, setOpened] = useState<ReadonlySet<string>>(new Set());
  const shown = useMemo(() => shownAlerts(alerts ?? [], stateFilter), [alerts, stateFilter]);
  const groups = useMemo(() => groupsInOrder(shown), [shown]);
  const isOpen = (g: AlertGroup) =>
    opened.has(groupKey(g)) || g.consequences.some((c) => c.fingerprint === highlight);
  const toggle = (g: AlertGroup) =>
    setOpened((prev) => {
      const next = new Set(prev);
      if (!next.delete(groupKey(g))) next.add(groupKey(g));
      return next;
    });
  // Scrolls to the highlighted alert once it is on the page (when the list first loads, or the link changes).
  const listed = alerts !== null;
  useEffect(() => {
    if (highlight !== null && listed) rowRef.current?.scrollIntoView({ block: 'center' });
  }, [highlight, listed]);
  const waiting = notLoaded('alerts', alerts, error, 'No alerting yet');
  if (waiting !== null || !alerts) return waiting;
  return (
    <>
      <fieldset className="segmented" aria-label="Alert state">
        {(
          [
            [
              'active',
              `Active (${counts.firing + counts.pending}${counts.silenced ? `, ${counts.silenced} silenced` : ''})`,
            ],
            ['firing', `Firing (${counts.firing})`],
            ['pending', `Pending (${counts.pending})`],
            ['resolved', `Resolved (${counts.resolved})`],
            ['all', 'All'],
          ] as const
        ).map(([k, label]) => (
          <button key={k} type="button" aria-pressed={stateFilter === k} onClick={() => onState(k)}>
            {label}
          </button>
        ))}
      </fieldset>
      {shown.length === 0 ? (
        <Empty title={stateFilter === 'resolved' ? 'Nothing resolved in this range' : 'All quiet'}>
          <p>
            {stateFilter === 'active' || stateFilter === 'firing'
              ? 'No alert is firing. Detectors watch every job for stalls, divergence, stragglers and idle GPUs.'
              : 'Widen the time range to see older history.'}
          </p>
        </Empty>
      ) : (
        <DataTable
          testId="alerts-table"
          className="jobs alerts"
          columns={[
            'Severity',
            'Alert',
            'Job',
            'Where',
            'State',
            'Since',
            'Resolved',
            { label: 'Value', num: true },
            'Actions',
          ]}
        >
          {groups
            .flatMap((g) => [
              { a: g.cause, group: g, consequence: false },
              ...(isOpen(g) ? g.consequences.map((c) => ({ a: c, group: g, consequence: true })) : []),
            ])
            .map(({ a, group, consequence }) => {
              const silenced = silenceOf(a, silences);
              const mark = a.fingerprint === highlight;
              return (
                <tr
                  key={`${a.fingerprint}/${a.activeAtMs}/${a.state}`}
                  ref={mark ? rowRef : undefined}
                  className={
                    [mark ? 'highlight' : '', consequence ? 'consequence' : ''].filter(Boolean).join(' ') ||
                    undefined
                  }
                  data-fingerprint={a.fingerprint}
                  data-state={a.state}
                  data-alertname={a.labels.alertname ?? a.name}
                  data-related={consequence ? undefined : group.consequences.length}
                  data-cause={consequence ? group.cause.fingerprint : undefined}
                >
                  <td>
                    <span className={`sev sev-${a.labels.severity ?? 'info'}`}>
                      ● {a.labels.severity ?? '—'}
                    </span>
                  </td>
                  <td>
                    {consequence && (
                      <span className="muted" title="consequence of the alert above">
                        ↳{' '}
                      </span>
                    )}
                    <strong>{a.labels.alertname ?? a.name}</strong>
                    <div className="sub">{a.annotations.summary ?? a.annotations.description ?? ''}</div>
                    <div className="sub">{a.source}</div>
                    {!consequence && group.consequences.length > 0 && (
                      <button
                        type="button"
                        className="btn btn-small btn-quiet related-toggle"
                        aria-expanded={isOpen(group)}
                        data-testid="related-toggle"
                        onClick={() => toggle(group)}
                      >
                        {isOpen(group) ? '▾' : '▸'} {group.consequences.length} related:{' '}
                        {[...new Set(group.consequences.map((c) => c.labels.alertname ?? c.name))].join(', ')}
                      </button>
                    )}
                  </td>
                  <td>
                    {a.labels.job_id ? (
                      <a href={a.url || `/jobs/${encodeURIComponent(a.labels.job_id)}`} onClick={onLinkClick}>
                        {a.labels.job_id}
                      </a>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td>
                    <AlertPlace labels={a.labels} />
                  </td>
                  <td>
                    <span className={`badge state-${a.state}`}>{a.state}</span>
                    {silenced && (
                      <div className="sub">
                        {silenced === SILENCED_ELSEWHERE
                          ? 'silenced'
                          : `silenced until ${fmtTime(Date.parse(silenced.endsAt))}`}
                      </div>
                    )}
                  </td>
                  <td title={fmtTime(alertStart(a))}>{fmtAge(alertStart(a), now)} ago</td>
                  <td>{a.resolvedAtMs ? `${fmtAge(a.resolvedAtMs, now)} ago` : '—'}</td>
                  <td className="num">
                    {typeof a.value === 'number' ? fmtNumber(a.value) : (a.value ?? '—')}
                  </td>
                  <td className="actions">
                    {a.state !== 'resolved' && !silenced && (
                      <>
                        <button
                          type="button"
                          className="btn btn-small"
                          data-testid="silence-button"
                          title={`Silence for 2 hours: ${silenceMatchersFor(a.labels)
                            .map((m) => `${m.name}="${m.value}"`)
                            .join(', ')}`}
                          onClick={() => onSilence(a)}
                        >
                          Silence 2h
                        </button>
                        <button
                          type="button"
                          className="btn btn-small btn-quiet"
                          onClick={() => onEdit(a)}
                          aria-label="Silence with options"
                        >
                          …
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
        </DataTable>
      )}
    </>
  );
}
