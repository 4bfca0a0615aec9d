import type { LiveState } from '../../hooks/use-live';
import type { RangeSpec } from '../../lib/time-range';
import { rangeParams } from '../../lib/time-range';
import { onLinkClick } from '../../router';
import type { XMode } from '../chart';
import { CurveOptions } from '../curve-options';
import { RangePicker } from '../range-picker';
import { LiveIndicator } from '../widgets';

export type SetParams = (patch: Record<string, string | null | undefined>, push?: boolean) => void;

/** Range, x axis of the curves, smoothing, log scale, compare and the live switch: all kept in the URL. */
export function JobToolbar({
  jobId,
  range,
  resolved,
  xMode,
  smooth,
  logY,
  liveState,
  paused,
  setParams,
}: {
  jobId: string;
  range: RangeSpec;
  resolved: { start: number; end: number };
  xMode: XMode;
  smooth: number;
  logY: boolean;
  /** 'off' when the range does not follow now. */
  liveState: LiveState;
  paused: boolean;
  setParams: SetParams;
}) {
  return (
    <div className="toolbar">
      <RangePicker value={range} onChange={(r) => setParams(rangeParams(r))} allowRun resolved={resolved} />
      <fieldset className="segmented" aria-label="X axis of the training curves">
        <button type="button" aria-pressed={xMode === 'time'} onClick={() => setParams({ x: null })}>
          Time
        </button>
        <button type="button" aria-pressed={xMode === 'step'} onClick={() => setParams({ x: 'step' })}>
          Step
        </button>
      </fieldset>
      <CurveOptions smooth={smooth} logY={logY} setParams={setParams} />
      <a
        className="btn btn-small"
        href={`/compare?base=${encodeURIComponent(jobId)}&previous=5`}
        onClick={onLinkClick}
      >
        Compare with previous runs
      </a>
      <span className="spacer" />
      <LiveIndicator state={liveState} onToggle={() => setParams({ paused: paused ? null : '1' })} />
    </div>
  );
}
