import { FleetPage } from './pages/fleet';
import { JobPage } from './pages/job';
import { onLinkClick, parseRoute, useLocation } from './router';

export function App() {
  const loc = useLocation();
  const route = parseRoute(loc.pathname);
  return (
    <div className="app">
      <header className="topbar">
        <a href="/" className="brand" onClick={onLinkClick}>
          <span className="brand-mark" aria-hidden="true">
            ◉
          </span>{' '}
          trainwatch
        </a>
        <nav>
          <a href="/" onClick={onLinkClick} aria-current={route.page === 'fleet' ? 'page' : undefined}>
            Fleet
          </a>
        </nav>
      </header>
      <main>
        {route.page === 'fleet' && <FleetPage />}
        {route.page === 'job' && <JobPage key={route.jobId} jobId={route.jobId} />}
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
    </div>
  );
}
