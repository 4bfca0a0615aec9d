/**
 * Who is using the dashboard (`GET /api/tw/v1/auth/me`) and what that lets them see. Roles are per tenant
 * (issue 16): viewer (read), editor (viewer + silences, rules, annotations), admin (editor + tokens, users,
 * settings of the tenant); an operator has every tenant's admin rights. The server enforces all of it; the
 * dashboard only hides what would answer 403.
 */

export type Role = 'viewer' | 'editor' | 'admin';

export interface TenantRole {
  tenant: string;
  role: Role;
}

/** `GET /api/tw/v1/auth/me` and `POST /api/tw/v1/auth/login`. */
export interface Me {
  /** Null for anonymous access and for API tokens. */
  user: { id: string; name: string; operator?: boolean } | null;
  tenant: string;
  role: Role | null;
  tenants: TenantRole[];
  /** Sent as `X-CSRF-Token` on state-changing requests; null when the caller has no session. */
  csrfToken: string | null;
  /** How the caller was identified (`anonymous`, `token:<id>`, `session:<user>`…). */
  via?: string;
}

export interface LoginProviders {
  password: boolean;
  oidc: { id: string; name: string; loginUrl: string }[];
}

const RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };

/** Whether `me` holds at least `role` in its current tenant (an operator holds admin everywhere). */
export function hasRole(me: Me | null, role: Role): boolean {
  if (!me) return false;
  if (me.user?.operator) return true;
  return me.role !== null && RANK[me.role] >= RANK[role];
}

export type SettingsPage = 'tokens' | 'users' | 'audit';

export const SETTINGS_PAGES: readonly { page: SettingsPage; label: string; needs: Role }[] = [
  { page: 'tokens', label: 'API tokens', needs: 'admin' },
  { page: 'users', label: 'Users', needs: 'admin' },
  { page: 'audit', label: 'Audit log', needs: 'admin' },
];

/** The settings pages `me` may use, in menu order; empty for a viewer or an editor. */
export function settingsFor(me: Me | null): SettingsPage[] {
  return SETTINGS_PAGES.filter((p) => hasRole(me, p.needs)).map((p) => p.page);
}

/** The scope a token may hold: one of these (the server's `TOKEN_SCOPES`); admin includes read and ingest. */
export const TOKEN_SCOPES = ['ingest', 'read', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export const TOKEN_SCOPE_HELP: Record<TokenScope, string> = {
  ingest: 'send metrics and job events (agents, SDKs)',
  read: 'read dashboards and run queries',
  admin: 'everything, including tokens, users and settings',
};

/** Expiry choices of the token form: label → `expiresIn` (a duration the server parses; null: never). */
export const TOKEN_EXPIRY: readonly { label: string; value: string | null }[] = [
  { label: '7 days', value: '7d' },
  { label: '30 days', value: '30d' },
  { label: '90 days', value: '90d' },
  { label: '1 year', value: '365d' },
  { label: 'Never', value: null },
];

/**
 * The validation of the token form, before it is sent: a message naming what is wrong, or null. The server
 * validates again; this only spares a round trip for the obvious mistakes.
 */
export function tokenFormError(form: {
  name: string;
  scope: string | null;
  rateLimit: string;
}): string | null {
  if (form.name.trim() === '') return 'Give the token a name, e.g. the machine or job that will use it.';
  if (form.name.length > 128) return 'The name is longer than 128 characters.';
  if (form.scope === null || !(TOKEN_SCOPES as readonly string[]).includes(form.scope))
    return 'Choose a scope.';
  if (form.rateLimit.trim() !== '') {
    const n = Number(form.rateLimit);
    if (!Number.isFinite(n) || n <= 0)
      return 'The rate limit must be a positive number of requests per second.';
  }
  return null;
}

/** Whether a request with this method changes state, and so needs `X-CSRF-Token` under a session. */
export function isStateChanging(method: string | undefined): boolean {
  const m = (method ?? 'GET').toUpperCase();
  return m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS';
}

/** The login page's URL that comes back to `path` (the current page) after signing in. */
export function loginUrlFor(path: string): string {
  if (path === '/' || path.startsWith('/login')) return '/login';
  return `/login?redirect=${encodeURIComponent(path)}`;
}

/**
 * Where to go after signing in: the `redirect` parameter when it is a path of this site, else the fleet.
 * (`//evil.example` and `/\evil.example` are other sites to a browser.)
 */
export function redirectTarget(search: string): string {
  const r = new URLSearchParams(search).get('redirect');
  if (!r?.startsWith('/') || r.startsWith('//') || r.startsWith('/\\') || r.startsWith('/login')) return '/';
  return r;
}

/** An OIDC provider's login link that returns to `redirect` afterwards. */
export function oidcLoginHref(loginUrl: string, redirect: string): string {
  return redirect === '/' ? loginUrl : `${loginUrl}?redirect=${encodeURIComponent(redirect)}`;
}

/** Whether `me` is someone who signed in or holds a token, not anonymous access. */
export function identified(me: Me | null): boolean {
  return me !== null && (me.user !== null || /^token[: ]/.test(me.via ?? ''));
}

/** What the user menu's button says: the user's name, or how an anonymous/token caller is identified. */
export function displayName(me: Me): string {
  if (me.user) return me.user.name;
  // `token <id>` today; the contract's `token:<id>` is read too.
  const token = /^token[: ](.+)$/.exec(me.via ?? '');
  if (token) return `token ${token[1]}`;
  return 'anonymous';
}

/** Two letters for the avatar: initials of a name (`ada lovelace` → `AL`, `ada` → `AD`). */
export function initials(name: string): string {
  const words = name.split(/[\s._@-]+/).filter((w) => w.length > 0);
  if (words.length === 0) return '?';
  if (words.length === 1) return words[0]!.slice(0, 2).toUpperCase();
  return (words[0]![0]! + words[1]![0]!).toUpperCase();
}

/** A time of the auth API (ms since the epoch, or an ISO 8601 string) as ms; null when absent or unreadable. */
export function timeOf(v: string | number | null | undefined): number | null {
  if (v === null || v === undefined || v === '') return null;
  const ms = typeof v === 'number' ? v : Date.parse(v);
  return Number.isFinite(ms) ? ms : null;
}

/** A user's role in `tenant`, or null when the user has none there. */
export function roleIn(user: { roles: readonly TenantRole[] }, tenant: string): Role | null {
  return user.roles.find((r) => r.tenant === tenant)?.role ?? null;
}
