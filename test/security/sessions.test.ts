/**
 * User login on a real server (`auth.users: true`, every role, embedded store), through its HTTP API: the
 * first admin, login and its rate limit, the session cookie, CSRF, roles, the tenant switch, tokens with
 * expiry and rate limits, logout ending SSE streams, and the audit log of all of it.
 */
import http from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir } from '../support/helpers.js';

const ADMIN_PASSWORD = 'first-admin-password';
let tw: Trainwatch;

beforeAll(async () => {
  process.env.TRAINWATCH_ADMIN_PASSWORD = ADMIN_PASSWORD;
  try {
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: tempDir('tw-sessions-'),
          auth: { users: true, anonymous_tenant: 'alpha', login_max_failures: 3 },
        },
      }),
      pino({ level: 'silent' }),
    );
  } finally {
    delete process.env.TRAINWATCH_ADMIN_PASSWORD;
  }
});

afterAll(async () => {
  await tw?.stop();
});

interface Signed {
  cookie: string;
  csrf: string;
  body: Record<string, unknown>;
}

async function login(username: string, password: string, tenant?: string): Promise<Signed> {
  const res = await tw.app.inject({
    method: 'POST',
    url: '/api/tw/v1/auth/login',
    payload: { username, password, ...(tenant ? { tenant } : {}) },
  });
  expect(res.statusCode, res.body).toBe(200);
  const setCookie = String(res.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0]!, csrf: res.json().csrfToken, body: res.json() };
}

const silence = {
  matchers: [{ name: 'job_id', value: 'j1', isRegex: false, isEqual: true }],
  startsAt: new Date().toISOString(),
  endsAt: new Date(Date.now() + 3_600_000).toISOString(),
  createdBy: 'test',
  comment: 'maintenance',
};

