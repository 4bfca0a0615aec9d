import type { JobStatus } from '../api';
import { fmtPercent } from '../format';

export function StatusBadge({ status }: { status: JobStatus }) {
  return (
    <span className={`badge status-${status}`} data-status={status}>
      {status}
    </span>
  );
}

/** A bar whose colour goes from red (idle) to green (busy): idle GPUs should stand out at a glance. */
export function UtilBar({ ratio }: { ratio: number | null }) {
  if (ratio === null || !Number.isFinite(ratio)) return <span className="muted">—</span>;
  const pct = Math.max(0, Math.min(1, ratio));
  const hue = Math.round(pct * 120);
  return (
    <span className="utilbar" title={fmtPercent(ratio)}>
      <span className="utilbar-fill" style={{ width: `${pct * 100}%`, background: `hsl(${hue} 70% 45%)` }} />
      <span className="utilbar-label">{fmtPercent(ratio)}</span>
    </span>
  );
}
