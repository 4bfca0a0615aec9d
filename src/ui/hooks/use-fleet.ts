import { useEffect, useMemo, useRef, useState } from 'react';
import { type FleetJob, type FleetPage, type FleetPageQuery, fetchFleetPage } from '../api';
import { usePoll } from './use-live';

/** Rows fetched per request: the table asks for the blocks its visible rows fall in. */
export const FLEET_BLOCK = 100;
/** The most jobs named in one request's `ids` (the server's limit is higher; alerts name few jobs). */
const MAX_ALERT_JOBS = 1000;

export type FleetSelection = Omit<FleetPageQuery, 'limit' | 'offset'>;

export interface FleetRows {
  /** Null until the first answer. */
  readonly total: number | null;
  /** The job at a row index, once its block has loaded. */
  readonly at: (index: number) => FleetJob | undefined;
  /** The jobs of the loaded blocks in view. */
  readonly loaded: readonly FleetJob[];
  readonly summary: Omit<FleetPage, 'jobs'> | null;
  readonly error: unknown;
}

/**
 * One table's rows of the fleet, from the server a block at a time: the blocks covering rows
 * `first`..`last` are fetched when they come into view and refreshed every `refreshMs`. A new selection
 * (filters, sort) starts over; blocks of the same selection stay while their fresher copies load, so
 * scrolling back shows rows at once.
 */
export function useFleetRows(
  selection: FleetSelection,
  first: number,
  last: number,
  refreshMs: number,
): FleetRows {
  const key = JSON.stringify(selection);
  const [state, setState] = useState<{
    key: string;
    blocks: ReadonlyMap<number, FleetJob[]>;
    summary: Omit<FleetPage, 'jobs'> | null;
  }>({ key, blocks: new Map(), summary: null });
  const [error, setError] = useState<unknown>(null);
  const fromBlock = Math.floor(first / FLEET_BLOCK);
  const toBlock = Math.max(fromBlock, Math.floor(Math.max(0, last - 1) / FLEET_BLOCK));
  const selectionRef = useRef(selection);
  selectionRef.current = selection;

  usePoll(
    async (signal) => {
      try {
        const blocks: number[] = [];
        for (let b = fromBlock; b <= toBlock; b++) blocks.push(b);
        const pages = await Promise.all(
          blocks.map((b) =>
            fetchFleetPage({ ...selectionRef.current, limit: FLEET_BLOCK, offset: b * FLEET_BLOCK }, signal),
          ),
        );
        if (signal.aborted) return;
        setState((old) => {
          const next = new Map(old.key === key ? old.blocks : []);
          for (let i = 0; i < pages.length; i++) next.set(blocks[i]!, pages[i]!.jobs);
          const { jobs: _jobs, ...summary } = pages[pages.length - 1]!;
          // A total that shrank leaves blocks past the end: drop them.
          for (const b of next.keys()) if (b * FLEET_BLOCK >= Math.max(summary.total, 1)) next.delete(b);
          return { key, blocks: next, summary };
        });
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err);
      }
    },
    refreshMs,
    [key, fromBlock, toBlock],
  );

  const current = state.key === key ? state : null;
  return useMemo(() => {
    const blocks = current?.blocks ?? new Map<number, FleetJob[]>();
    const loaded: FleetJob[] = [];
    for (let b = fromBlock; b <= toBlock; b++) loaded.push(...(blocks.get(b) ?? []));
    return {
      total: current?.summary?.total ?? null,
      at: (i: number) => blocks.get(Math.floor(i / FLEET_BLOCK))?.[i % FLEET_BLOCK],
      loaded,
      summary: current?.summary ?? null,
      error,
    };
  }, [current, fromBlock, toBlock, error]);
}

/**
 * The jobs that alerts name (however deep they sit in the table): their GPUs count in "GPUs alerting", a
 * failed one's cause shows wherever it is, and the health order ranks them. Refreshed with the alerts.
 */
export function useAlertJobs(keys: readonly string[], tenant: string | undefined, refreshMs: number) {
  const list = useMemo(() => [...new Set(keys)].sort().slice(0, MAX_ALERT_JOBS), [keys]);
  const key = list.join(',');
  const [jobs, setJobs] = useState<readonly FleetJob[]>([]);
  usePoll(
    async (signal) => {
      if (list.length === 0) {
        setJobs([]);
        return;
      }
      try {
        const p = await fetchFleetPage({ tenant, ids: list, limit: MAX_ALERT_JOBS, sort: 'job_id' }, signal);
        if (!signal.aborted) setJobs(p.jobs);
      } catch {
        // The table reports fleet errors; these jobs only refine the totals.
      }
    },
    refreshMs,
    [key, tenant],
  );
  useEffect(() => {
    if (list.length === 0) setJobs([]);
  }, [list.length]);
  return jobs;
}
