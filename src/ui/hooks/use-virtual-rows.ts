import { useCallback, useEffect, useRef, useState } from 'react';

/**
 * Windowing for a long table: which of `count` rows of `rowHeight` px are in view of the scroll container
 * (plus `overscan` rows either side), so that a table of 100,000 jobs renders a few dozen `<tr>`s. The
 * container holds a spacer `totalHeight` tall; the table is placed at `offset`. Rows are measured after
 * rendering (`measure`), so the estimate only has to be close.
 */
export function useVirtualRows(count: number, estimatedRowHeight: number, overscan = 10) {
  const [el, setEl] = useState<HTMLDivElement | null>(null);
  const [view, setView] = useState({ top: 0, height: 640 });
  const [rowHeight, setRowHeight] = useState(estimatedRowHeight);
  const frame = useRef(0);

  useEffect(() => {
    if (!el) return;
    const update = () => {
      cancelAnimationFrame(frame.current);
      frame.current = requestAnimationFrame(() => setView({ top: el.scrollTop, height: el.clientHeight }));
    };
    setView({ top: el.scrollTop, height: el.clientHeight });
    el.addEventListener('scroll', update, { passive: true });
    const resize = new ResizeObserver(update);
    resize.observe(el);
    return () => {
      cancelAnimationFrame(frame.current);
      el.removeEventListener('scroll', update);
      resize.disconnect();
    };
  }, [el]);

  /**
   * Called with a rendered row: adopts its height when it is taller than the estimate. Only ever taller:
   * rows of different heights (a placeholder, a loaded row) would otherwise move the window back and forth.
   */
  const measure = useCallback((row: HTMLElement | null) => {
    if (!row) return;
    const h = row.getBoundingClientRect().height;
    if (h > 0) setRowHeight((old) => (h > old + 0.5 ? h : old));
  }, []);

  const first = Math.max(0, Math.min(count, Math.floor(view.top / rowHeight) - overscan));
  const last = Math.max(first, Math.min(count, Math.ceil((view.top + view.height) / rowHeight) + overscan));
  /** Scrolls so that row `index` is at the top. */
  const scrollTo = useCallback(
    (index: number) => {
      if (el) el.scrollTop = index * rowHeight;
    },
    [el, rowHeight],
  );
  return {
    containerRef: setEl,
    first,
    last,
    offset: first * rowHeight,
    totalHeight: count * rowHeight,
    rowHeight,
    measure,
    scrollTo,
  };
}
