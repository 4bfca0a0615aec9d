import { useEffect, useRef, useState } from 'react';
import { subscribeTicks } from '../api';

export type LiveState = 'off' | 'connecting' | 'live' | 'retrying' | 'paused';

/**
 * Calls `onNew` when new samples of the selection arrive (the tick stream), at most once per `minGapMs`,
 * and never while a previous call is still running: a slow refresh cannot pile up. `params` null or `paused`
 * closes the stream. Returns the stream's state for the live indicator.
 */
export function useTicks(
  params: Record<string, string | readonly string[] | undefined> | null,
  paused: boolean,
  onNew: (newest: number | null) => Promise<void> | void,
  minGapMs = 250,
): LiveState {
  const [state, setState] = useState<LiveState>('off');
  const handler = useRef(onNew);
  handler.current = onNew;
  const key = params ? JSON.stringify(params) : null;
  useEffect(() => {
    if (key === null) {
      setState('off');
      return;
    }
    if (paused) {
      setState('paused');
      return;
    }
    setState('connecting');
    let running = false;
    let pending: number | null | undefined;
    let last = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const fire = async () => {
      if (closed || running || pending === undefined) return;
      const wait = last + minGapMs - Date.now();
      if (wait > 0) {
        timer ??= setTimeout(() => {
          timer = undefined;
          void fire();
        }, wait);
        return;
      }
      const t = pending;
      pending = undefined;
      running = true;
      last = Date.now();
      try {
        await handler.current(t);
      } catch {
        // The refresh shows its own error; the stream goes on.
      } finally {
        running = false;
      }
      if (pending !== undefined) void fire();
    };
    const close = subscribeTicks(
      JSON.parse(key) as Record<string, string>,
      (t) => {
        pending = t;
        void fire();
      },
      (s) => setState(s === 'open' ? 'live' : 'retrying'),
    );
    return () => {
      closed = true;
      if (timer) clearTimeout(timer);
      close();
    };
  }, [key, paused, minGapMs]);
  return state;
}

/** Runs `load` now and every `everyMs`, aborting the previous run's requests when the inputs change. */
export function usePoll(
  load: (signal: AbortSignal) => Promise<void>,
  everyMs: number,
  deps: readonly unknown[],
): void {
  const fn = useRef(load);
  fn.current = load;
  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        await fn.current(abort.signal);
      } catch {
        // load reports its own errors
      }
      if (!abort.signal.aborted && everyMs > 0) timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      abort.abort();
      if (timer) clearTimeout(timer);
    };
  }, [everyMs, ...deps]);
}

/** Now, refreshed every `everyMs` (for ages and relative ranges). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}
