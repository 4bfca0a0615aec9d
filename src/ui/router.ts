import { useEffect, useState } from 'react';
import type { SettingsPage } from './lib/session';
import { withParams } from './lib/url';

/**
 * The dashboard's routes live in the URL path and query, so any view is a shareable link.
 * A tiny history router: the app has a handful of pages and needs nothing more.
 */
export type Route =
  | { page: 'fleet' }
  | { page: 'job'; jobId: string }
  | { page: 'node'; nodeId: string }
  | { page: 'compare' }
  | { page: 'runs' }
  | { page: 'alerts' }
  | { page: 'notifications' }
  | { page: 'explore' }
  | { page: 'login' }
  /** `section` null: the first settings page the user may use. */
  | { page: 'settings'; section: SettingsPage | null }
  | { page: 'not-found'; path: string };

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { page: 'fleet' };
  const job = /^\/jobs\/(.+?)\/?$/.exec(pathname);
  if (job) return { page: 'job', jobId: decodeURIComponent(job[1]!) };
  const node = /^\/nodes\/(.+?)\/?$/.exec(pathname);
  if (node) return { page: 'node', nodeId: decodeURIComponent(node[1]!) };
  if (/^\/compare\/?$/.test(pathname)) return { page: 'compare' };
  if (/^\/runs\/?$/.test(pathname)) return { page: 'runs' };
  if (/^\/alerts\/?$/.test(pathname)) return { page: 'alerts' };
  if (/^\/notifications\/?$/.test(pathname)) return { page: 'notifications' };
  if (/^\/explore\/?$/.test(pathname)) return { page: 'explore' };
  if (/^\/login\/?$/.test(pathname)) return { page: 'login' };
  const settings = /^\/settings(?:\/(tokens|users|audit))?\/?$/.exec(pathname);
  if (settings) return { page: 'settings', section: (settings[1] as SettingsPage | undefined) ?? null };
  return { page: 'not-found', path: pathname };
}

const URL_EVENT = 'tw:url';

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  window.scrollTo(0, 0);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useLocation(): { pathname: string; search: string } {
  const [loc, setLoc] = useState({ pathname: location.pathname, search: location.search });
  useEffect(() => {
    const onChange = () =>
      setLoc((prev) =>
        prev.pathname === location.pathname && prev.search === location.search
          ? prev
          : { pathname: location.pathname, search: location.search },
      );
    window.addEventListener('popstate', onChange);
    window.addEventListener(URL_EVENT, onChange);
    return () => {
      window.removeEventListener('popstate', onChange);
      window.removeEventListener(URL_EVENT, onChange);
    };
  }, []);
  return loc;
}

/**
 * The page's query parameters and a setter that merges a patch into them (null removes a key). The URL is
 * replaced, not pushed, so that tweaking a filter does not fill the history; `push` makes a new entry.
 */
export function useSearchParams(): [
  URLSearchParams,
  (patch: Record<string, string | null | undefined>, push?: boolean) => void,
] {
  const { search } = useLocation();
  const set = (patch: Record<string, string | null | undefined>, push = false) => {
    const next = location.pathname + withParams(location.search, patch);
    if (next === location.pathname + location.search) return;
    if (push) history.pushState(null, '', next);
    else history.replaceState(null, '', next);
    window.dispatchEvent(new Event(URL_EVENT));
  };
  return [new URLSearchParams(search), set];
}

/** Left clicks on internal links navigate without a page load; modified clicks open new tabs as usual. */
export function onLinkClick(ev: React.MouseEvent<HTMLAnchorElement>): void {
  if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(ev.currentTarget.getAttribute('href')!);
}
