import { useState } from 'react';
import { fetchAlertHistory, fetchSilences } from '../api';
import { AlertList } from '../components/alerts/alert-list';
import { DetectorList } from '../components/alerts/detector-list';
import { RulesList } from '../components/alerts/rules-list';
import { SilenceForm } from '../components/alerts/silence-form';
import { SilenceList } from '../components/alerts/silence-list';
import { RangePicker } from '../components/range-picker';
import { usePolled, useSilenceActions } from '../hooks/use-alerting';
import { silenceMatchersFor } from '../lib/alerts';
import { parseRange, type RangeSpec, rangeParams, resolveRange } from '../lib/time-range';
import type { Matcher } from '../lib/types';
import { useSearchParams } from '../router';

type Tab = 'alerts' | 'silences' | 'rules' | 'detectors';
const TABS: { key: Tab; label: string }[] = [
  { key: 'alerts', label: 'Alerts' },
  { key: 'silences', label: 'Silences' },
  { key: 'rules', label: 'Rules' },
  { key: 'detectors', label: 'Detectors' },
];

/**
 * Alerts (firing, pending, and resolved with their history), silences (one click from an alert, with the
 * alert's labels as matchers), alerting rules and streaming detectors with their state and last evaluation.
 */
export function AlertsPage() {
  const [params, setParams] = useSearchParams();
  const tab = (TABS.find((t) => t.key === params.get('tab'))?.key ?? 'alerts') as Tab;
  const range: RangeSpec = parseRange(params, { kind: 'relative', key: '24h', ms: 86_400_000 }, 2 * 3600_000);
  const [editing, setEditing] = useState<{ matchers: Matcher[]; comment: string } | null>(null);
  const { toast, setToast, refresh, refreshed, silenceNow, expire } = useSilenceActions();
  const w = resolveRange(range, Date.now());
  const { data: alerts, error: alertsError } = usePolled(
    (signal) => fetchAlertHistory({ since: w.start }, signal),
    5000,
    [JSON.stringify(range), refresh],
  );
  const { data: silences, error: silencesError } = usePolled(fetchSilences, 10_000, [refresh]);

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
      {tab === 'silences' && <SilenceList silences={silences} error={silencesError} onExpire={expire} />}
      {tab === 'rules' && <RulesList />}
      {tab === 'detectors' && <DetectorList />}
      {editing && (
        <SilenceForm
          initial={editing}
          onClose={() => setEditing(null)}
          onCreated={(id) => {
            setEditing(null);
            setToast({ text: `Created silence ${id}.` });
            refreshed();
          }}
        />
      )}
    </section>
  );
}
