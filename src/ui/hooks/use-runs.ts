/**
 * The runs page's data (pages/runs.tsx): one page of runs (or groups) for the view's API query, refreshed
 * every 30 s while runs train, as the fleet page does. A new query cancels the old one's request and timer.
 */
import { useEffect, useState } from 'react';
import { fetchRuns } from '../api';
import type { RunsResponse } from '../lib/runs';

const REFRESH_MS = 30_000;

export interface RunsView {
  /** The newest answer for the view; kept while a new query loads. Null before the first one. */
  readonly data: RunsResponse | null;
  /** The last load failed (null once one succeeds). */
  readonly error: unknown;
}

/** Loads `apiKey` (the view's API query string) now and every {@link REFRESH_MS}. */
export function useRuns(apiKey: string): RunsView {
  const [data, setData] = useState<RunsResponse | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    const load = () =>
      fetchRuns(new URLSearchParams(apiKey), abort.signal)
        .then((d) => {
          setData(d);
          setError(null);
        })
        .catch((err) => {
          if (!abort.signal.aborted) setError(err);
        });
    void load();
    // Summaries move while runs train: the view refreshes itself, as the fleet page does.
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [apiKey]);
  return { data, error };
}
