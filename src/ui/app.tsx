import { useState } from 'react';
import { fetchAlerts, getToken } from './api';
import { TokenPrompt } from './components/token-prompt';
import { usePoll } from './hooks/use-live';
import { ThemeContext, useThemeState } from './hooks/use-theme';
import { isSilenced } from './lib/alerts';
import { AlertsPage } from './pages/alerts';
import { ComparePage } from './pages/compare';
import { ExplorePage } from './pages/explore';
import { FleetPage } from './pages/fleet';
import { JobPage } from './pages/job';
import { onLinkClick, parseRoute, useLocation } from './router';

export function App() {
  const loc = useLocation();
  const route = parseRoute(loc.pathname);
  const [theme, setTheme] = useThemeState();
  const [firing, setFiring] = useState<number | null>(null);

  // The number of firing alerts in the navigation, wherever the user is.
  usePoll(
    async (signal) => {
      try {
        // Silenced alerts are someone's known problem: the badge counts the others.
        setFiring((await fetchAlerts({ state: 'firing' }, signal)).filter((a) => !isSilenced(a)).length);
      } catch {
        if (!signal.aborted) setFiring(null);
      }
    },
    10_000,
    [],
  );

  const link = (href: string, page: string, label: React.ReactNode) => (
    <a href={href} onClick={onLinkClick} aria-current={route.page === page ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <ThemeContext.Provider value={theme}>
      <div className="app">
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <header className="topbar">
          <a href="/" className="brand" onClick={onLinkClick}>
            <span className="brand-mark" aria-hidden="true">
              ◉
            </span>{' '}
            trainwatch
          </a>
          <nav aria-label="Pages">
            {link('/', 'fleet', 'Fleet')}
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
            {link('/explore', 'explore', 'Explore')}
          </nav>
          <div className="topbar-tools">
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
          </div>
        </header>
        <main id="main">
          {route.page === 'fleet' && <FleetPage />}
          {route.page === 'job' && <JobPage key={route.jobId} jobId={route.jobId} />}
          {route.page === 'compare' && <ComparePage />}
          {route.page === 'alerts' && <AlertsPage />}
          {route.page === 'explore' && <ExplorePage />}
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
        </main>
        <TokenPrompt />
      </div>
    </ThemeContext.Provider>
  );
}
