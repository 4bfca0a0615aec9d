import { useEffect, useState } from 'react';

/**
 * The dashboard's routes live in the URL path and query, so any view is a shareable link.
 * A tiny history router: the app has a handful of pages and needs nothing more.
 */
export type Route = { page: 'fleet' } | { page: 'job'; jobId: string } | { page: 'not-found'; path: string };

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { page: 'fleet' };
  const job = /^\/jobs\/([^/]+)\/?$/.exec(pathname);
  if (job) return { page: 'job', jobId: decodeURIComponent(job[1]!) };
  return { page: 'not-found', path: pathname };
}

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useLocation(): { pathname: string; search: string } {
  const [loc, setLoc] = useState({ pathname: location.pathname, search: location.search });
  useEffect(() => {
    const onPop = () => setLoc({ pathname: location.pathname, search: location.search });
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  return loc;
}

/** Left clicks on internal links navigate without a page load; modified clicks open new tabs as usual. */
export function onLinkClick(ev: React.MouseEvent<HTMLAnchorElement>): void {
  if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(ev.currentTarget.getAttribute('href')!);
}
