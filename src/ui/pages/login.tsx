import { useEffect, useRef, useState } from 'react';
import { ApiError, fetchLoginProviders, login } from '../api';
import { type LoginProviders, type Me, oidcLoginHref, redirectTarget } from '../lib/session';
import { useSearchParams } from '../router';

/**
 * The sign-in page: a password form when the server has password users, one button per OpenID Connect
 * provider, and a way to use an API token instead. `?redirect=/path` is where to go afterwards; `?error=`
 * is a refusal to show (e.g. from a provider's callback).
 */
export function LoginPage({ onSignedIn }: { onSignedIn: (me: Me, redirect: string) => void }) {
  const [params] = useSearchParams();
  const redirect = redirectTarget(`?${params.toString()}`);
  const [providers, setProviders] = useState<LoginProviders | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(params.get('error'));
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const errorRef = useRef<HTMLParagraphElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    fetchLoginProviders(abort.signal)
      .then(setProviders)
      .catch((err: Error) => {
        if (abort.signal.aborted) return;
        // A server without the sign-in API (tokens only) still lets a token be used.
        setProviders({ password: false, oidc: [] });
        if (!(err instanceof ApiError && err.missingRoute)) setLoadError(err.message);
      });
    return () => abort.abort();
  }, []);

  useEffect(() => {
    if (providers?.password) first.current?.focus();
  }, [providers]);

  useEffect(() => {
    // Screen readers hear the refusal; keyboard users land on it.
    if (error) errorRef.current?.focus();
  }, [error]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!username.trim() || !password) {
      setError('Enter your username and password.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const me = await login(username.trim(), password);
      onSignedIn(me, redirect);
    } catch (err) {
      setPassword('');
      setError(
        err instanceof ApiError && err.status === 429
          ? 'Too many attempts: wait a minute and try again.'
          : (err as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login" data-testid="login-page">
      <section className="login-card" aria-labelledby="login-title">
        <h1 id="login-title">Sign in to trainwatch</h1>
        {error && (
          <p className="login-error" role="alert" tabIndex={-1} ref={errorRef} data-testid="login-error">
            {error}
          </p>
        )}
        {loadError && <p className="bad">Could not ask how to sign in: {loadError}</p>}
        {providers === null && <p className="muted">Loading…</p>}
        {providers?.password && (
          <form onSubmit={submit} className="login-form" aria-label="Sign in with a password">
            <label htmlFor="login-username">Username</label>
            <input
              id="login-username"
              ref={first}
              type="text"
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              required
            />
            <label htmlFor="login-password">Password</label>
            <input
              id="login-password"
              type="password"
              name="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
            <button type="submit" className="btn btn-primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Sign in'}
            </button>
          </form>
        )}
        {providers && providers.oidc.length > 0 && (
          <div className="login-sso">
            {providers.password && <p className="login-or">or</p>}
            <ul>
              {providers.oidc.map((p) => (
                <li key={p.id}>
                  <a
                    className="btn login-provider"
                    href={oidcLoginHref(p.loginUrl, redirect)}
                    data-provider={p.id}
                  >
                    Sign in with {p.name}
                  </a>
                </li>
              ))}
            </ul>
          </div>
        )}
        {providers && !providers.password && providers.oidc.length === 0 && (
          <p className="muted">This server signs in with API tokens only.</p>
        )}
        <p className="login-token">
          <button
            type="button"
            className="btn btn-quiet"
            onClick={() => window.dispatchEvent(new Event('tw:token-prompt'))}
          >
            Use an API token
          </button>
        </p>
      </section>
    </div>
  );
}
