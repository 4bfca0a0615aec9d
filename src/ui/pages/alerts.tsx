import { useEffect, useMemo, useRef, useState } from 'react';
import {
  type ApiError,
  createSilence,
  type Detector,
  expireSilence,
  fetchAlertHistory,
  fetchDetectors,
  fetchRules,
  fetchSilences,
  type RuleGroup,
} from '../api';
import { AlertPlace } from '../components/node-link';
import { RangePicker } from '../components/range-picker';
import { Empty, ErrorBox } from '../components/widgets';
import { fmtAge, fmtNumber, fmtTime } from '../format';
import { usePoll } from '../hooks/use-live';
import { type AlertGroup, groupAlerts } from '../lib/alert-groups';
import { alertStart, isSilenced, matchersMatch, severityLevel, silenceMatchersFor } from '../lib/alerts';
import { parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import type { Alert, Matcher, Silence } from '../lib/types';
import { onLinkClick, useSearchParams } from '../router';

type Tab = 'alerts' | 'silences' | 'rules' | 'detectors';
const TABS: { key: Tab; label: string }[] = [
  { key: 'alerts', label: 'Alerts' },
  { key: 'silences', label: 'Silences' },
  { key: 'rules', label: 'Rules' },
  { key: 'detectors', label: 'Detectors' },
];
const USER_KEY = 'trainwatch.user';
const ONE_CLICK_MS = 2 * 3600_000;
const MISSING =
  'The alerting API is not on this server yet: alerts, silences, rules and detectors appear here once trainwatch runs its alerting role.';

function user(): string {
  try {
    return localStorage.getItem(USER_KEY) || 'dashboard';
  } catch {
    return 'dashboard';
  }
}

/**
 * Alerts (firing, pending, and resolved with their history), silences (one click from an alert, with the
 * alert's labels as matchers), alerting rules and streaming detectors with their state and last evaluation.
 */
export function AlertsPage() {
  const [params, setParams] = useSearchParams();
  const tab = (TABS.find((t) => t.key === params.get('tab'))?.key ?? 'alerts') as Tab;
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '24h', ms: 86_400_000 }, 2 * 3600_000);
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [alertsError, setAlertsError] = useState<ApiError | null>(null);
  const [silences, setSilences] = useState<Silence[] | null>(null);
  const [silencesError, setSilencesError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<{ matchers: Matcher[]; comment: string } | null>(null);
  const [toast, setToast] = useState<{ text: string; undo?: () => void } | null>(null);
  const [refresh, setRefresh] = useState(0);
  const w = resolveRange(range, Date.now());

  usePoll(
    async (signal) => {
      try {
        setAlerts(await fetchAlertHistory({ since: w.start }, signal));
        setAlertsError(null);
      } catch (err) {
        if (!signal.aborted) setAlertsError(err as ApiError);
      }
    },
    5000,
    [JSON.stringify(range), refresh],
  );
  usePoll(
    async (signal) => {
      try {
        setSilences(await fetchSilences(signal));
        setSilencesError(null);
      } catch (err) {
        if (!signal.aborted) setSilencesError(err as ApiError);
      }
    },
    10_000,
    [refresh],
  );

  const silenceNow = async (a: Alert) => {
    const matchers = silenceMatchersFor(a.labels);
    const now = Date.now();
    try {
      const id = await createSilence({
        matchers,
        startsAt: new Date(now).toISOString(),
        endsAt: new Date(now + ONE_CLICK_MS).toISOString(),
        createdBy: user(),
        comment: `Silenced from the dashboard: ${a.labels.alertname ?? a.name}${a.labels.job_id ? ` on ${a.labels.job_id}` : ''}`,
      });
      setToast({
        text: `Silenced ${a.labels.alertname ?? a.name} for 2 hours (silence ${id}).`,
        undo: async () => {
          await expireSilence(id);
          setToast({ text: `Silence ${id} expired.` });
          setRefresh((r) => r + 1);
        },
      });
      setRefresh((r) => r + 1);
    } catch (err) {
      setToast({ text: `Could not create the silence: ${(err as Error).message}` });
    }
  };

  return (
    <section className="page" aria-labelledby="alerts-title">
      <div className="page-head">
        <h1 id="alerts-title">Alerts</h1>
      </div>
      <div className="toolbar">
        <div className="tabs" role="tablist" aria-label="Alerting">
          {TABS.map((t) => (
            <button
              key={t.key}
              type="button"
              role="tab"
              aria-selected={tab === t.key}
              onClick={() => setParams({ tab: t.key === 'alerts' ? null : t.key })}
            >
              {t.label}
            </button>
          ))}
        </div>
        <span className="spacer" />
        {tab === 'alerts' && (
          <RangePicker value={range} onChange={(r) => setParams(rangeParams(r))} resolved={w} />
        )}
        {tab === 'silences' && (
          <button
            type="button"
            className="btn"
            onClick={() =>
              setEditing({
                matchers: [{ name: 'alertname', value: '', isRegex: false, isEqual: true }],
                comment: '',
              })
            }
          >
            New silence
          </button>
        )}
      </div>
      {toast && (
        <div className="toast" role="status" data-testid="toast">
          {toast.text}
          {toast.undo && (
            <button type="button" className="btn btn-small" onClick={toast.undo}>
              Undo
            </button>
          )}
          <button type="button" className="chip-x" aria-label="Dismiss" onClick={() => setToast(null)}>
            ×
          </button>
        </div>
      )}
      {tab === 'alerts' && (
        <AlertList
          alerts={alerts}
          error={alertsError}
          silences={silences ?? []}
          highlight={params.get('fingerprint')}
          stateFilter={params.get('state') ?? 'active'}
          onState={(s) => setParams({ state: s === 'active' ? null : s })}
          onSilence={silenceNow}
          onEdit={(a) =>
            setEditing({
              matchers: silenceMatchersFor(a.labels),
              comment: `Silenced from the dashboard: ${a.labels.alertname ?? a.name}`,
            })
          }
        />
      )}
      {tab === 'silences' && (
        <SilenceList
          silences={silences}
          error={silencesError}
          onExpire={async (id) => {
            try {
              await expireSilence(id);
              setToast({ text: `Silence ${id} expired.` });
            } catch (err) {
              setToast({ text: `Could not expire ${id}: ${(err as Error).message}` });
            }
            setRefresh((r) => r + 1);
          }}
        />
      )}
      {tab === 'rules' && <RulesList />}
      {tab === 'detectors' && <DetectorList />}
      {editing && (
        <SilenceForm
          initial={editing}
          onClose={() => setEditing(null)}
          onCreated={(id) => {
            setEditing(null);
            setToast({ text: `Created silence ${id}.` });
            setRefresh((r) => r + 1);
          }}
        />
      )}
    </section>
  );
}