describe('user login (auth.users: true)', () => {
  it('creates the first admin at first start, an operator and admin of the first tenant', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    expect(admin.body).toMatchObject({
      user: { name: 'admin', operator: true },
      tenant: 'alpha',
      role: 'admin',
      tenants: [{ tenant: 'alpha', role: 'admin' }],
    });
    expect(admin.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('sets the session cookie HttpOnly, SameSite=Lax, Path=/ (no Secure over plain HTTP)', async () => {
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/login',
      payload: { username: 'admin', password: ADMIN_PASSWORD },
    });
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^tw_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=604800$/);
  });

  it('refuses anonymous requests, and answers the same 401 for an unknown user and a wrong password', async () => {
    expect((await tw.app.inject({ url: '/api/tw/v1/jobs' })).statusCode).toBe(401);
    expect((await tw.app.inject({ url: '/api/tw/v1/auth/me' })).statusCode).toBe(401);
    const providers = await tw.app.inject({ url: '/api/tw/v1/auth/providers' });
    expect(providers.json()).toEqual({ password: true, oidc: [] });
    const wrong = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/login',
      payload: { username: 'admin', password: 'not-it-at-all' },
    });
    const unknown = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/login',
      payload: { username: 'nobody', password: 'not-it-at-all' },
    });
    expect([wrong.statusCode, unknown.statusCode]).toEqual([401, 401]);
    expect(wrong.json().error).toBe('invalid username or password');
    expect(unknown.json().error).toBe(wrong.json().error);
  });

  it('rate-limits failed logins per user and address (429 with Retry-After), even with the right password', async () => {
    const attempt = (password: string) =>
      tw.app.inject({
        method: 'POST',
        url: '/api/tw/v1/auth/login',
        remoteAddress: '10.9.9.9',
        payload: { username: 'admin', password },
      });
    for (let i = 0; i < 3; i++) expect((await attempt('wrong-password')).statusCode).toBe(401);
    const limited = await attempt(ADMIN_PASSWORD);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json().error).toMatch(/too many failed logins/);
  });

  it('needs the session CSRF token on state-changing cookie requests; bearer tokens need none', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const post = (headers: Record<string, string>) =>
      tw.app.inject({ method: 'POST', url: '/api/v2/silences', headers, payload: silence });
    const missing = await post({ cookie: admin.cookie });
    expect(missing.statusCode).toBe(403);
    expect(missing.json().error).toMatch(/missing CSRF token.*X-CSRF-Token/);
    expect((await post({ cookie: admin.cookie, 'x-csrf-token': `${admin.csrf.slice(1)}x` })).statusCode).toBe(
      403,
    );
    expect((await post({ cookie: admin.cookie, 'x-csrf-token': admin.csrf })).statusCode).toBe(200);
    // Reads need no CSRF token.
    expect(
      (await tw.app.inject({ url: '/api/v2/silences', headers: { cookie: admin.cookie } })).statusCode,
    ).toBe(200);
    const token = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/tokens',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
      payload: { name: 'silencer', scopes: ['admin'] },
    });
    expect(token.statusCode).toBe(201);
    expect((await post({ authorization: `Bearer ${token.json().token}` })).statusCode).toBe(200);
  });

  it('gives users roles per tenant: a viewer reads, cannot edit, and switches only to its tenants', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const h = { cookie: admin.cookie, 'x-csrf-token': admin.csrf };
    const created = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/users',
      headers: h,
      payload: { name: 'vic', password: 'vic-password', role: 'viewer' },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().user).toMatchObject({ name: 'vic', roles: [{ tenant: 'alpha', role: 'viewer' }] });
    // The operator gives vic a second tenant (X-Scope-OrgID picks it).
    const beta = await tw.app.inject({
      method: 'PATCH',
      url: '/api/tw/v1/users/vic',
      headers: { ...h, 'x-scope-orgid': 'beta' },
      payload: { role: 'editor' },
    });
    expect(beta.statusCode, beta.body).toBe(200);

    const vic = await login('vic', 'vic-password');
    const vh = { cookie: vic.cookie, 'x-csrf-token': vic.csrf };
    expect(vic.body).toMatchObject({ tenant: 'alpha', role: 'viewer' });
    expect((await tw.app.inject({ url: '/api/tw/v1/jobs', headers: vh })).statusCode).toBe(200);
    const edit = await tw.app.inject({
      method: 'POST',
      url: '/api/v2/silences',
      headers: vh,
      payload: silence,
    });
    expect(edit.statusCode).toBe(403);
    expect(edit.json().error).toMatch(
      /session:vic \(tenant alpha\) has scope read; .* needs role editor or admin/,
    );
    expect(
      (await tw.app.inject({ url: '/api/tw/v1/jobs', headers: { ...vh, 'x-scope-orgid': 'beta' } }))
        .statusCode,
    ).toBe(403);
    const switched = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/tenant',
      headers: vh,
      payload: { tenant: 'beta' },
    });
    expect(switched.json()).toMatchObject({ tenant: 'beta', role: 'editor' });
    expect(
      (await tw.app.inject({ method: 'POST', url: '/api/v2/silences', headers: vh, payload: silence }))
        .statusCode,
    ).toBe(200);
    const nowhere = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/tenant',
      headers: vh,
      payload: { tenant: 'gamma' },
    });
    expect(nowhere.statusCode).toBe(403);

    // Disabling the user ends its sessions at once.
    const off = await tw.app.inject({
      method: 'PATCH',
      url: '/api/tw/v1/users/vic',
      headers: { ...h, 'x-scope-orgid': 'beta' },
      payload: { disabled: true },
    });
    expect(off.statusCode).toBe(200);
    expect((await tw.app.inject({ url: '/api/tw/v1/jobs', headers: vh })).statusCode).toBe(401);
  });

  it('creates tokens with expiry and a rate limit, lists them without secrets, revokes them', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const h = { cookie: admin.cookie, 'x-csrf-token': admin.csrf };
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/tokens',
      headers: h,
      payload: { name: 'slow reader', scopes: ['read'], expiresIn: '1h', rateLimitPerSecond: 1 },
    });
    expect(res.statusCode).toBe(201);
    const { token, id, expiresAt } = res.json();
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(3_500_000);
    const read = () =>
      tw.app.inject({ url: '/api/tw/v1/jobs', headers: { authorization: `Bearer ${token}` } });
    expect((await read()).statusCode).toBe(200);
    const limited = await read();
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    expect(limited.json().error).toMatch(/over its rate limit of 1 requests per second/);
    const list = await tw.app.inject({ url: '/api/tw/v1/tokens', headers: h });
    const listed = list.json().tokens.find((t: { id: string }) => t.id === id);
    expect(listed).toMatchObject({
      name: 'slow reader',
      scopes: ['read'],
      rateLimitPerSecond: 1,
      revoked: false,
    });
    expect(list.body).not.toContain(token.slice(22));
    const bad = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/tokens',
      headers: h,
      payload: { name: 'x', scopes: ['read', 'ingest'] },
    });
    expect(bad.statusCode).toBe(400);
    expect(
      (await tw.app.inject({ method: 'DELETE', url: `/api/tw/v1/tokens/${id}`, headers: h })).statusCode,
    ).toBe(204);
    const revoked = await read();
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error).toMatch(/was revoked/);
  });

  it('ends an open SSE stream when its session logs out; logout clears the cookie', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const stream = http.get(`${tw.url}/api/tw/v1/ticks?job_id=none`, { headers: { cookie: admin.cookie } });
    const status = new Promise<number>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('response', (res) => resolve(res.statusCode!));
    });
    let text = '';
    const body = new Promise<string>((resolve) => {
      stream.on('response', (res) => res.on('data', (c: Buffer) => (text += c.toString())));
      stream.on('close', () => resolve(text));
    });
    expect(await status).toBe(200);
    const noCsrf = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/logout',
      headers: { cookie: admin.cookie },
    });
    expect(noCsrf.statusCode).toBe(403);
    const out = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/logout',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^tw_session=; .*Max-Age=0/);
    expect(
      (await tw.app.inject({ url: '/api/tw/v1/auth/me', headers: { cookie: admin.cookie } })).statusCode,
    ).toBe(401);
    expect(await body).toMatch(/event: error\ndata: \{"error":"stream closed: the session has ended/);
  });

  it('records logins, failures, logout, token, user and silence changes in the audit log', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const res = await tw.app.inject({
      url: '/api/tw/v1/audit?limit=1000',
      headers: { cookie: admin.cookie },
    });
    expect(res.statusCode).toBe(200);
    const events = res.json().events as { action: string; outcome: string; actor: string; tenant: string }[];
    const seen = new Set(events.map((e) => `${e.action}:${e.outcome}`));
    for (const want of [
      'login:success',
      'login:failure',
      'logout:success',
      'token.create:success',
      'token.revoke:success',
      'user.create:success',
      'user.update:success',
      'silence.create:success',
      'silence.create:denied',
      'auth.tenant:success',
    ])
      expect(seen, want).toContain(want);
    const failed = events.find(
      (e) => e.action === 'login' && e.outcome === 'failure' && e.actor === 'nobody',
    );
    expect(failed).toBeDefined();
    const onlyLogins = await tw.app.inject({
      url: '/api/tw/v1/audit?action=login&actor=vic',
      headers: { cookie: admin.cookie },
    });
    expect(
      onlyLogins
        .json()
        .events.every((e: { action: string; actor: string }) => e.action === 'login' && e.actor === 'vic'),
    ).toBe(true);
  });
});
