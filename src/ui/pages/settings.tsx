import { useCallback, useEffect, useId, useRef, useState } from 'react';
import {
  type ApiToken,
  type AuditEvent,
  createToken,
  createUser,
  fetchAudit,
  fetchTokens,
  fetchUsers,
  revokeToken,
  type UserRow,
  updateUser,
} from '../api';
import { fmtTime } from '../format';
import { useSession } from '../hooks/use-session';
import {
  type Role,
  roleIn,
  SETTINGS_PAGES,
  type SettingsPage as SettingsSection,
  settingsFor,
  TOKEN_EXPIRY,
  TOKEN_SCOPE_HELP,
  TOKEN_SCOPES,
  type TokenScope,
  timeOf,
  tokenFormError,
} from '../lib/session';
import { onLinkClick } from '../router';

/** Settings of the current tenant: API tokens, users and the audit log, for the tenant's admins. */
export function SettingsPage({ section }: { section: SettingsSection | null }) {
  const { me } = useSession();
  const allowed = settingsFor(me);
  const current = section ?? allowed[0] ?? null;
  return (
    <div className="settings">
      <div className="page-head">
        <h1>Settings</h1>
        {me && <span className="muted">tenant {me.tenant}</span>}
      </div>
      {allowed.length > 0 && (
        <nav className="tabs" aria-label="Settings pages">
          {SETTINGS_PAGES.filter((p) => allowed.includes(p.page)).map((p) => (
            <a
              key={p.page}
              href={`/settings/${p.page}`}
              onClick={onLinkClick}
              aria-current={current === p.page ? 'page' : undefined}
            >
              {p.label}
            </a>
          ))}
        </nav>
      )}
      {current === null || !allowed.includes(current) ? (
        <div className="empty" data-testid="settings-forbidden">
          <h2>Nothing to manage here</h2>
          <p>
            {me
              ? `Settings need the admin role in tenant ${me.tenant}; you are ${me.role ?? 'without a role'} there.`
              : 'Sign in to manage settings.'}
          </p>
        </div>
      ) : current === 'tokens' ? (
        <TokensSettings />
      ) : current === 'users' ? (
        <UsersSettings />
      ) : (
        <AuditSettings />
      )}
    </div>
  );
}

/** Loads a list, reloads on demand; errors are shown, not thrown. */
function useList<T>(load: (signal: AbortSignal) => Promise<T[]>) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` asks for a reload
  useEffect(() => {
    const abort = new AbortController();
    loadRef
      .current(abort.signal)
      .then((x) => {
        setItems(x);
        setError(null);
      })
      .catch((err: Error) => {
        if (!abort.signal.aborted) setError(err.message);
      });
    return () => abort.abort();
  }, [version]);
  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { items, error, reload };
}

// ---- tokens -------------------------------------------------------------------------------------------------

function TokensSettings() {
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
      {tokens.error && (
        <p className="bad" role="alert">
          {tokens.error}
        </p>
      )}
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
      {error && (
        <p className="bad" role="alert">
          {error}
        </p>
      )}
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
      {error && (
        <p className="bad" role="alert">
          {error}
        </p>
      )}
      <div className="table-scroll">
        <table className="jobs" data-testid="tokens-table">
          <caption className="sr-only">API tokens of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">Rate limit</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
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
          </tbody>
        </table>
      </div>
    </>
  );
}

// ---- users --------------------------------------------------------------------------------------------------

const ROLES: readonly Role[] = ['viewer', 'editor', 'admin'];

function UsersSettings() {
  const { me, refresh } = useSession();
  const users = useList(fetchUsers);
  const [error, setError] = useState<string | null>(null);
  const tenant = me?.tenant ?? '';
  const change = async (u: UserRow, patch: { role?: Role; disabled?: boolean }) => {
    setError(null);
    try {
      await updateUser(u.name, patch);
      users.reload();
      // One's own role may have changed what the menu shows.
      if (me?.user && u.id === me.user.id) await refresh();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section aria-labelledby="users-title" data-testid="settings-users">
      <h2 id="users-title">Users</h2>
      <p className="muted">
        People who sign in with a password or single sign-on, and their role in tenant {tenant}. Users of
        single sign-on get their roles from the provider's groups at each sign-in.
      </p>
      <NewUserForm onCreated={users.reload} />
      {(error ?? users.error) && (
        <p className="bad" role="alert">
          {error ?? users.error}
        </p>
      )}
      {users.items && users.items.length === 0 && <p className="muted">No users yet.</p>}
      {users.items && users.items.length > 0 && (
        <div className="table-scroll">
          <table className="jobs" data-testid="users-table">
            <caption className="sr-only">Users and their roles in tenant {tenant}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role in {tenant}</th>
                <th scope="col">Other tenants</th>
                <th scope="col">Created</th>
                <th scope="col">Last sign-in</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {users.items.map((u) => {
                const role = roleIn(u, tenant);
                const self = me?.user?.id === u.id;
                return (
                  <tr key={u.id} data-user={u.name}>
                    <td>
                      {u.name}
                      {u.operator && <span className="badge user-operator">operator</span>}
                      {self && <span className="muted small"> (you)</span>}
                    </td>
                    <td>
                      <select
                        aria-label={`Role of ${u.name} in ${tenant}`}
                        value={role ?? ''}
                        disabled={self}
                        onChange={(e) => void change(u, { role: e.target.value as Role })}
                      >
                        {role === null && <option value="">none</option>}
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td className="small">
                      {u.roles
                        .filter((r) => r.tenant !== tenant)
                        .map((r) => `${r.tenant} (${r.role})`)
                        .join(', ') || '—'}
                    </td>
                    <td>{fmtTime(timeOf(u.createdAt))}</td>
                    <td>{u.lastLoginAt ? fmtTime(timeOf(u.lastLoginAt)) : 'never'}</td>
                    <td>
                      <button
                        type="button"
                        className="btn btn-small"
                        disabled={self}
                        aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.name}`}
                        onClick={() => void change(u, { disabled: !u.disabled })}
                      >
                        {u.disabled ? 'Enable' : 'Disable'}
                      </button>{' '}
                      <span className={`badge ${u.disabled ? 'status-failed' : 'status-running'}`}>
                        {u.disabled ? 'disabled' : 'active'}
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function NewUserForm({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = useId();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return setError('Enter a username.');
    if (password.length < 8) return setError('The password needs at least 8 characters.');
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await createUser({ name: name.trim(), password, role });
      setDone(`Added ${name.trim()} as ${role}.`);
      setName('');
      setPassword('');
      onCreated();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="settings-form" onSubmit={submit} aria-labelledby={`${id}-title`} data-testid="user-form">
      <h3 id={`${id}-title`}>Add a user</h3>
      <div className="field">
        <label htmlFor={`${id}-name`}>Username</label>
        <input
          id={`${id}-name`}
          type="text"
          autoComplete="off"
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-password`}>Initial password</label>
        <input
          id={`${id}-password`}
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-role`}>Role</label>
        <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </div>
      {error && (
        <p className="bad" role="alert">
          {error}
        </p>
      )}
      {done && (
        <p className="good" role="status">
          {done}
        </p>
      )}
      <button type="submit" className="btn btn-primary" disabled={busy}>
        Add user
      </button>
    </form>
  );
}

