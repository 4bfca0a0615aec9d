import { useEffect, useId, useRef, useState } from 'react';
import { fromLocalInput, RANGE_PRESETS, type RangeSpec, toLocalInput } from '../lib/time-range';

/**
 * Time range: presets (last 5 minutes … 30 days), the whole run on a job page, or absolute from/to.
 * Keyboard: a native select and datetime inputs.
 */
export function RangePicker({
  value,
  onChange,
  allowRun = false,
  resolved,
}: {
  value: RangeSpec;
  onChange: (r: RangeSpec) => void;
  allowRun?: boolean;
  /** The concrete range now, to prefill the absolute inputs. */
  resolved: { start: number; end: number };
}) {
  const id = useId();
  const [custom, setCustom] = useState(value.kind === 'absolute');
  const [from, setFrom] = useState(toLocalInput(resolved.start));
  const [to, setTo] = useState(toLocalInput(resolved.end));
  const first = useRef(true);
  useEffect(() => {
    if (value.kind === 'absolute') {
      setFrom(toLocalInput(value.from));
      setTo(toLocalInput(value.to));
      setCustom(true);
    } else if (!first.current) setCustom(false);
    first.current = false;
  }, [value]);
  const selected = value.kind === 'relative' ? value.key : value.kind === 'run' ? 'run' : 'custom';
  const error =
    custom && (fromLocalInput(from) ?? 0) >= (fromLocalInput(to) ?? 0)
      ? 'the start must be before the end'
      : null;
  return (
    <div className="range-picker">
      <label htmlFor={`${id}-range`} className="sr-only">
        Time range
      </label>
      <select
        id={`${id}-range`}
        value={selected}
        data-testid="range-select"
        onChange={(e) => {
          const v = e.target.value;
          if (v === 'custom') {
            setFrom(toLocalInput(resolved.start));
            setTo(toLocalInput(resolved.end));
            setCustom(true);
            return;
          }
          setCustom(false);
          if (v === 'run') onChange({ kind: 'run' });
          else {
            const p = RANGE_PRESETS.find((x) => x.key === v)!;
            onChange({ kind: 'relative', key: p.key, ms: p.ms });
          }
        }}
      >
        {allowRun && <option value="run">Whole run</option>}
        {RANGE_PRESETS.map((p) => (
          <option key={p.key} value={p.key}>
            {p.label}
          </option>
        ))}
        <option value="custom">Absolute range…</option>
      </select>
      {custom && (
        <form
          className="range-custom"
          onSubmit={(e) => {
            e.preventDefault();
            const f = fromLocalInput(from);
            const t = fromLocalInput(to);
            if (f !== null && t !== null && f < t) onChange({ kind: 'absolute', from: f, to: t });
          }}
        >
          <label>
            from <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
          </label>
          <label>
            to <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
          </label>
          <button type="submit" className="btn btn-small" disabled={error !== null}>
            Apply
          </button>
          {error && <span className="bad small">{error}</span>}
        </form>
      )}
    </div>
  );
}