function AlertList({
  alerts,
  error,
  silences,
  highlight,
  stateFilter,
  onState,
  onSilence,
  onEdit,
}: {
  alerts: Alert[] | null;
  error: ApiError | null;
  silences: Silence[];
  highlight: string | null;
  stateFilter: string;
  onState: (s: string) => void;
  onSilence: (a: Alert) => void;
  onEdit: (a: Alert) => void;
}) {
  const now = Date.now();
  const rowRef = useRef<HTMLTableRowElement>(null);
  // Silenced alerts are counted apart: a silence is someone saying "known, leave it".
  const counts = useMemo(() => {
    const c = { firing: 0, pending: 0, resolved: 0, silenced: 0 };
    for (const a of alerts ?? []) {
      if (a.state !== 'resolved' && isSilenced(a)) c.silenced++;
      else c[a.state]++;
    }
    return c;
  }, [alerts]);
  const [opened, setOpened] = useState<ReadonlySet<string>>(new Set());
  const shown = useMemo(
    () =>
      (alerts ?? [])
        .filter((a) =>
          stateFilter === 'all'
            ? true
            : stateFilter === 'active'
              ? a.state !== 'resolved'
              : a.state === stateFilter,
        )
        .sort(
          (a, b) =>
            Number(a.state === 'resolved') - Number(b.state === 'resolved') ||
            severityLevel(b.labels.severity) - severityLevel(a.labels.severity) ||
            alertStart(b) - alertStart(a),
        ),
    [alerts, stateFilter],
  );
  // Related alerts under their likely cause (alert-groups.ts); groups in the order of their causes above.
  const groups = useMemo(() => {
    const order = new Map(shown.map((a, i) => [a, i]));
    return groupAlerts(shown).sort((a, b) => order.get(a.cause)! - order.get(b.cause)!);
  }, [shown]);
  const groupKey = (g: AlertGroup) => `${g.cause.fingerprint}/${g.cause.activeAtMs}/${g.cause.state}`;
  const isOpen = (g: AlertGroup) =>
    opened.has(groupKey(g)) || g.consequences.some((c) => c.fingerprint === highlight);
  const toggle = (g: AlertGroup) =>
    setOpened((prev) => {
      const next = new Set(prev);
      if (!next.delete(groupKey(g))) next.add(groupKey(g));
      return next;
    });
  // biome-ignore lint/correctness/useExhaustiveDependencies: scrolls once the highlighted alert is on the page
  useEffect(() => {
    rowRef.current?.scrollIntoView({ block: 'center' });
  }, [highlight, alerts === null]);
  if (error)
    return error.missingRoute ? (
      <Empty title="No alerting yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="alerts" />
    );
  if (!alerts) return <div className="empty">Loading alerts…</div>;
  const activeSilence = (a: Alert) =>
    silences.find((s) => s.status.state === 'active' && matchersMatch(s.matchers, a.labels));
  return (
    <>
      <fieldset className="segmented" aria-label="Alert state">
        {(
          [
            [
              'active',
              `Active (${counts.firing + counts.pending}${counts.silenced ? `, ${counts.silenced} silenced` : ''})`,
            ],
            ['firing', `Firing (${counts.firing})`],
            ['pending', `Pending (${counts.pending})`],
            ['resolved', `Resolved (${counts.resolved})`],
            ['all', 'All'],
          ] as const
        ).map(([k, label]) => (
          <button key={k} type="button" aria-pressed={stateFilter === k} onClick={() => onState(k)}>
            {label}
          </button>
        ))}
      </fieldset>
      {shown.length === 0 ? (
        <Empty title={stateFilter === 'resolved' ? 'Nothing resolved in this range' : 'All quiet'}>
          <p>
            {stateFilter === 'active' || stateFilter === 'firing'
              ? 'No alert is firing. Detectors watch every job for stalls, divergence, stragglers and idle GPUs.'
              : 'Widen the time range to see older history.'}
          </p>
        </Empty>
      ) : (
        <div className="table-scroll">
          <table className="jobs alerts" data-testid="alerts-table">
            <thead>
              <tr>
                <th>Severity</th>
                <th>Alert</th>
                <th>Job</th>
                <th>Where</th>
                <th>State</th>
                <th>Since</th>
                <th>Resolved</th>
                <th className="num">Value</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {groups
                .flatMap((g) => [
                  { a: g.cause, group: g, consequence: false },
                  ...(isOpen(g) ? g.consequences.map((c) => ({ a: c, group: g, consequence: true })) : []),
                ])
                .map(({ a, group, consequence }) => {
                  const silenced = activeSilence(a) ?? (isSilenced(a) ? SILENCED_ELSEWHERE : undefined);
                  const mark = a.fingerprint === highlight;
                  return (
                    <tr
                      key={`${a.fingerprint}/${a.activeAtMs}/${a.state}`}
                      ref={mark ? rowRef : undefined}
                      className={
                        [mark ? 'highlight' : '', consequence ? 'consequence' : '']
                          .filter(Boolean)
                          .join(' ') || undefined
                      }
                      data-fingerprint={a.fingerprint}
                      data-state={a.state}
                      data-alertname={a.labels.alertname ?? a.name}
                      data-related={consequence ? undefined : group.consequences.length}
                      data-cause={consequence ? group.cause.fingerprint : undefined}
                    >
                      <td>
                        <span className={`sev sev-${a.labels.severity ?? 'info'}`}>
                          ● {a.labels.severity ?? '—'}
                        </span>
                      </td>
                      <td>
                        {consequence && (
                          <span className="muted" title="consequence of the alert above">
                            ↳{' '}
                          </span>
                        )}
                        <strong>{a.labels.alertname ?? a.name}</strong>
                        <div className="sub">{a.annotations.summary ?? a.annotations.description ?? ''}</div>
                        <div className="sub">{a.source}</div>
                        {!consequence && group.consequences.length > 0 && (
                          <button
                            type="button"
                            className="btn btn-small btn-quiet related-toggle"
                            aria-expanded={isOpen(group)}
                            data-testid="related-toggle"
                            onClick={() => toggle(group)}
                          >
                            {isOpen(group) ? '▾' : '▸'} {group.consequences.length} related:{' '}
                            {[...new Set(group.consequences.map((c) => c.labels.alertname ?? c.name))].join(
                              ', ',
                            )}
                          </button>
                        )}
                      </td>
                      <td>
                        {a.labels.job_id ? (
                          <a
                            href={a.url || `/jobs/${encodeURIComponent(a.labels.job_id)}`}
                            onClick={onLinkClick}
                          >
                            {a.labels.job_id}
                          </a>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td>
                        <AlertPlace labels={a.labels} />
                      </td>
                      <td>
                        <span className={`badge state-${a.state}`}>{a.state}</span>
                        {silenced && (
                          <div className="sub">
                            {silenced === SILENCED_ELSEWHERE
                              ? 'silenced'
                              : `silenced until ${fmtTime(Date.parse(silenced.endsAt))}`}
                          </div>
                        )}
                      </td>
                      <td title={fmtTime(alertStart(a))}>{fmtAge(alertStart(a), now)} ago</td>
                      <td>{a.resolvedAtMs ? `${fmtAge(a.resolvedAtMs, now)} ago` : '—'}</td>
                      <td className="num">
                        {typeof a.value === 'number' ? fmtNumber(a.value) : (a.value ?? '—')}
                      </td>
                      <td className="actions">
                        {a.state !== 'resolved' && !silenced && (
                          <>
                            <button
                              type="button"
                              className="btn btn-small"
                              data-testid="silence-button"
                              title={`Silence for 2 hours: ${silenceMatchersFor(a.labels)
                                .map((m) => `${m.name}="${m.value}"`)
                                .join(', ')}`}
                              onClick={() => onSilence(a)}
                            >
                              Silence 2h
                            </button>
                            <button
                              type="button"
                              className="btn btn-small btn-quiet"
                              onClick={() => onEdit(a)}
                              aria-label="Silence with options"
                            >
                              …
                            </button>
                          </>
                        )}
                      </td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** An alert the server says is silenced by a silence this page has not loaded (yet). */
const SILENCED_ELSEWHERE: Silence = {
  id: '',
  matchers: [],
  startsAt: '',
  endsAt: '',
  createdBy: '',
  comment: '',
  status: { state: 'active' },
};

function matcherText(m: Matcher): string {
  const op = m.isEqual === false ? (m.isRegex ? '!~' : '!=') : m.isRegex ? '=~' : '=';
  return `${m.name}${op}"${m.value}"`;
}

function SilenceList({
  silences,
  error,
  onExpire,
}: {
  silences: Silence[] | null;
  error: ApiError | null;
  onExpire: (id: string) => void;
}) {
  if (error)
    return error.missingRoute ? (
      <Empty title="No silences yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="silences" />
    );
  if (!silences) return <div className="empty">Loading silences…</div>;
  if (silences.length === 0)
    return (
      <Empty title="No silences">
        <p>Silence an alert from the Alerts tab (one click), or create one with “New silence”.</p>
      </Empty>
    );
  const order = { active: 0, pending: 1, expired: 2 } as Record<string, number>;
  return (
    <div className="table-scroll">
      <table className="jobs" data-testid="silences-table">
        <thead>
          <tr>
            <th>State</th>
            <th>Matchers</th>
            <th>Starts</th>
            <th>Ends</th>
            <th>By</th>
            <th>Comment</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {[...silences]
            .sort(
              (a, b) =>
                (order[a.status.state] ?? 3) - (order[b.status.state] ?? 3) ||
                Date.parse(b.endsAt) - Date.parse(a.endsAt),
            )
            .map((s) => (
              <tr key={s.id} data-silence-id={s.id} data-state={s.status.state}>
                <td>
                  <span className={`badge state-${s.status.state}`}>{s.status.state}</span>
                </td>
                <td>
                  {s.matchers.map((m) => (
                    <code key={matcherText(m)} className="matcher">
                      {matcherText(m)}
                    </code>
                  ))}
                </td>
                <td>{fmtTime(Date.parse(s.startsAt))}</td>
                <td>{fmtTime(Date.parse(s.endsAt))}</td>
                <td>{s.createdBy}</td>
                <td>{s.comment}</td>
                <td>
                  {s.status.state !== 'expired' && (
                    <button type="button" className="btn btn-small" onClick={() => onExpire(s.id)}>
                      Expire
                    </button>
                  )}
                </td>
              </tr>
            ))}
        </tbody>
      </table>
    </div>
  );
}

const DURATIONS: [string, number][] = [
  ['1 hour', 3600_000],
  ['2 hours', 2 * 3600_000],
  ['4 hours', 4 * 3600_000],
  ['1 day', 86_400_000],
  ['1 week', 7 * 86_400_000],
];

/** A silence with its matchers pre-filled (from an alert) and editable. Opens as a modal dialog. */
function SilenceForm({
  initial,
  onClose,
  onCreated,
}: {
  initial: { matchers: Matcher[]; comment: string };
  onClose: () => void;
  onCreated: (id: string) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [matchers, setMatchers] = useState(initial.matchers);
  const [duration, setDuration] = useState(2 * 3600_000);
  const [createdBy, setCreatedBy] = useState(user());
  const [comment, setComment] = useState(initial.comment);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const valid =
    matchers.length > 0 &&
    matchers.every((m) => m.name.trim() !== '') &&
    matchers.some((m) => m.value !== '' || m.isRegex) &&
    comment.trim() !== '' &&
    createdBy.trim() !== '';
  const op = (m: Matcher) => (m.isEqual === false ? (m.isRegex ? '!~' : '!=') : m.isRegex ? '=~' : '=');
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="silence-title" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!valid) return;
          const now = Date.now();
          try {
            localStorage.setItem(USER_KEY, createdBy.trim());
          } catch {}
          try {
            const id = await createSilence({
              matchers,
              startsAt: new Date(now).toISOString(),
              endsAt: new Date(now + duration).toISOString(),
              createdBy: createdBy.trim(),
              comment: comment.trim(),
            });
            dialog.current?.close();
            onCreated(id);
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      >
        <h2 id="silence-title">New silence</h2>
        <p className="muted small">
          Alerts whose labels match every matcher are not notified until the silence ends.
        </p>
        {matchers.map((m, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: matchers are edited in place and have no identity
          <div key={i} className="matcher-row">
            <input
              aria-label="Label name"
              value={m.name}
              onChange={(e) =>
                setMatchers(matchers.map((x, j) => (j === i ? { ...x, name: e.target.value } : x)))
              }
            />
            <select
              aria-label="Match"
              value={op(m)}
              onChange={(e) => {
                const v = e.target.value;
                setMatchers(
                  matchers.map((x, j) =>
                    j === i ? { ...x, isRegex: v.includes('~'), isEqual: !v.startsWith('!') } : x,
                  ),
                );
              }}
            >
              {['=', '!=', '=~', '!~'].map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
            <input
              aria-label="Label value"
              value={m.value}
              onChange={(e) =>
                setMatchers(matchers.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))
              }
            />
            <button
              type="button"
              className="chip-x"
              aria-label={`Remove matcher ${m.name}`}
              onClick={() => setMatchers(matchers.filter((_, j) => j !== i))}
            >
              ×
            </button>
          </div>
        ))}
        <button
          type="button"
          className="btn btn-small"
          onClick={() => setMatchers([...matchers, { name: '', value: '', isRegex: false, isEqual: true }])}
        >
          Add matcher
        </button>
        <label className="field">
          Duration
          <select value={duration} onChange={(e) => setDuration(Number(e.target.value))}>
            {DURATIONS.map(([l, ms]) => (
              <option key={ms} value={ms}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          Created by
          <input value={createdBy} onChange={(e) => setCreatedBy(e.target.value)} />
        </label>
        <label className="field">
          Comment
          <input value={comment} onChange={(e) => setComment(e.target.value)} required />
        </label>
        {error && <p className="bad">{error}</p>}
        <div className="dialog-actions">
          <button type="button" className="btn" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={!valid} data-testid="silence-submit">
            Create silence
          </button>
        </div>
      </form>
    </dialog>
  );
}

function RulesList() {
  const [groups, setGroups] = useState<RuleGroup[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  usePoll(
    async (signal) => {
      try {
        setGroups(await fetchRules(signal));
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    10_000,
    [],
  );
  if (error)
    return error.missingRoute ? (
      <Empty title="No rules yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="rules" />
    );
  if (!groups) return <div className="empty">Loading rules…</div>;
  if (groups.length === 0)
    return (
      <Empty title="No alerting rules">
        <p>
          Add Prometheus alerting-rule YAML files to the configuration (<code>alerting.rule_files</code>);
          detectors run without rules.
        </p>
      </Empty>
    );
  const now = Date.now();
  return (
    <div className="table-scroll">
      <table className="jobs" data-testid="rules-table">
        <thead>
          <tr>
            <th>Group</th>
            <th>Rule</th>
            <th>State</th>
            <th>Health</th>
            <th>Query</th>
            <th>For</th>
            <th>Last evaluation</th>
            <th className="num">Took</th>
          </tr>
        </thead>
        <tbody>
          {groups.flatMap((g) =>
            g.rules.map((r) => (
              <tr key={`${g.name}/${r.name}`}>
                <td>{g.name}</td>
                <td>
                  <strong>{r.name}</strong>
                  <div className="sub">{r.type}</div>
                </td>
                <td>{r.state ? <span className={`badge state-${r.state}`}>{r.state}</span> : '—'}</td>
                <td>
                  <span className={r.health === 'ok' ? 'health-ok' : r.health === 'err' ? 'bad' : 'muted'}>
                    {r.health ?? '—'}
                  </span>
                  {r.lastError && <div className="sub bad">{r.lastError}</div>}
                </td>
                <td>
                  <code className="query">{r.query}</code>
                </td>
                <td>{r.duration ? `${r.duration}s` : '—'}</td>
                <td>
                  {r.lastEvaluation && Date.parse(r.lastEvaluation) > 0
                    ? `${fmtAge(Date.parse(r.lastEvaluation), now)} ago`
                    : 'never'}
                </td>
                <td className="num">
                  {r.evaluationTime !== undefined ? `${fmtNumber(r.evaluationTime * 1000)} ms` : '—'}
                </td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}

const DETECTOR_MAIN = new Set([
  'name',
  'state',
  'lastEvaluation',
  'lastEvaluationMs',
  'description',
  'enabled',
]);

function DetectorList() {
  const [detectors, setDetectors] = useState<Detector[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  usePoll(
    async (signal) => {
      try {
        setDetectors(await fetchDetectors(signal));
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    5000,
    [],
  );
  if (error)
    return error.missingRoute ? (
      <Empty title="No detectors yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="detectors" />
    );
  if (!detectors) return <div className="empty">Loading detectors…</div>;
  if (detectors.length === 0) return <Empty title="No detectors">{null}</Empty>;
  const now = Date.now();
  const lastEval = (d: Detector): number | null => {
    const v = d.lastEvaluationMs ?? d.lastEvaluation;
    if (typeof v === 'number') return v;
    if (typeof v === 'string') return Date.parse(v) || null;
    return null;
  };
  return (
    <div className="table-scroll">
      <table className="jobs" data-testid="detectors-table">
        <thead>
          <tr>
            <th>Detector</th>
            <th>State</th>
            <th>Last evaluation</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {detectors.map((d, i) => {
            const t = lastEval(d);
            return (
              <tr key={String(d.name ?? i)}>
                <td>
                  <strong>{String(d.name ?? `detector ${i + 1}`)}</strong>
                  {typeof d.description === 'string' && <div className="sub">{d.description}</div>}
                </td>
                <td>
                  <span className={`badge state-${String(d.state ?? 'unknown')}`}>
                    {String(d.state ?? (d.enabled === false ? 'disabled' : '—'))}
                  </span>
                </td>
                <td>{t ? `${fmtAge(t, now)} ago` : 'never'}</td>
                <td className="small mono details">
                  {Object.entries(d)
                    .filter(([k]) => !DETECTOR_MAIN.has(k))
                    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
                    .join(' · ')}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