// ---- audit --------------------------------------------------------------------------------------------------

function AuditSettings() {
  const [actor, setActor] = useState('');
  const [action, setAction] = useState('');
  const [filter, setFilter] = useState<{ actor: string; action: string }>({ actor: '', action: '' });
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const id = useId();
  useEffect(() => {
    const abort = new AbortController();
    fetchAudit(
      {
        ...(filter.actor ? { actor: filter.actor } : {}),
        ...(filter.action ? { action: filter.action } : {}),
        limit: 200,
      },
      abort.signal,
    )
      .then((e) => {
        setEvents(e);
        setError(null);
      })
      .catch((err: Error) => {
        if (!abort.signal.aborted) setError(err.message);
      });
    return () => abort.abort();
  }, [filter]);
  return (
    <section aria-labelledby="audit-title" data-testid="settings-audit">
      <h2 id="audit-title">Audit log</h2>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ actor: actor.trim(), action: action.trim() });
        }}
      >
        <label htmlFor={`${id}-actor`}>Actor</label>
        <input id={`${id}-actor`} type="text" value={actor} onChange={(e) => setActor(e.target.value)} />
        <label htmlFor={`${id}-action`}>Action</label>
        <input
          id={`${id}-action`}
          type="text"
          value={action}
          placeholder="e.g. token.create"
          onChange={(e) => setAction(e.target.value)}
        />
        <button type="submit" className="btn">
          Filter
        </button>
      </form>
      {error && (
        <p className="bad" role="alert">
          {error}
        </p>
      )}
      {events && events.length === 0 && <p className="muted">No events match.</p>}
      {events && events.length > 0 && (
        <div className="table-scroll">
          <table className="jobs" data-testid="audit-table">
            <caption className="sr-only">Audit events, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Tenant</th>
                <th scope="col">From</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: events have no id; the list is replaced whole
                <tr key={i}>
                  <td>{fmtTime(timeOf(e.time))}</td>
                  <td>
                    {e.actor} <span className="muted small">{e.via}</span>
                  </td>
                  <td className="mono">{e.action}</td>
                  <td>{e.target ?? '—'}</td>
                  <td>{e.tenant ?? '—'}</td>
                  <td className="mono small">{e.ip ?? '—'}</td>
                  <td>
                    <span className={e.outcome === 'success' || e.outcome === 'ok' ? 'good' : 'bad'}>
                      {e.outcome}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
