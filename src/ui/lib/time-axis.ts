/**
 * One time axis for every chart of a page: the same tick times and labels from the same x-range and plot
 * width, whether uPlot draws the chart or a canvas heatmap does, so that a moment sits in the same pixel
 * column everywhere. DOM-free, so unit tests run it in Node.
 */

/** Left and right gutters (CSS px) around the plot area of every time chart of a page. */
export interface PlotGutters {
  /** Room for the y axis labels, or a heatmap's row labels. */
  readonly left: number;
  /** At least a scrollbar's width, so that a heatmap with scrolling rows keeps its plot in view. */
  readonly right: number;
}

/** The job page's gutters: the heatmaps' row labels (`rank 15 · node-03/gpu7`) fit in the left one. */
export const JOB_GUTTERS: PlotGutters = { left: 150, right: 18 };

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Tick spacings, smallest first: a tick lands on a whole multiple of one of these (in local time). */
const INCREMENTS = [
  SECOND,
  2 * SECOND,
  5 * SECOND,
  10 * SECOND,
  15 * SECOND,
  30 * SECOND,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
  30 * DAY,
];

/** Labels this far apart at least (CSS px): `12:34:56` is about 50 px wide at 11 px. */
export const MIN_TICK_SPACING_PX = 90;

export interface TimeTicks {
  /** Tick times (ms), ascending, within [start, end]. */
  readonly t: readonly number[];
  readonly labels: readonly string[];
  /** The spacing chosen (ms). */
  readonly step: number;
}

/** The local time zone's offset (ms to add to UTC) at `t`. */
function localOffset(t: number): number {
  return -new Date(t).getTimezoneOffset() * MINUTE;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A tick's label: seconds only when ticks are seconds apart, the date when they are days apart. */
export function tickLabel(t: number, step: number): string {
  const d = new Date(t);
  if (step >= DAY) return `${MONTHS[d.getMonth()]} ${d.getDate()}`;
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return step < MINUTE ? `${hm}:${pad(d.getSeconds())}` : hm;
}

/**
 * Ticks for [start, end] ms over a plot `widthPx` wide: the smallest spacing that keeps labels
 * MIN_TICK_SPACING_PX apart, on whole multiples of it in local time (12:00, 12:15 …, midnights for days).
 */
export function timeTicks(start: number, end: number, widthPx: number): TimeTicks {
  if (!(end > start) || !(widthPx > 0)) return { t: [], labels: [], step: 0 };
  const minStep = ((end - start) * MIN_TICK_SPACING_PX) / widthPx;
  const step = INCREMENTS.find((i) => i >= minStep) ?? Math.ceil(minStep / DAY) * DAY;
  const t: number[] = [];
  const labels: string[] = [];
  const offset = localOffset(start);
  let k = Math.ceil((start + offset) / step) * step - offset;
  // Guard: at most a few hundred ticks whatever the input.
  for (let n = 0; k <= end && n < 1000; n++, k += step) {
    t.push(k);
    labels.push(tickLabel(k, step));
  }
  return { t, labels, step };
}
