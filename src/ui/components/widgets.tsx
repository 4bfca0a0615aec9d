import type { ApiError, JobStatus } from '../api';
import { fmtPercent } from '../format';
import type { LiveState } from '../hooks/use-live';
import type { JobHealth } from '../lib/alerts';
import type { JobCause } from '../lib/causes';

/** The job's status, and for a failed job what killed it: "failed — out of memory on rank 7". */
export function StatusBadge({ status, cause }: { status: JobStatus; cause?: JobCause | null }) {
  return (
    <span className="status-line" data-testid="job-status" data-status={status}>
      <span className={`badge status-${status}`} data-status={status}>
        {status}
      </span>
      {cause && (
        <span className="status-cause" data-testid="status-cause" data-cause={cause.kind}>
          {' '}
          — {cause.text}
        </span>
      )}
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
      <span className="utilbar-track" aria-hidden="true">
        <span
          className="utilbar-fill"
          style={{ width: `${pct * 100}%`, background: `hsl(${hue} 70% 45%)` }}
        />
      </span>
      <span className="utilbar-label">{fmtPercent(ratio)}</span>
    </span>
  );
}

/** Active alerts of a job by severity: "● 1 critical ● 2 warning", or a quiet "healthy". */
export function HealthBadges({ health, unknown }: { health: JobHealth | undefined; unknown?: boolean }) {
  if (unknown)
    return (
      <span className="muted" title="The alerting API is not available">
        —
      </span>
    );
  const silenced =
    health && health.silenced > 0 ? (
      <span
        className="sev sev-silenced"
        data-testid="health-silenced"
        title={[...new Set(health.silencedAlerts.map((a) => a.labels.alertname ?? a.name))].join(', ')}
      >
        {health.silenced} silenced
      </span>
    ) : null;
  if (!health || health.alerts.length === 0)
    return (
      <span className="health-ok" data-health="ok">
        healthy{silenced && <> {silenced}</>}
      </span>
    );
  const parts: [string, number][] = [
    ['critical', health.critical],
    ['warning', health.warning],
    ['info', health.info],
    ['pending', health.pending],
  ];
  const names = [...new Set(health.alerts.map((a) => a.labels.alertname ?? a.name))].join(', ');
  return (
    <span
      className="health"
      data-health={health.worst >= 3 ? 'critical' : health.worst === 2 ? 'warning' : 'alerting'}
      title={names}
    >
      {parts
        .filter(([, n]) => n > 0)
        .map(([sev, n]) => (
          <span key={sev} className={`sev sev-${sev}`}>
            ● {n} {sev}
          </span>
        ))}
      {silenced}
    </span>
  );
}

export function Tile({
  label,
  value,
  tone,
  testId,
}: {
  label: string;
  value: React.ReactNode;
  tone?: 'bad' | 'warn' | 'good';
  testId?: string;
}) {
  return (
    <div className={`tile ${tone ? `tile-${tone}` : ''}`} data-testid={testId}>
      <div className="tile-value">{value}</div>
      <div className="tile-label">{label}</div>
    </div>
  );
}

export function LiveIndicator({ state, onToggle }: { state: LiveState; onToggle?: () => void }) {
  const text: Record<LiveState, string> = {
    off: 'not live',
    connecting: 'connecting…',
    live: 'live',
    retrying: 'reconnecting…',
    paused: 'paused',
  };
  return (
    <span className={`live live-${state}`} data-live={state}>
      <span className="live-text">{text[state]}</span>
      {onToggle && state !== 'off' && (
        <button type="button" className="btn btn-small" onClick={onToggle} aria-pressed={state === 'paused'}>
          {state === 'paused' ? '▶ Resume' : '❚❚ Pause'}
        </button>
      )}
    </span>
  );
}

/**
 * An error that says what to do: a missing route means the feature is not on this server (yet); a 401 means
 * a token is needed; anything else shows the server's message.
 */
export function ErrorBox({
  error,
  what,
  missingHint,
}: {
  error: unknown;
  what: string;
  missingHint?: string;
}) {
  const e = error as ApiError & Error;
  let hint = 'Check that trainwatch is running and reachable, then reload.';
  if (e?.missingRoute)
    hint =
      missingHint ??
      'This server does not offer this API; upgrade trainwatch or enable the role that serves it.';
  else if (e?.status === 401)
    hint =
      'Paste an API token (the key button at the top right), or ask an admin for one: trainwatch token create.';
  else if (e?.status === 403)
    hint = 'Your token does not allow this; ask an admin for a token with the right scope.';
  else if (e?.status === 404)
    hint = 'The server has no such thing: check the id or the link (it may belong to another tenant).';
  else if (e?.status === 400)
    hint = 'The request was refused; the message above says which parameter was wrong.';
  return (
    <div className="error" role="alert" data-testid="error">
      <strong>Cannot load {what}.</strong> {e?.message ?? String(error)}
      <div className="hint">{hint}</div>
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: React.ReactNode }) {
  return (
    <div className="empty">
      <h2>{title}</h2>
      {children}
    </div>
  );
}

/** A form's or an action's error, announced when it appears; nothing when there is none. */
export function FormError({ message }: { message: string | null | undefined }) {
  if (!message) return null;
  return (
    <p className="bad" role="alert">
      {message}
    </p>
  );
}
