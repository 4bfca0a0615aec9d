import { useState } from 'react';
import { type ApiError, createSilence, expireSilence } from '../api';
import { silenceMatchersFor } from '../lib/alerts';
import type { Alert } from '../lib/types';
import { usePoll } from './use-live';

const USER_KEY = 'trainwatch.user';
/** How long the one-click silence of an alert lasts. */
export const ONE_CLICK_MS = 2 * 3600_000;

/** Who creates silences from this browser: the name last typed into the silence form. */
export function silenceAuthor(): string {
  try {
    return localStorage.getItem(USER_KEY) || 'dashboard';
  } catch {
    return 'dashboard';
  }
}

export function rememberSilenceAuthor(name: string): void {
  try {
    localStorage.setItem(USER_KEY, name);
  } catch {
    // Storage may be off (private mode): the name is then asked again next time.
  }
}

/**
 * `load`'s answer, asked now and every `everyMs` (again at once when `deps` change): null until the first
 * answer; the error of the last failed try, cleared by the next answer.
 */
export function usePolled<T>(
  load: (signal: AbortSignal) => Promise<T>,
  everyMs: number,
  deps: readonly unknown[],
): { data: T | null; error: ApiError | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  usePoll(
    async (signal) => {
      try {
        const d = await load(signal);
        if (signal.aborted) return;
        setData(d);
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    everyMs,
    deps,
  );
  return { data, error };
}

export interface Toast {
  readonly text: string;
  readonly undo?: () => void;
}

export interface SilenceActions {
  readonly toast: Toast | null;
  readonly setToast: (t: Toast | null) => void;
  /** Bumped after every change to alerts or silences: the lists load again at once. */
  readonly refresh: number;
  readonly refreshed: () => void;
  /** Silences the alert for two hours with its identifying labels as matchers; the toast offers undo. */
  readonly silenceNow: (a: Alert) => Promise<void>;
  readonly expire: (id: string) => Promise<void>;
}

/** Creating and expiring silences from the alerts page, with a toast that says what happened. */
export function useSilenceActions(): SilenceActions {
  const [toast, setToast] = useState<Toast | null>(null);
  const [refresh, setRefresh] = useState(0);
  const refreshed = () => setRefresh((r) => r + 1);
  const silenceNow = async (a: Alert) => {
    const now = Date.now();
    const name = a.labels.alertname ?? a.name;
    try {
      const id = await createSilence({
        matchers: silenceMatchersFor(a.labels),
        startsAt: new Date(now).toISOString(),
        endsAt: new Date(now + ONE_CLICK_MS).toISOString(),
        createdBy: silenceAuthor(),
        comment: `Silenced from the dashboard: ${name}${a.labels.job_id ? ` on ${a.labels.job_id}` : ''}`,
      });
      setToast({
        text: `Silenced ${name} for 2 hours (silence ${id}).`,
        undo: async () => {
          await expireSilence(id);
          setToast({ text: `Silence ${id} expired.` });
          refreshed();
        },
      });
      refreshed();
    } catch (err) {
      setToast({ text: `Could not create the silence: ${(err as Error).message}` });
    }
  };
  const expire = async (id: string) => {
    try {
      await expireSilence(id);
      setToast({ text: `Silence ${id} expired.` });
    } catch (err) {
      setToast({ text: `Could not expire ${id}: ${(err as Error).message}` });
    }
    refreshed();
  };
  return { toast, setToast, refresh, refreshed, silenceNow, expire };
}
