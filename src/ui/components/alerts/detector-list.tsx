import { fetchDetectors } from '../../api';
import { fmtAge } from '../../format';
import { usePolled } from '../../hooks/use-alerting';
import { detectorDetails, detectorLastEvaluation } from '../../lib/alert-list';
import { DataTable } from '../data-table';
import { Empty } from '../widgets';
import { notLoaded } from './missing';

/** The streaming detectors: their state, last evaluation and settings. */
export function DetectorList() {
  const { data: detectors, error } = usePolled(fetchDetectors, 5000, []);
  const waiting = notLoaded('detectors', detectors, error);
  if (waiting !== null || !detectors) return waiting;
  if (detectors.length === 0) return <Empty title="No detectors">{null}</Empty>;
  const now = Date.now();
  return (
    <DataTable testId="detectors-table" columns={['Detector', 'State', 'Last evaluation', 'Details']}>
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
    </DataTable>
  );
}
