import { useEffect, useMemo, useState } from 'react';
import { fetchJobs, type JobSummary } from '../api';
import { StatusBadge, UtilBar } from '../components/widgets';
import { fmtAge, fmtInt, fmtNumber, fmtPercent } from '../format';
import { onLinkClick } from '../router';

const REFRESH_MS = 2000;

/** Every job of the tenant with its status and live numbers; refreshed every two seconds. */
export function FleetPage() {
  const [jobs, setJobs] = useState<JobSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [search, setSearch] = useState(() => new URLSearchParams(location.search).get('q') ?? '');

  useEffect(() => {
    let cancelled = false;
    const abort = new AbortController();
    const load = async () => {
      try {
        const data = await fetchJobs(abort.signal);
        if (!cancelled) {
          setJobs(data.jobs);
          setError(null);
        }
      } catch (err) {
        if (!cancelled && !abort.signal.aborted) setError((err as Error).message);
      }
    };
    void load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      cancelled = true;
      abort.abort();
      clearInterval(timer);
    };
  }, []);

  useEffect(() => {
    const url = new URL(location.href);
    if (search) url.searchParams.set('q', search);
    else url.searchParams.delete('q');
    history.replaceState(null, '', url);
  }, [search]);

  const shown = useMemo(() => {
    if (!jobs) return [];
    const q = search.trim().toLowerCase();
    return q
      ? jobs.filter((j) =>
          [j.jobId, j.name, j.project, j.owner, ...j.tags].some((f) => f.toLowerCase().includes(q)),
        )
      : jobs;
  }, [jobs, search]);

  const totals = useMemo(() => {
    const running = (jobs ?? []).filter((j) => j.status === 'running');
    const gpus = running.reduce((a, j) => a + j.gpus, 0);
    const busy = running.reduce((a, j) => a + j.gpus * (j.meanGpuUtilization ?? 0), 0);
    return { running: running.length, gpus, util: gpus ? busy / gpus : null, total: jobs?.length ?? 0 };
  }, [jobs]);

  return (
    <section className="page">
      <div className="page-head">
        <h1>Fleet</h1>
        <div className="tiles">
          <Tile label="running jobs" value={String(totals.running)} />
          <Tile label="jobs" value={String(totals.total)} />
          <Tile label="GPUs in use" value={String(totals.gpus)} />
          <Tile label="mean GPU utilization" value={fmtPercent(totals.util)} />
        </div>
      </div>
      <div className="toolbar">
        <input
          type="search"
          placeholder="Search jobs, projects, owners, tags…"
          aria-label="Search jobs"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
      </div>
      {error && <div className="error">Cannot load jobs: {error}. Is trainwatch running?</div>}
      {jobs === null && !error && <div className="empty">Loading jobs…</div>}
      {jobs !== null && jobs.length === 0 && (
        <div className="empty">
          <h2>No jobs yet</h2>
          <p>
            Send metrics with the Python SDK (<code>tw.init()</code>), the agent, or Prometheus remote-write,
            or run <code>trainwatch demo</code> for a simulated fleet.
          </p>
        </div>
      )}
      {shown.length > 0 && (
        <table className="jobs" data-testid="jobs-table">
          <thead>
            <tr>
              <th>Job</th>
              <th>Status</th>
              <th>Project</th>
              <th>Owner</th>
              <th className="num">GPUs</th>
              <th>GPU utilization</th>
              <th className="num">Step</th>
              <th className="num">Loss</th>
              <th className="num">Throughput</th>
              <th className="num">Age</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((j) => (
              <tr key={`${j.tenant}/${j.jobId}`} data-job-id={j.jobId}>
                <td>
                  <a href={`/jobs/${encodeURIComponent(j.jobId)}`} onClick={onLinkClick} className="job-link">
                    {j.name !== j.jobId ? j.name : j.jobId}
                  </a>
                  <div className="sub">{j.jobId}</div>
                </td>
                <td>
                  <StatusBadge status={j.status} />
                </td>
                <td>{j.project || '—'}</td>
                <td>{j.owner || '—'}</td>
                <td className="num">{j.gpus || j.worldSize || '—'}</td>
                <td>
                  <UtilBar ratio={j.meanGpuUtilization} />
                </td>
                <td className="num">{fmtInt(j.step)}</td>
                <td className={`num ${j.loss === 'NaN' ? 'bad' : ''}`}>{fmtNumber(j.loss, 4)}</td>
                <td className="num">
                  {j.tokensPerSecond
                    ? `${fmtNumber(j.tokensPerSecond)} tok/s`
                    : j.samplesPerSecond
                      ? `${fmtNumber(j.samplesPerSecond)} samples/s`
                      : '—'}
                </td>
                <td className="num">{fmtAge(j.startMs, j.endMs ?? undefined)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Tile({ label, value }: { label: string; value: string }) {
  return (
    <div className="tile">
      <div className="tile-value">{value}</div>
      <div className="tile-label">{label}</div>
    </div>
  );
}
