import { useMemo, useState } from 'react';
import { fetchJob, type JobSummary } from '../api';
import { JobFactsCell, jobFactsOf } from '../lib/job-facts';
import { usePoll } from './use-live';

export interface JobFactsView {
  /** The job's newest answer; null until this job (not the one shown before) answers. */
  readonly job: JobSummary | null;
  readonly metrics: readonly string[];
  /** The job's last answer failed (null once it answers again). */
  readonly error: unknown;
  /** What loads need from the job's answer; loads that start before it wait for it. */
  readonly facts: JobFactsCell;
  /** Bumped when the job's answer changes what a load fetches (e.g. a tokens/s metric appears): reload. */
  readonly factsVersion: number;
}

interface Answer {
  readonly jobId: string;
  readonly job: JobSummary | null;
  readonly metrics: readonly string[];
  readonly error: unknown;
}

/** One job's metadata and live numbers, polled every five seconds. */
export function useJobFacts(jobId: string): JobFactsView {
  const [answer, setAnswer] = useState<Answer>({ jobId, job: null, metrics: [], error: null });
  const [factsVersion, setFactsVersion] = useState(0);
  // One cell per job: a load of the previous job never waits on (or reads) this job's facts.
  const facts = useMemo(() => new JobFactsCell(jobId), [jobId]);
  usePoll(
    async (signal) => {
      try {
        const d = await fetchJob(jobId, signal);
        if (signal.aborted) return;
        setAnswer({ jobId, job: d.job, metrics: d.metrics, error: null });
        if (facts.update(jobFactsOf(d.job, d.metrics))) setFactsVersion((n) => n + 1);
      } catch (err) {
        if (!signal.aborted)
          setAnswer((a) => (a.jobId === jobId ? { ...a, error: err } : { ...EMPTY, jobId, error: err }));
      }
    },
    5000,
    [jobId, facts],
  );
  const mine = answer.jobId === jobId ? answer : { ...EMPTY, jobId };
  return { job: mine.job, metrics: mine.metrics, error: mine.error, facts, factsVersion };
}

const EMPTY: Answer = { jobId: '', job: null, metrics: [], error: null };
