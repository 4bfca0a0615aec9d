/**
 * The curve charts' smoothing slider and log-scale switch, for the job page's toolbar and the compare page's:
 * both keep them in the URL (`smooth`, `log`), so a view is its link.
 */
import type { SetParams } from './job/job-toolbar';

export function CurveOptions({
  smooth,
  logY,
  setParams,
}: {
  smooth: number;
  logY: boolean;
  setParams: SetParams;
}) {
  return (
    <>
      <label className="check slider">
        smoothing
        <input
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={smooth}
          aria-label="Smoothing (exponential moving average weight)"
          onChange={(e) => setParams({ smooth: Number(e.target.value) > 0 ? e.target.value : null })}
        />
        <span className="small mono">{smooth.toFixed(2)}</span>
      </label>
      <label className="check">
        <input
          type="checkbox"
          checked={logY}
          onChange={(e) => setParams({ log: e.target.checked ? '1' : null })}
        />{' '}
        log scale
      </label>
    </>
  );
}
