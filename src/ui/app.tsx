import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { ApiError, fetchAlerts, fetchMe, getToken, logout, UNAUTHORIZED_EVENT } from './api';
import { TokenPrompt } from './components/token-prompt';
import { UserMenu } from './components/user-menu';
import { usePoll } from './hooks/use-live';
import { type Session, SessionContext } from './hooks/use-session';
import { ThemeContext, useThemeState } from './hooks/use-theme';
import { isSilenced } from './lib/alerts';
import { identified, loginUrlFor, type Me, redirectTarget } from './lib/session';
import { FleetPage } from './pages/fleet';
import { LoginPage } from './pages/login';
import { navigate, onLinkClick, parseRoute, useLocation } from './router';

// The fleet page (the landing page) and login are in the main bundle; every other page is its own chunk,
// loaded when first opened, so the script that must run before the fleet's first rows is a fraction of the
// dashboard (the job page's charts, explore, runs and settings are most of it).
const AlertsPage = lazy(() => import('./pages/alerts').then((m) => ({ default: m.AlertsPage })));
const ComparePage = lazy(() => import('./pages/compare').then((m) => ({ default: m.ComparePage })));
const ExplorePage = lazy(() => import('./pages/explore').then((m) => ({ default: m.ExplorePage })));
const JobPage = lazy(() => import('./pages/job').then((m) => ({ default: m.JobPage })));
const NodePage = lazy(() => import('./pages/node').then((m) => ({ default: m.NodePage })));
const NotificationsPage = lazy(() =>
  import('./pages/notifications').then((m) => ({ default: m.NotificationsPage })),
);
const RunsPage = lazy(() => import('./pages/runs').then((m) => ({ default: m.RunsPage })));
const SettingsPage = lazy(() => import('./pages/settings').then((m) => ({ default: m.SettingsPage })));

