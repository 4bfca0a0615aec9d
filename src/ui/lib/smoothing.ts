/**
 * Exponential moving average as TensorBoard's smoothing slider does it, debiased so that the first points
 * are not dragged towards zero: with weight w, s_i = w·s_{i-1} + (1−w)·x_i, divided by 1 − w^n.
 * Null and non-finite points are passed through and do not enter the average (a NaN loss stays visible).
 */
export function emaSmooth(ys: readonly (number | null)[], weight: number): (number | null)[] {
  if (!(weight > 0)) return ys.slice();
  const w = Math.min(weight, 0.999);
  const out: (number | null)[] = new Array(ys.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      out[i] = y ?? null;
      continue;
    }
    last = last * w + (1 - w) * y;
    n++;
    out[i] = last / (1 - w ** n);
  }
  return out;
}
