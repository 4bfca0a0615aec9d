import type { JobSummary } from '../../api';
import { fmtTime } from '../../format';
import type { JobCause } from '../../lib/causes';
import type { JobStatus } from '../../lib/types';

/** The job's configuration (its hyperparameters) and metadata. */
export function JobDetails({
  job,
  metrics,
  status,
  cause,
}: {
  job: JobSummary;
  metrics: readonly string[];
  status: JobStatus;
  cause: JobCause | null;
}) {
  return (
    <>
      <h2>Configuration</h2>
      <ConfigTable config={job.config} />
      <h2>Metadata</h2>
      <table className="kv" data-testid="job-metadata">
        <tbody>
          {(
            [
              ['job id', job.jobId],
              ['tenant', job.tenant],
              ['name', job.name],
              ['project', job.project || '—'],
              ['owner', job.owner || '—'],
              ['framework', job.framework || '—'],
              ['world size', job.worldSize ?? '—'],
              ['status', cause ? `${status} — ${cause.text}` : status],
              ['started', fmtTime(job.startMs)],
              ['ended', fmtTime(job.endMs)],
              ['last sample', fmtTime(job.lastSampleMs)],
              ['tags', job.tags.join(', ') || '—'],
              ['metrics', metrics.join(', ')],
              ...Object.entries(job.metricKeys).map(([k, v]) => [`logged as ${v}`, k] as [string, string]),
            ] as [string, string | number][]
          ).map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function ConfigTable({ config }: { config: Record<string, unknown> }) {
  const entries = Object.entries(config).filter(([, v]) => v !== undefined && v !== null);
  if (entries.length === 0)
    return (
      <p className="muted">
        This job reported no configuration (pass <code>config=</code> to <code>tw.init</code>).
      </p>
    );
  return (
    <table className="kv" data-testid="job-config">
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th>{k}</th>
            <td>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
