/**
 * The access matrix, generated from the route table (issue 16): every route the real server registers (the
 * same module code as `trainwatch start`, with `auth.users: true`) × every kind of caller × own tenant and
 * another tenant (X-Scope-OrgID, and the path for routes with a `:tenant` parameter), each with the status
 * its declared permission implies:
 * - denied: 401 without credentials, 403 with credentials lacking the permission or naming another tenant;
 * - allowed: anything but 401/403, and no 5xx (the requests carry no valid input, so most answer 4xx).
 *
 * No route escapes: the table is what the permission hook recorded while the routes were added, and a route
 * without a declared permission cannot be added at all (the last test).
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { accessControlOf, type DeclaredRoute, type Permission, type Scope } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createHttpServer } from '../../src/server/http.js';
import { startTrainwatch } from '../../src/server/index.js';
import { tempDir } from '../support/helpers.js';

const OWN = 'alpha';
const OTHER = 'beta';
const ADMIN_PASSWORD = 'matrix-admin-password';

process.env.TRAINWATCH_ADMIN_PASSWORD = ADMIN_PASSWORD;
const tw = await startTrainwatch(
  loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: tempDir('tw-matrix-'),
      auth: { users: true, anonymous_tenant: OWN },
    },
  }),
  pino({ level: 'silent' }),
);
delete process.env.TRAINWATCH_ADMIN_PASSWORD;
afterAll(() => tw.stop());

interface Caller {
  readonly name: string;
  headers: Record<string, string>;
  /** A session's user name and password: logout ends the session, and the matrix signs in again. */
  readonly login?: readonly [string, string];
  /** What the caller may do in its own tenant; empty for anonymous. */
  readonly scopes: ReadonlySet<Scope | 'operator'>;
  readonly operator: boolean;
  /** A session request without its CSRF token: state changes are refused. */
  readonly noCsrf?: boolean;
}

