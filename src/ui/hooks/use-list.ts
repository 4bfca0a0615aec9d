/**
 * A list the settings pages load from the server: loaded on mount and whenever `key` changes (a filter), reloaded
 * on demand (after a change the page made); errors are kept for the page to show, never thrown.
 */
import { useCallback, useEffect, useRef, useState } from 'react';

export function useList<T>(load: (signal: AbortSignal) => Promise<T[]>, key?: unknown) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` asks for a reload, `key` for a new filter
  useEffect(() => {
    const abort = new AbortController();
    loadRef
      .current(abort.signal)
      .then((x) => {
        setItems(x);
        setError(null);
      })
      .catch((err: Error) => {
        if (!abort.signal.aborted) setError(err.message);
      });
    return () => abort.abort();
  }, [version, key]);
  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { items, error, reload };
}
