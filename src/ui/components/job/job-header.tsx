import type { JobSummary } from '../../api';
import { fmtAge, fmtInt, fmtNumber } from '../../format';
import type { JobHealth } from '../../lib/alerts';
import type { JobCause } from '../../lib/causes';
import type { JobStatus } from '../../lib/types';
import { HealthBadges, StatusBadge, Tile, UtilBar } from '../widgets';

/** The job's name, status and health, its facts in one line, and its live numbers as tiles. */
export function JobHeader({
  job,
  status,
  cause,
  health,
  alertsUnknown,
  now,
}: {
  job: JobSummary;
  status: JobStatus;
  cause: JobCause | null;
  health: JobHealth | undefined;
  /** The alerts could not be read: health is unknown, not healthy. */
  alertsUnknown: boolean;
  now: number;
}) {
  return (
    <div className="page-head">
      <div>
        <h1 id="job-title">
          {job.name} <StatusBadge status={status} cause={cause} />{' '}
          <HealthBadges health={health} unknown={alertsUnknown} />
        </h1>
        <div className="sub">
          {job.jobId} · {job.project || 'no project'} · {job.owner || 'no owner'} ·{' '}
          {job.framework || 'unknown framework'} · world size {job.worldSize ?? '—'}
          {job.tags.length > 0 && (
            <>
              {' '}
              ·{' '}
              {job.tags.map((t) => (
                <span key={t} className="tag">
                  {t}
                </span>
              ))}
            </>
          )}
        </div>
      </div>
      <div className="tiles">
        <Tile label="step" value={fmtInt(job.step)} />
        <Tile
          label="loss"
          value={<span className={job.loss === 'NaN' ? 'bad' : ''}>{fmtNumber(job.loss, 4)}</span>}
        />
        <Tile
          label={`mean GPU utilization (${job.gpus} GPUs)`}
          value={<UtilBar ratio={job.meanGpuUtilization} />}
        />
        <Tile
          label="throughput"
          value={
            job.tokensPerSecond
              ? `${fmtNumber(job.tokensPerSecond)} tok/s`
              : job.samplesPerSecond
                ? `${fmtNumber(job.samplesPerSecond)}/s`
                : '—'
          }
        />
        <Tile label="running time" value={fmtAge(job.startMs, job.endMs ?? now)} />
      </div>
    </div>
  );
}
