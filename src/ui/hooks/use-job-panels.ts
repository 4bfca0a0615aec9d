import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import {
  fetchCurves,
  fetchHeatmap,
  fetchSeries,
  fetchSpread,
  fetchStragglers,
  type JobSummary,
} from '../api';
import type { JobFactsCell } from '../lib/job-facts';
import {
  type JobPanelsApi,
  JobPanelsLoader,
  type JobPanelsState,
  STRAGGLER_REFRESH_MS,
} from '../lib/job-panels';
import { isLive, type RangeSpec, resolveRange } from '../lib/time-range';
import { type LiveState, usePoll, useTicks } from './use-live';

const API: JobPanelsApi = { fetchCurves, fetchSpread, fetchHeatmap, fetchSeries, fetchStragglers };

/** Points per line chart and columns per heatmap that the window's width can show. */
function screenSizes(): { points: number; cols: number } {
  return {
    points: Math.max(200, Math.min(1200, Math.floor(window.innerWidth / 2))),
    cols: Math.max(200, Math.min(1400, Math.floor(window.innerWidth - 220))),
  };
}

export interface JobPanelsInput {
  readonly jobId: string;
  readonly range: RangeSpec;
  /** The job's newest answer (null before the first). */
  readonly job: JobSummary | null;
  readonly running: boolean;
  readonly paused: boolean;
  readonly facts: JobFactsCell;
  readonly factsVersion: number;
  readonly throughputMetric: string;
}

export interface JobPanelsView {
  readonly state: JobPanelsState;
  /** The tick stream's state, for the live indicator. */
  readonly liveState: LiveState;
}

/**
 * The panels of a job page (JobPanelsLoader): loaded for the range, then kept live from the job's tick
 * stream; the straggler scores asked again every ten seconds while live. Leaving the page or changing the
 * range aborts what is in flight.
 */
export function useJobPanels(input: JobPanelsInput): JobPanelsView {
  const { jobId, range, job, running, paused, facts, factsVersion, throughputMetric } = input;
  const loader = useMemo(
    () => new JobPanelsLoader({ jobId: facts.jobId, api: API, facts: () => facts.get(), sizes: screenSizes }),
    [facts],
  );
  useEffect(() => () => loader.close(), [loader]);
  const state = useSyncExternalStore(loader.subscribe, loader.getState);

  // A full load when the range, or what the job's answer says to fetch, changes. Only the whole-run range
  // needs the job (its start and end) before it can start; whether the job runs changes that range only,
  // as the live end of a running job becomes the job's end. The key says what a load depends on; the
  // job's other fields are read as they are when it starts.
  const needsJob = range.kind === 'run';
  const loadKey =
    needsJob && job === null
      ? null
      : JSON.stringify({ range, running: needsJob ? running : null, factsVersion });
  const jobRef = useRef(job);
  jobRef.current = job;
  // Declared after the job poll (useJobFacts), so that jobs/:id, which the throughput and per-GPU requests
  // wait for, is the first request the server answers.
  useEffect(() => {
    if (loadKey === null) return;
    const { range } = JSON.parse(loadKey) as { range: RangeSpec };
    void loader.loadWindow(resolveRange(range, Date.now(), jobRef.current ?? undefined));
  }, [loader, loadKey]);

  const live = isLive(range, running);
  // Straggler scores: with each load (from the step-time pass), then every ten seconds while live.
  usePoll((signal) => loader.refreshStragglers(signal), live && !paused ? STRAGGLER_REFRESH_MS : 0, [
    loader,
    live,
    paused,
  ]);

  // Live: new samples of this job → fetch only what is new for each panel.
  const liveState = useTicks(live && job ? { job_id: jobId } : null, paused, async () => {
    if (!job) return;
    await loader.liveTick(resolveRange(range, Date.now(), job), throughputMetric);
  });

  // For tests and the render benchmark (bench/ui-render.ts): the first view's data, then every panel's, is in.
  const loaded = state.loaded;
  useEffect(() => {
    if (loaded) document.body.dataset.jobView = '1';
    if (loaded === 'all') document.body.dataset.jobLoaded = '1';
    return () => {
      delete document.body.dataset.jobView;
      delete document.body.dataset.jobLoaded;
    };
  }, [loaded]);

  return { state, liveState };
}
