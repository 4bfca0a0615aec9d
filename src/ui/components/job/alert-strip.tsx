import type { ApiError } from '../../api';
import { fmtAge } from '../../format';
import type { AlertGroup } from '../../lib/alert-groups';
import { alertLocation, alertStart, isSilenced } from '../../lib/alerts';
import { fmtSpan, type JobCause } from '../../lib/causes';
import { SEVERITY_COLORS } from '../../lib/colors';
import type { Alert } from '../../lib/types';
import { onLinkClick } from '../../router';

/** The job's alerts under their likely causes, the cause of the failure first; nothing when it has none. */
export function JobAlertStrip({
  groups,
  cause,
  error,
  now,
}: {
  groups: readonly AlertGroup[];
  cause: JobCause | null;
  error: ApiError | null;
  now: number;
}) {
  if (groups.length === 0 && !error) return null;
  return (
    <section className="alert-strip" data-testid="job-alerts" aria-label="Alerts of this job">
      {error ? (
        <span className="muted">
          Alerts unavailable: {error.missingRoute ? 'this server has no alerting API yet' : error.message}
        </span>
      ) : (
        groups.map((g) => (
          <div
            key={`${g.cause.fingerprint}/${g.cause.activeAtMs}`}
            className="alert-group"
            data-testid="alert-group"
            data-cause-of-failure={g.cause === cause?.alert ? '1' : undefined}
          >
            <AlertChip a={g.cause} now={now} />
            {g.cause === cause?.alert && <span className="alert-why">cause of the failure</span>}
            {g.consequences.length > 0 && (
              <details className="alert-consequences">
                <summary>
                  {g.consequences.length} related alert{g.consequences.length === 1 ? '' : 's'}
                </summary>
                {g.consequences.map((a) => (
                  <AlertChip key={`${a.fingerprint}/${a.activeAtMs}`} a={a} now={now} />
                ))}
              </details>
            )}
          </div>
        ))
      )}
    </section>
  );
}

/** One alert: its name, place, state and how long it lasted; silenced ones say so. */
function AlertChip({ a, now }: { a: Alert; now: number }) {
  const color = SEVERITY_COLORS[a.labels.severity ?? ''];
  const where = alertLocation(a.labels);
  return (
    <a
      className={`alert-chip alert-${a.state}`}
      style={{ borderColor: color }}
      href={`/alerts?fingerprint=${a.fingerprint}`}
      onClick={onLinkClick}
      title={a.annotations.description ?? a.annotations.summary ?? ''}
      data-alertname={a.labels.alertname ?? a.name}
      data-state={a.state}
    >
      <span className="swatch" style={{ background: color }} />
      {a.labels.alertname ?? a.name}
      {where && <span className="muted"> · {where}</span>}
      <span className="muted">
        {' '}
        ·{' '}
        {a.resolvedAtMs !== null
          ? `resolved after ${fmtSpan(a.resolvedAtMs - alertStart(a))}`
          : `${a.state} since ${fmtAge(alertStart(a), now)}`}
      </span>
      {isSilenced(a) && <span className="muted"> · silenced</span>}
    </a>
  );
}
