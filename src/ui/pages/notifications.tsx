import { useId, useState } from 'react';
import {
  type ApiError,
  fetchDeliveries,
  fetchNotificationRoutes,
  fetchReceivers,
  testNotificationRoute,
} from '../api';
import { DataTable } from '../components/data-table';
import { ErrorBox, FormError } from '../components/widgets';
import { fmtAge, fmtTime } from '../format';
import { usePoll } from '../hooks/use-live';
import { useSession } from '../hooks/use-session';
import {
  type DeliveryPage,
  fmtDuration,
  healthState,
  parseLabelInput,
  type ReceiverInfo,
  type RouteNode,
  type RouteTestResult,
} from '../lib/notifications';
import { useSearchParams } from '../router';

const PAGE_SIZE = 50;
/** A notification's status as a text tone; any other (superseded) is muted. */
const DELIVERY_CLASS: Readonly<Record<string, string>> = {
  delivered: 'good',
  failed: 'bad',
  pending: 'warn',
};
const SINCE: { key: string; label: string; ms: number | null }[] = [
  { key: '1h', label: 'Last hour', ms: 3600_000 },
  { key: '24h', label: 'Last 24 hours', ms: 86_400_000 },
  { key: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
  { key: 'all', label: 'All kept', ms: null },
];
const STATUSES = ['delivered', 'failed', 'pending', 'superseded'] as const;
const HEALTH_TEXT = { ok: 'healthy', failing: 'failing', retrying: 'retrying', idle: 'no deliveries yet' };
const HEALTH_CLASS = { ok: 'good', failing: 'bad', retrying: 'warn', idle: 'muted' };

/**
 * Where this tenant's alerts are sent, as a platform engineer coming from Alertmanager looks at it: the
 * receivers with their recent delivery health, the routing tree, a route tester (`amtool config routes
 * test`) and the delivery history from the outbox, with filters in the URL.
 */
export function NotificationsPage() {
  const { me } = useSession();
  const [receivers, setReceivers] = useState<ReceiverInfo[] | null>(null);
  const [tree, setTree] = useState<RouteNode | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [tested, setTested] = useState<RouteTestResult | null>(null);

  usePoll(
    async (signal) => {
      try {
        const [r, t] = await Promise.all([fetchReceivers(signal), fetchNotificationRoutes(signal)]);
        setReceivers(r);
        setTree(t.route);
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    10_000,
    [],
  );
  const hit = new Set(tested?.routes.flatMap((r) => r.path.map((p) => p.id)) ?? []);

  return (
    <div className="notifications">
      <div className="page-head">
        <h1>Notifications</h1>
        {me && <span className="muted">tenant {me.tenant}</span>}
      </div>
      {error && (
        <ErrorBox
          error={error}
          what="the notification routing"
          missingHint="This server runs no alerting role: receivers and routes appear once it does."
        />
      )}
      <section aria-labelledby="receivers-title">
        <h2 id="receivers-title">Receivers</h2>
        {receivers === null && !error && <p className="muted">Loading…</p>}
        {receivers && <ReceiversTable receivers={receivers} />}
      </section>
      <section aria-labelledby="routes-title">
        <h2 id="routes-title">Routing tree</h2>
        <p className="muted small">
          An alert goes down the first matching route (and on to later ones where a route says continue); the
          deepest match decides the receiver. Routes your alerts cannot reach are not shown.
        </p>
        {tree && (
          <ul className="route-tree" data-testid="route-tree">
            <RouteItem node={tree} root hit={hit} />
          </ul>
        )}
      </section>
      <RouteTester result={tested} onResult={setTested} />
      <History receivers={receivers ?? []} />
    </div>
  );
}

function ReceiversTable({ receivers }: { receivers: ReceiverInfo[] }) {
  const now = Date.now();
  type Row = { receiver: ReceiverInfo; integration: ReceiverInfo['integrations'][number] | null };
  const rows = receivers.flatMap((r): Row[] =>
    r.integrations.length === 0
      ? [{ receiver: r, integration: null }]
      : r.integrations.map((i) => ({ receiver: r, integration: i })),
  );
  return (
    <DataTable
      testId="receivers-table"
      caption="Receivers, their integrations and delivery health"
      columns={[
        'Receiver',
        'Integration',
        'Target',
        'Health',
        'Last success',
        'Last failure',
        { label: 'Delivered', num: true },
        { label: 'Failed', num: true },
        { label: 'Pending', num: true },
        { label: 'Mean latency', num: true },
      ]}
    >
      {rows.map(({ receiver, integration }) => {
        const h = integration?.health ?? null;
        const state = healthState(h);
        return (
          <tr
            key={`${receiver.name}/${integration?.name ?? ''}`}
            data-testid="receiver-row"
            data-receiver={receiver.name}
            data-health={integration ? state : 'none'}
          >
            <td>
              <strong>{receiver.name}</strong>
            </td>
            <td className="mono">{integration ? integration.name : '—'}</td>
            <td className="mono small">
              {integration ? integration.target : (receiver.note ?? 'nothing is sent')}
            </td>
            <td>
              {integration && <span className={HEALTH_CLASS[state]}>{HEALTH_TEXT[state]}</span>}
              {h?.lastError && state !== 'ok' && (
                <div className="small bad route-error" title={h.lastError}>
                  {h.lastError}
                </div>
              )}
            </td>
            <td>{h?.lastDeliveredMs ? `${fmtAge(h.lastDeliveredMs, now)} ago` : '—'}</td>
            <td>{h?.lastFailureMs ? `${fmtAge(h.lastFailureMs, now)} ago` : '—'}</td>
            <td className="num">{h?.delivered ?? 0}</td>
            <td className="num">{h?.failed ?? 0}</td>
            <td className="num">
              {h?.pending ?? 0}
              {h && h.retrying > 0 ? ` (${h.retrying} retrying)` : ''}
            </td>
            <td className="num">{fmtDuration(h?.meanLatencyMs)}</td>
          </tr>
        );
      })}
    </DataTable>
  );
}

function RouteItem({ node, root, hit }: { node: RouteNode; root?: boolean; hit: Set<string> }) {
  return (
    <li>
      <div className={`route-node${hit.has(node.id) ? ' route-hit' : ''}`} data-testid="route-node">
        <span className="route-match mono">{root ? 'every alert' : node.matchers.join(', ') || 'any'}</span>
        {' → '}
        <strong>{node.receiver}</strong>
        {node.continue && <span className="badge route-continue">continue</span>}
        <span className="muted small">
          {' '}
          group by {node.groupBy.join(', ')} · wait {fmtDuration(node.groupWaitMs)} · interval{' '}
          {fmtDuration(node.groupIntervalMs)} · repeat {fmtDuration(node.repeatIntervalMs)}
        </span>
        {hit.has(node.id) && <span className="sr-only"> (on the tested path)</span>}
      </div>
      {node.routes.length > 0 && (
        <ul>
          {node.routes.map((c) => (
            <RouteItem key={c.id} node={c} hit={hit} />
          ))}
        </ul>
      )}
    </li>
  );
}

function RouteTester({
  result,
  onResult,
}: {
  result: RouteTestResult | null;
  onResult: (r: RouteTestResult | null) => void;
}) {
  const id = useId();
  const [text, setText] = useState('alertname=TrainingStalled severity=critical');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <section aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Test a route</h2>
      <form
        className="toolbar"
        data-testid="route-test-form"
        onSubmit={(e) => {
          e.preventDefault();
          const parsed = parseLabelInput(text);
          if ('error' in parsed) {
            setError(parsed.error);
            onResult(null);
            return;
          }
          setBusy(true);
          testNotificationRoute(parsed.labels)
            .then((r) => {
              onResult(r);
              setError(null);
            })
            .catch((err: Error) => {
              setError(err.message);
              onResult(null);
            })
            .finally(() => setBusy(false));
        }}
      >
        <label htmlFor={`${id}-labels`}>Alert labels</label>
        <input
          id={`${id}-labels`}
          type="text"
          className="mono route-labels"
          value={text}
          onChange={(e) => setText(e.target.value)}
          aria-describedby={`${id}-help`}
        />
        <button type="submit" className="btn btn-primary" disabled={busy}>
          Test
        </button>
      </form>
      <p id={`${id}-help`} className="muted small">
        As <code>amtool config routes test</code> takes them: <code>name=value</code> pairs or{' '}
        <code>{'{name="value", …}'}</code>. Your tenant label is added.
      </p>
      <FormError message={error} />
      {result && (
        <div data-testid="route-test-result" aria-live="polite">
          <p>
            Would notify <strong data-testid="route-test-receivers">{result.receivers.join(', ')}</strong>
            {result.silencedBy.length > 0 && (
              <span className="warn"> — but silenced now by {result.silencedBy.join(', ')}</span>
            )}
          </p>
          <ol className="route-paths">
            {result.routes.map((r) => (
              <li key={r.routeId}>
                <span className="mono small">
                  {r.path.map((p, i) => (i === 0 ? 'root' : p.matchers.join(', '))).join(' → ')}
                </span>{' '}
                → <strong>{r.receiver}</strong>{' '}
                {r.integrations.length > 0 ? (
                  <span className="muted small">via {r.integrations.join(', ')}</span>
                ) : (
                  <span className="warn small">no integrations: nothing is sent</span>
                )}
                <div className="muted small mono">group {r.groupKey}</div>
              </li>
            ))}
          </ol>
        </div>
      )}
    </section>
  );
}

function History({ receivers }: { receivers: ReceiverInfo[] }) {
  const id = useId();
  const [params, setParams] = useSearchParams();
  const receiver = params.get('receiver') ?? '';
  const status = params.get('status') ?? '';
  const since = SINCE.find((s) => s.key === params.get('since')) ?? SINCE[1]!;
  const page = Math.max(0, Number.parseInt(params.get('page') ?? '0', 10) || 0);
  const [data, setData] = useState<DeliveryPage | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  usePoll(
    async (signal) => {
      try {
        setData(
          await fetchDeliveries(
            {
              ...(receiver ? { receiver } : {}),
              ...(status ? { status } : {}),
              ...(since.ms !== null ? { since: Date.now() - since.ms } : {}),
              offset: page * PAGE_SIZE,
              limit: PAGE_SIZE,
            },
            signal,
          ),
        );
        setError(null);
      } catch (err) {
        if (!signal.aborted) setError(err as ApiError);
      }
    },
    10_000,
    [receiver, status, since.key, page],
  );
  const first = page * PAGE_SIZE;
  return (
    <section aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Delivery history</h2>
      <div className="toolbar" data-testid="history-filters">
        <label htmlFor={`${id}-receiver`}>Receiver</label>
        <select
          id={`${id}-receiver`}
          value={receiver}
          onChange={(e) => setParams({ receiver: e.target.value || null, page: null })}
        >
          <option value="">All</option>
          {receivers.map((r) => (
            <option key={r.name} value={r.name}>
              {r.name}
            </option>
          ))}
        </select>
        <label htmlFor={`${id}-status`}>Status</label>
        <select
          id={`${id}-status`}
          value={status}
          onChange={(e) => setParams({ status: e.target.value || null, page: null })}
        >
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label htmlFor={`${id}-since`}>Queued</label>
        <select
          id={`${id}-since`}
          value={since.key}
          onChange={(e) => setParams({ since: e.target.value, page: null })}
        >
          {SINCE.map((s) => (
            <option key={s.key} value={s.key}>
              {s.label}
            </option>
          ))}
        </select>
      </div>
      {error && <ErrorBox error={error} what="the delivery history" />}
      {data && data.total === 0 && <p className="muted">No notifications match.</p>}
      {data && data.total > 0 && (
        <>
          <DataTable
            testId="history-table"
            caption="Notifications, newest first"
            columns={[
              'Queued',
              'Receiver',
              'Notification',
              'Status',
              { label: 'Attempts', num: true },
              { label: 'Latency', num: true },
              { label: 'Last attempt', num: true },
              'Last error',
            ]}
          >
            {data.notifications.map((n) => (
              <tr key={n.id} data-testid="history-row" data-status={n.status} data-receiver={n.receiver}>
                <td>{fmtTime(n.createdMs)}</td>
                <td>
                  {n.receiver} <span className="mono small muted">{n.integration}</span>
                </td>
                <td className="small">{n.summary}</td>
                <td>
                  <span className={DELIVERY_CLASS[n.status] ?? 'muted'}>{n.status}</span>
                  {n.status === 'pending' && n.nextAttemptMs !== null && n.attempts > 0 && (
                    <div className="small muted">retry {fmtTime(n.nextAttemptMs)}</div>
                  )}
                </td>
                <td className="num">{n.attempts}</td>
                <td className="num">{fmtDuration(n.latencyMs)}</td>
                <td className="num">{fmtDuration(n.lastAttemptDurationMs)}</td>
                <td className="small bad route-error">{n.lastError || ''}</td>
              </tr>
            ))}
          </DataTable>
          <nav className="toolbar" aria-label="History pages">
            <button
              type="button"
              className="btn btn-small"
              disabled={page === 0}
              onClick={() => setParams({ page: page > 1 ? String(page - 1) : null })}
            >
              Newer
            </button>
            <span data-testid="history-range">
              {first + 1}–{first + data.notifications.length} of {data.total}
            </span>
            <button
              type="button"
              className="btn btn-small"
              disabled={first + data.notifications.length >= data.total}
              onClick={() => setParams({ page: String(page + 1) })}
            >
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