async function session(username: string, password: string): Promise<{ cookie: string; csrf: string }> {
  const res = await tw.app.inject({
    method: 'POST',
    url: '/api/tw/v1/auth/login',
    payload: { username, password },
  });
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.body}`);
  return { cookie: String(res.headers['set-cookie']).split(';')[0]!, csrf: res.json().csrfToken };
}

const store = tw.access!.store;
for (const role of ['viewer', 'editor', 'admin'] as const)
  await store.createUser({
    name: `matrix-${role}`,
    password: `${role}-password`,
    roles: [{ tenant: OWN, role }],
  });
const callers: Caller[] = [{ name: 'anonymous', headers: {}, scopes: new Set(), operator: false }];
const roleScopes: Record<string, Scope[]> = {
  viewer: ['read'],
  editor: ['read', 'edit'],
  admin: ['read', 'edit', 'admin'],
};
for (const role of ['viewer', 'editor', 'admin']) {
  const s = await session(`matrix-${role}`, `${role}-password`);
  callers.push({
    name: role,
    headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
    login: [`matrix-${role}`, `${role}-password`],
    scopes: new Set(roleScopes[role]),
    operator: false,
  });
}
const op = await session('admin', ADMIN_PASSWORD);
callers.push({
  name: 'operator',
  headers: { cookie: op.cookie, 'x-csrf-token': op.csrf },
  login: ['admin', ADMIN_PASSWORD],
  scopes: new Set(['read', 'edit', 'admin', 'operator']),
  operator: true,
});
const noCsrf = await session('admin', ADMIN_PASSWORD);
callers.push({
  name: 'operator session without CSRF token',
  headers: { cookie: noCsrf.cookie },
  scopes: new Set(['read', 'edit', 'admin', 'operator']),
  operator: true,
  noCsrf: true,
});
const tokenScopes: Record<string, Scope[]> = {
  ingest: ['ingest'],
  read: ['read'],
  admin: ['ingest', 'read', 'edit', 'admin'],
};
for (const scope of ['ingest', 'read', 'admin'] as const) {
  const { token } = await tw.access!.tokenAdmin.create({ tenant: OWN, scope, name: `matrix ${scope}` });
  callers.push({
    name: `token ${scope}`,
    headers: { authorization: `Bearer ${token}` },
    scopes: new Set(tokenScopes[scope]),
    operator: false,
  });
}

type Variant = 'other tenant (X-Scope-OrgID)' | 'other tenant (path)' | 'own tenant';
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

function variantsOf(route: DeclaredRoute): Variant[] {
  return route.url.includes(':tenant')
    ? ['other tenant (X-Scope-OrgID)', 'other tenant (path)', 'own tenant']
    : ['other tenant (X-Scope-OrgID)', 'own tenant'];
}

/** What the declared permission implies for this caller and variant. */
function expected(route: DeclaredRoute, caller: Caller, variant: Variant): 'allowed' | 401 | 403 {
  const permission: Permission = route.permission;
  if (permission === 'public') return 'allowed';
  if (caller.name === 'anonymous') return 401;
  if (variant === 'other tenant (X-Scope-OrgID)' && !caller.operator) return 403;
  if (!caller.scopes.has(permission)) return 403;
  if (variant === 'other tenant (path)' && !caller.operator) return 403;
  if (caller.noCsrf && !SAFE.has(route.method)) return 403;
  return 'allowed';
}

/** A URL for the route: parameters get values that name nothing (so no request changes what others use). */
function urlOf(route: DeclaredRoute, variant: Variant): string {
  return route.url
    .replace(':tenant', variant === 'own tenant' ? OWN : OTHER)
    .replace(/:(\w+)/g, (_m, name: string) => `matrix-no-such-${name}`);
}

const routes = [...accessControlOf(tw.app).routes()].sort(
  (a, b) => Number(a.url === '/api/tw/v1/auth/logout') - Number(b.url === '/api/tw/v1/auth/logout'),
);
const cases = routes.reduce((n, r) => n + variantsOf(r).length * callers.length, 0);

describe(`access matrix: ${routes.length} routes × ${callers.length} callers × tenants = ${cases} cases`, () => {
  it('covers every route of the server, each with a declared permission', () => {
    expect(routes.length).toBeGreaterThan(40);
    const urls = new Set(routes.map((r) => r.url));
    for (const must of [
      '/api/v1/write',
      '/api/v1/query',
      '/api/tw/v1/users',
      '/api/tw/v1/audit',
      '/api/v2/silences',
    ])
      expect(urls).toContain(must);
    for (const r of routes)
      expect(['public', 'ingest', 'read', 'edit', 'admin', 'operator']).toContain(r.permission);
  });

  for (const route of routes) {
    it(`${route.method} ${route.url} (${route.permission})`, async () => {
      const failures: string[] = [];
      for (const caller of callers) {
        for (const variant of variantsOf(route)) {
          const res = await tw.app.inject({
            method: route.method as 'GET',
            url: urlOf(route, variant),
            headers: {
              ...caller.headers,
              ...(variant === 'other tenant (X-Scope-OrgID)' ? { 'x-scope-orgid': OTHER } : {}),
              ...(SAFE.has(route.method) || route.method === 'DELETE'
                ? {}
                : { 'content-type': 'application/json' }),
            },
            ...(SAFE.has(route.method) || route.method === 'DELETE' ? {} : { payload: '{}' }),
          });
          const want = expected(route, caller, variant);
          const got = res.statusCode;
          const ok =
            want === 'allowed'
              ? got !== 401 && got !== 403 && (got < 500 || route.permission === 'public')
              : got === want;
          if (route.url === '/api/tw/v1/auth/logout' && got === 204 && caller.login) {
            const again = await session(...caller.login);
            caller.headers = { cookie: again.cookie, 'x-csrf-token': again.csrf };
          }
          if (!ok)
            failures.push(
              `${caller.name}, ${variant}: expected ${want}, got ${got} ${res.body.slice(0, 200)}`,
            );
        }
      }
      expect(failures).toEqual([]);
    });
  }

  it('refuses to add a route that declares no permission (the server would not start)', () => {
    const { app } = createHttpServer({
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      bodyLimit: 1024,
    });
    expect(() => app.get('/api/tw/v1/new-thing', async () => ({}))).toThrow(
      'route GET /api/tw/v1/new-thing declares no permission',
    );
  });
});