export function App() {
  const loc = useLocation();
  const route = parseRoute(loc.pathname);
  const [theme, setTheme] = useThemeState();
  const [firing, setFiring] = useState<number | null>(null);
  const [me, setMe] = useState<Me | null>(null);
  /** Whether `/auth/me` has answered once: pages wait for it, so they do not all ask and get 401. */
  const [known, setKnown] = useState(false);

  const toLogin = useCallback(() => {
    if (location.pathname === '/login') return;
    navigate(loginUrlFor(location.pathname + location.search));
  }, []);

  const refresh = useCallback(async () => {
    try {
      setMe(await fetchMe());
    } catch (err) {
      setMe(null);
      if (err instanceof ApiError && err.status === 401) toLogin();
    } finally {
      setKnown(true);
    }
  }, [toLogin]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  // Any API answer 401 (a session that expired, a revoked token): sign in again, then come back here.
  useEffect(() => {
    const onUnauthorized = () => {
      setMe(null);
      toLogin();
    };
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
  }, [toLogin]);

  // Someone already identified who opens the login page (a token just saved) goes where they meant to go.
  useEffect(() => {
    if (route.page === 'login' && identified(me)) navigate(redirectTarget(location.search));
  }, [route.page, me]);

  const session: Session = {
    me,
    refresh,
    signOut: async () => {
      try {
        await logout();
      } catch {
        // Signed out anyway from this page's view: the login page follows.
      }
      setMe(null);
      navigate('/login');
    },
  };

  const showPages = known && route.page !== 'login';
  // The number of firing alerts in the navigation, wherever the user is.
  usePoll(
    async (signal) => {
      if (!showPages) return;
      try {
        // Silenced alerts are someone's known problem: the badge counts the others.
        setFiring((await fetchAlerts({ state: 'firing' }, signal)).filter((a) => !isSilenced(a)).length);
      } catch {
        if (!signal.aborted) setFiring(null);
      }
    },
    10_000,
    [showPages],
  );

  const link = (href: string, page: string, label: React.ReactNode) => (
    <a href={href} onClick={onLinkClick} aria-current={route.page === page ? 'page' : undefined}>
      {label}
    </a>
  );
  const themeToggle = (
    <button
      type="button"
      className="icon-btn"
      data-testid="theme-toggle"
      onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
      aria-label={`Switch to the ${theme === 'dark' ? 'light' : 'dark'} theme`}
      title={`Switch to the ${theme === 'dark' ? 'light' : 'dark'} theme`}
    >
      <span aria-hidden="true">{theme === 'dark' ? '☀' : '☾'}</span>
    </button>
  );
  const brand = (
    <a href="/" className="brand" onClick={onLinkClick}>
      <span className="brand-mark" aria-hidden="true">
        ◉
      </span>{' '}
      trainwatch
    </a>
  );

  if (route.page === 'login')
    return (
      <ThemeContext.Provider value={theme}>
        <SessionContext.Provider value={session}>
          <div className="app">
            <header className="topbar">
              {brand}
              <div className="topbar-tools">{themeToggle}</div>
            </header>
            <main id="main">
              <LoginPage
                onSignedIn={(signedIn, redirect) => {
                  setMe(signedIn);
                  setKnown(true);
                  navigate(redirect);
                }}
              />
            </main>
            <TokenPrompt />
          </div>
        </SessionContext.Provider>
      </ThemeContext.Provider>
    );

  return (
    <ThemeContext.Provider value={theme}>
      <SessionContext.Provider value={session}>
        <div className="app">
          <a className="skip-link" href="#main">
            Skip to content
          </a>
          <header className="topbar">
            {brand}
            <nav aria-label="Pages">
              {link('/', 'fleet', 'Fleet')}
              {link('/runs', 'runs', 'Runs')}
              {link('/compare', 'compare', 'Compare')}
              {link(
                '/alerts',
                'alerts',
                <>
                  Alerts
                  {firing ? (
                    <span className="nav-count" data-testid="nav-firing" title={`${firing} firing`}>
                      {firing}
                    </span>
                  ) : null}
                </>,
              )}
              {link('/notifications', 'notifications', 'Notifications')}
              {link('/explore', 'explore', 'Explore')}
            </nav>
            <div className="topbar-tools">
              {!me?.user && (
                <button
                  type="button"
                  className="icon-btn"
                  onClick={() => window.dispatchEvent(new Event('tw:token-prompt'))}
                  aria-label={getToken() ? 'API token (one is saved)' : 'API token'}
                  title={getToken() ? 'API token (saved)' : 'API token'}
                >
                  <svg
                    width="16"
                    height="16"
                    viewBox="0 0 24 24"
                    fill="none"
                    stroke="currentColor"
                    strokeWidth="2"
                    aria-hidden="true"
                  >
                    <circle cx="8" cy="15" r="4" />
                    <path d="M11 12l9-9M17 6l3 3M15 8l2 2" />
                  </svg>
                  {getToken() && <span className="dot" aria-hidden="true" />}
                </button>
              )}
              {themeToggle}
              <UserMenu />
            </div>
          </header>
          {/* Keyed by tenant: a tenant switch remounts the pages, so each asks for the new tenant's data. */}
          <main id="main" key={me?.tenant ?? ''}>
            <Suspense fallback={<p className="muted">Loading…</p>}>
              {!known && <p className="muted">Loading…</p>}
              {known && route.page === 'fleet' && <FleetPage />}
              {known && route.page === 'job' && <JobPage key={route.jobId} jobId={route.jobId} />}
              {known && route.page === 'node' && <NodePage key={route.nodeId} nodeId={route.nodeId} />}
              {known && route.page === 'compare' && <ComparePage />}
              {known && route.page === 'runs' && <RunsPage />}
              {known && route.page === 'alerts' && <AlertsPage />}
              {known && route.page === 'explore' && <ExplorePage />}
              {known && route.page === 'notifications' && <NotificationsPage />}
              {known && route.page === 'settings' && <SettingsPage section={route.section} />}
              {route.page === 'not-found' && (
                <div className="empty">
                  <h2>Nothing here</h2>
                  <p>
                    No page at <code>{route.path}</code>.{' '}
                    <a href="/" onClick={onLinkClick}>
                      Go to the fleet
                    </a>
                    .
                  </p>
                </div>
              )}
            </Suspense>
          </main>
          <TokenPrompt />
        </div>
      </SessionContext.Provider>
    </ThemeContext.Provider>
  );
}
