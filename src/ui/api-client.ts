/**
 * The HTTP client under every API call of the dashboard (api.ts): the API token and CSRF token, request
 * headers, errors as {@link ApiError}, the `tw:unauthorized` event, query strings and JSON bodies. Separate
 * so that each group of endpoints (api-data.ts, api-alerting.ts, api-access.ts) shares one way of asking.
 */
import { isStateChanging } from './lib/session';

const TOKEN_KEY = 'trainwatch.token';
export const UNAUTHORIZED_EVENT = 'tw:unauthorized';

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The server has no such route: the feature is not (yet) on this server. */
    readonly missingRoute = false,
  ) {
    super(message);
  }
}

/** The session's CSRF token (from `/auth/me` or the login answer); null without a session. */
let csrfToken: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function headers(extra: Record<string, string> = {}, method?: string): Record<string, string> {
  const token = getToken();
  return {
    accept: 'application/json',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(csrfToken && isStateChanging(method) ? { 'x-csrf-token': csrfToken } : {}),
    ...extra,
  };
}

export async function request(path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(path, {
    ...init,
    headers: headers(init.headers as Record<string, string>, init.method),
  });
  const text = await res.text();
  let body: unknown = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { error: text.slice(0, 300) };
  }
  if (!res.ok) {
    const msg =
      (body as { error?: string; message?: string }).error ?? (body as { message?: string }).message;
    if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: msg }));
    const missing = res.status === 404 && /^no route for /.test(msg ?? '');
    throw new ApiError(res.status, msg ?? `${res.status} ${res.statusText}`, missing);
  }
  return body;
}

/** GET of an API answering `{status: "success", data}` (trainwatch's and Prometheus's envelope). */
export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const body = (await request(path, { signal })) as { status?: string; data?: T; error?: string };
  if (body.status !== 'success') throw new ApiError(200, body.error ?? 'the server answered without data');
  return body.data as T;
}

export function qs(params: Record<string, string | number | readonly string[] | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The auth API answers plain JSON objects; accept the `{status, data}` envelope too. */
export function unwrap<T>(body: unknown): T {
  const b = body as { status?: string; data?: T };
  return (b.status === 'success' && b.data !== undefined ? b.data : body) as T;
}

export function sendJson(method: string, path: string, body?: unknown): Promise<unknown> {
  return request(path, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
}
