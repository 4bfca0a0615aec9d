/**
 * Sign-in, the signed-in user, users, API tokens and the audit log (issue 16's access-control contract).
 * Re-exported by api.ts.
 */
import { ApiError, headers, qs, request, sendJson, setCsrfToken, unwrap } from './api-client';
import type { LoginProviders, Me, Role } from './lib/session';

// ---- sign-in, users, tokens, audit (issue 16's access-control contract) ----------------------------------

/** Who is signed in; throws ApiError 401 when nobody is (and anonymous access is off). */
export async function fetchMe(signal?: AbortSignal): Promise<Me> {
  const res = await fetch('/api/tw/v1/auth/me', { signal, headers: headers() });
  const body = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new ApiError(
      res.status,
      (body as { error?: string }).error ?? `${res.status} ${res.statusText}`,
      res.status === 404,
    );
  const me = unwrap<Me>(body);
  setCsrfToken(me.csrfToken ?? null);
  return me;
}

/** How one may sign in here (public: the login page asks before anyone is signed in). */
export async function fetchLoginProviders(signal?: AbortSignal): Promise<LoginProviders> {
  return unwrap<LoginProviders>(await request('/api/tw/v1/auth/providers', { signal }));
}

/** Signs in with a password; the answer sets the session cookie. A wrong password is ApiError 401. */
export async function login(username: string, password: string): Promise<Me> {
  const res = await fetch('/api/tw/v1/auth/login', {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new ApiError(res.status, (body as { error?: string }).error ?? `${res.status} ${res.statusText}`);
  const me = unwrap<Me>(body);
  setCsrfToken(me.csrfToken ?? null);
  return me;
}

export async function logout(): Promise<void> {
  await sendJson('POST', '/api/tw/v1/auth/logout');
  setCsrfToken(null);
}

/** Makes `tenant` the session's current tenant (one of the user's). */
export async function switchTenant(tenant: string): Promise<void> {
  await sendJson('POST', '/api/tw/v1/auth/tenant', { tenant });
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  createdAt: string | number | null;
  expiresAt: string | number | null;
  lastUsedAt: string | number | null;
  rateLimitPerSecond: number | null;
  revoked: boolean;
}

export async function fetchTokens(signal?: AbortSignal): Promise<ApiToken[]> {
  return unwrap<{ tokens: ApiToken[] }>(await request('/api/tw/v1/tokens', { signal })).tokens;
}

/** Creates a token; the answer holds its secret, which the server never shows again. */
export async function createToken(t: {
  name: string;
  scopes: string[];
  expiresIn?: string;
  rateLimitPerSecond?: number;
}): Promise<{ token: string; id: string }> {
  return unwrap<{ token: string; id: string }>(await sendJson('POST', '/api/tw/v1/tokens', t));
}

export async function revokeToken(id: string): Promise<void> {
  await sendJson('DELETE', `/api/tw/v1/tokens/${encodeURIComponent(id)}`);
}

export interface UserRow {
  id: string;
  name: string;
  disabled: boolean;
  operator: boolean;
  roles: { tenant: string; role: Role }[];
  createdAt: string | number | null;
  lastLoginAt: string | number | null;
}

export async function fetchUsers(signal?: AbortSignal): Promise<UserRow[]> {
  return unwrap<{ users: UserRow[] }>(await request('/api/tw/v1/users', { signal })).users;
}

/** Adds a user with a role in the current tenant. */
export async function createUser(u: { name: string; password: string; role: Role }): Promise<void> {
  await sendJson('POST', '/api/tw/v1/users', u);
}

export async function updateUser(
  name: string,
  patch: { role?: Role; disabled?: boolean; password?: string },
): Promise<void> {
  await sendJson('PATCH', `/api/tw/v1/users/${encodeURIComponent(name)}`, patch);
}

export interface AuditEvent {
  time: string | number;
  actor: string;
  via: string;
  tenant: string | null;
  action: string;
  target: string | null;
  ip: string | null;
  outcome: string;
}

export async function fetchAudit(
  q: { actor?: string; action?: string; since?: string; limit?: number },
  signal?: AbortSignal,
): Promise<AuditEvent[]> {
  return unwrap<{ events: AuditEvent[] }>(await request(`/api/tw/v1/audit${qs(q)}`, { signal })).events;
}
