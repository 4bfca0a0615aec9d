/**
 * Settings > API tokens: the tenant's tokens, a form that creates one, the new secret shown once, and revoking.
 * One file per settings page, as the job page's panels are (components/job).
 */
import { useEffect, useId, useRef, useState } from 'react';
import { type ApiToken, createToken, fetchTokens, revokeToken } from '../../api';
import { fmtTime } from '../../format';
import { useList } from '../../hooks/use-list';
import {
  TOKEN_EXPIRY,
  TOKEN_SCOPE_HELP,
  TOKEN_SCOPES,
  type TokenScope,
  timeOf,
  tokenFormError,
} from '../../lib/session';
import { DataTable } from '../data-table';
import { FormError } from '../widgets';

export function TokensSettings() {
  const tokens = useList(fetchTokens);
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  return (
    <section aria-labelledby="tokens-title" data-testid="settings-tokens">
      <h2 id="tokens-title">API tokens</h2>
      <p className="muted">
        Agents, SDKs and scripts send <code>Authorization: Bearer &lt;token&gt;</code>. A token acts in this
        tenant with the scopes it was given.
      </p>
      <NewTokenForm
        onCreated={(name, token) => {
          setCreated({ name, token });
          tokens.reload();
        }}
      />
      {created && <TokenSecret {...created} onDone={() => setCreated(null)} />}
      <FormError message={tokens.error} />
      {tokens.items && <TokenTable tokens={tokens.items} onChange={tokens.reload} />}
    </section>
  );
}

function NewTokenForm({ onCreated }: { onCreated: (name: string, token: string) => void }) {
  const [name, setName] = useState('');
  const [scope, setScope] = useState<TokenScope>('read');
  const [expiry, setExpiry] = useState<string>('90d');
  const [rateLimit, setRateLimit] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = useId();

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const problem = tokenFormError({ name, scope, rateLimit });
    if (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const res = await createToken({
        name: name.trim(),
        scopes: [scope],
        ...(expiry !== 'never' ? { expiresIn: expiry } : {}),
        ...(rateLimit.trim() !== '' ? { rateLimitPerSecond: Number(rateLimit) } : {}),
      });
      onCreated(name.trim(), res.token);
      setName('');
      setRateLimit('');
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      className="settings-form"
      onSubmit={submit}
      aria-labelledby={`${id}-title`}
      data-testid="token-form"
    >
      <h3 id={`${id}-title`}>New token</h3>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          id={`${id}-name`}
          type="text"
          value={name}
          onChange={(e) => setName(e.target.value)}
          placeholder="e.g. cluster-a agents"
          maxLength={128}
        />
      </div>
      <fieldset className="field">
        <legend>Scope</legend>
        {TOKEN_SCOPES.map((s) => (
          <label key={s} className="check">
            <input
              type="radio"
              name={`${id}-scope`}
              value={s}
              checked={scope === s}
              onChange={() => setScope(s)}
            />
            <span>
              {s} <span className="muted small">— {TOKEN_SCOPE_HELP[s]}</span>
            </span>
          </label>
        ))}
      </fieldset>
      <div className="field">
        <label htmlFor={`${id}-expiry`}>Expires after</label>
        <select id={`${id}-expiry`} value={expiry} onChange={(e) => setExpiry(e.target.value)}>
          {TOKEN_EXPIRY.map((x) => (
            <option key={x.label} value={x.value ?? 'never'}>
              {x.label}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-rate`}>Rate limit (requests per second, empty: none)</label>
        <input
          id={`${id}-rate`}
          type="text"
          inputMode="decimal"
          value={rateLimit}
          onChange={(e) => setRateLimit(e.target.value)}
        />
      </div>
      <FormError message={error} />
      <button type="submit" className="btn btn-primary" disabled={busy}>
        Create token
      </button>
    </form>
  );
}

/** The new token's secret, shown once: the server keeps only its hash. */
function TokenSecret({ name, token, onDone }: { name: string; token: string; onDone: () => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => box.current?.focus(), []);
  return (
    <div className="token-secret" role="status" tabIndex={-1} ref={box} data-testid="token-secret">
      <p>
        Token <strong>{name}</strong> created. Copy it now: it is shown only this once.
      </p>
      <code className="mono" data-testid="token-secret-value">
        {token}
      </code>
      <div className="dialog-actions">
        <button
          type="button"
          className="btn"
          onClick={() =>
            void navigator.clipboard?.writeText(token).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" className="btn" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

function TokenTable({ tokens, onChange }: { tokens: ApiToken[]; onChange: () => void }) {
  const [confirm, setConfirm] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (tokens.length === 0) return <p className="muted">No tokens in this tenant yet.</p>;
  const revoke = async (t: ApiToken) => {
    setError(null);
    try {
      await revokeToken(t.id);
      setConfirm(null);
      onChange();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <>
      <FormError message={error} />
      <DataTable
        testId="tokens-table"
        caption="API tokens of this tenant"
        columns={['Name', 'Id', 'Scopes', 'Created', 'Expires', 'Last used', 'Rate limit', 'State', '']}
      >
        {tokens.map((t) => {
          const expires = timeOf(t.expiresAt);
          const expired = expires !== null && expires <= Date.now();
          return (
            <tr
              key={t.id}
              data-token={t.id}
              data-state={t.revoked ? 'revoked' : expired ? 'expired' : 'active'}
            >
              <td>{t.name}</td>
              <td className="mono small">{t.id}</td>
              <td>{t.scopes.join(', ')}</td>
              <td>{fmtTime(timeOf(t.createdAt))}</td>
              <td>{expires === null ? 'never' : fmtTime(expires)}</td>
              <td>{t.lastUsedAt ? fmtTime(timeOf(t.lastUsedAt)) : 'never'}</td>
              <td className="num">{t.rateLimitPerSecond ? `${t.rateLimitPerSecond}/s` : '—'}</td>
              <td>
                <span className={`badge ${t.revoked || expired ? 'status-failed' : 'status-running'}`}>
                  {t.revoked ? 'revoked' : expired ? 'expired' : 'active'}
                </span>
              </td>
              <td>
                {!t.revoked &&
                  (confirm === t.id ? (
                    <span className="confirm">
                      <button
                        type="button"
                        className="btn btn-small btn-danger"
                        onClick={() => void revoke(t)}
                      >
                        Revoke {t.name}
                      </button>
                      <button type="button" className="btn btn-small" onClick={() => setConfirm(null)}>
                        Keep
                      </button>
                    </span>
                  ) : (
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() => setConfirm(t.id)}
                      aria-label={`Revoke token ${t.name}`}
                    >
                      Revoke
                    </button>
                  ))}
              </td>
            </tr>
          );
        })}
      </DataTable>
    </>
  );
}
