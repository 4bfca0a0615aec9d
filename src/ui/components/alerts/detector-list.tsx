import { fetchDetectors } from '../../api';
import { fmtAge } from '../../format';
import { usePolled } from '../../hooks/use-alerting';
import { detectorDetails, detectorLastEvaluation } from '../../lib/alert-list';
import { Empty, ErrorBox } from '../widgets';
import { MISSING } from './missing';

/** The streaming detectors: their state, last evaluation and settings. */
export function DetectorList() {
  const { data: detectors, error } = usePolled(fetchDetectors, 5000, []);
  if (error)
    return error.missingRoute ? (
      <Empty title="No detectors yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="detectors" />
    );
  if (!detectors) return <div className="empty">Loading detectors…</div>;
  if (detectors.length === 0) return <Empty title="No detectors">{null}</Empty>;
  const now = Date.now();
  return (
    <div className="table-scroll">
      <table className="jobs" data-testid="detectors-table">
        <thead>
          <tr>
            <th>Detector</th>
            <th>State</th>
            <th>Last evaluation</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {detectors.map((d, i) => {
            const t = detectorLastEvaluation(d);
            return (
              <tr key={String(d.name ?? i)}>
                <td>
                  <strong>{String(d.name ?? `detector ${i + 1}`)}</strong>
                  {typeof d.description === 'string' && <div className="sub">{d.description}</div>}
                </td>
                <td>
                  <span className={`badge state-${String(d.state ?? 'unknown')}`}>
                    {String(d.state ?? (d.enabled === false ? 'disabled' : '—'))}
                  </span>
                </td>
                <td>{t ? `${fmtAge(t, now)} ago` : 'never'}</td>
                <td className="small mono details">{detectorDetails(d)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
