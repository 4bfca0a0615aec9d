import type { ApiError } from '../../api';
import { fmtTime } from '../../format';
import { matcherText, sortSilences } from '../../lib/alert-list';
import type { Silence } from '../../lib/types';
import { DataTable } from '../data-table';
import { Empty } from '../widgets';
import { notLoaded } from './missing';

/** Every silence: active, pending, then expired; the unexpired ones can be expired. */
export function SilenceList({
  silences,
  error,
  onExpire,
}: {
  silences: Silence[] | null;
  error: ApiError | null;
  onExpire: (id: string) => void;
}) {
  const waiting = notLoaded('silences', silences, error);
  if (waiting !== null || !silences) return waiting;
  if (silences.length === 0)
    return (
      <Empty title="No silences">
        <p>Silence an alert from the Alerts tab (one click), or create one with “New silence”.</p>
      </Empty>
    );
  return (
    <DataTable testId="silences-table" columns={['State', 'Matchers', 'Starts', 'Ends', 'By', 'Comment', '']}>
      {sortSilences(silences).map((s) => (
        <tr key={s.id} data-silence-id={s.id} data-state={s.status.state}>
          <td>
            <span className={`badge state-${s.status.state}`}>{s.status.state}</span>
          </td>
          <td>
            {s.matchers.map((m) => (
              <code key={matcherText(m)} className="matcher">
                {matcherText(m)}
              </code>
            ))}
          </td>
          <td>{fmtTime(Date.parse(s.startsAt))}</td>
          <td>{fmtTime(Date.parse(s.endsAt))}</td>
          <td>{s.createdBy}</td>
          <td>{s.comment}</td>
          <td>
            {s.status.state !== 'expired' && (
              <button type="button" className="btn btn-small" onClick={() => onExpire(s.id)}>
                Expire
              </button>
            )}
          </td>
        </tr>
      ))}
    </DataTable>
  );
}
