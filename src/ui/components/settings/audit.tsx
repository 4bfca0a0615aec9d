/**
 * Settings > Audit log: who did what in this tenant, newest first, filtered by actor and action.
 * One file per settings page, as the job page's panels are (components/job).
 */
import { useId, useState } from 'react';
import { fetchAudit } from '../../api';
import { fmtTime } from '../../format';
import { useList } from '../../hooks/use-list';
import { timeOf } from '../../lib/session';
import { DataTable } from '../data-table';
import { FormError } from '../widgets';

export function AuditSettings() {
  const [actor, setActor] = useState('');
  const [action, setAction] = useState('');
  const [filter, setFilter] = useState<{ actor: string; action: string }>({ actor: '', action: '' });
  const id = useId();
  const { items: events, error } = useList(
    (signal) =>
      fetchAudit(
        {
          ...(filter.actor ? { actor: filter.actor } : {}),
          ...(filter.action ? { action: filter.action } : {}),
          limit: 200,
        },
        signal,
      ),
    filter,
  );
  return (
    <section aria-labelledby="audit-title" data-testid="settings-audit">
      <h2 id="audit-title">Audit log</h2>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ actor: actor.trim(), action: action.trim() });
        }}
      >
        <label htmlFor={`${id}-actor`}>Actor</label>
        <input id={`${id}-actor`} type="text" value={actor} onChange={(e) => setActor(e.target.value)} />
        <label htmlFor={`${id}-action`}>Action</label>
        <input
          id={`${id}-action`}
          type="text"
          value={action}
          placeholder="e.g. token.create"
          onChange={(e) => setAction(e.target.value)}
        />
        <button type="submit" className="btn">
          Filter
        </button>
      </form>
      <FormError message={error} />
      {events && events.length === 0 && <p className="muted">No events match.</p>}
      {events && events.length > 0 && (
        <DataTable
          testId="audit-table"
          caption="Audit events, newest first"
          columns={['Time', 'Actor', 'Action', 'Target', 'Tenant', 'From', 'Outcome']}
        >
          {events.map((e, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: events have no id; the list is replaced whole
            <tr key={i}>
              <td>{fmtTime(timeOf(e.time))}</td>
              <td>
                {e.actor} <span className="muted small">{e.via}</span>
              </td>
              <td className="mono">{e.action}</td>
              <td>{e.target ?? '—'}</td>
              <td>{e.tenant ?? '—'}</td>
              <td className="mono small">{e.ip ?? '—'}</td>
              <td>
                <span className={e.outcome === 'success' || e.outcome === 'ok' ? 'good' : 'bad'}>
                  {e.outcome}
                </span>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}
