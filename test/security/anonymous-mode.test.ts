/**
 * The default `trainwatch start` (users off, anonymous read on loopback): the access routes answer for the
 * anonymous caller, login is off, and the permission table still applies (anonymous callers cannot edit).
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir } from '../support/helpers.js';

let tw: Trainwatch;
beforeAll(async () => {
  tw = await startTrainwatch(
    loadConfig({ flags: { listen: '127.0.0.1:0', data_dir: tempDir('tw-anon-') } }),
    pino({ level: 'silent' }),
  );
});
afterAll(() => tw?.stop());

describe('anonymous mode (auth.users: false)', () => {
  it('answers /auth/me for the anonymous caller, and has no password login', async () => {
    const me = await tw.app.inject({ url: '/api/tw/v1/auth/me' });
    expect(me.json()).toEqual({
      user: null,
      tenant: 'default',
      role: 'viewer',
      via: 'anonymous',
      tenants: [{ tenant: 'default', role: 'viewer' }],
      csrfToken: null,
    });
    expect((await tw.app.inject({ url: '/api/tw/v1/auth/providers' })).json()).toEqual({
      password: false,
      oidc: [],
    });
    const login = await tw.app.inject({
      method: 'POST',
      url: '/api/tw/v1/auth/login',
      payload: { username: 'admin', password: 'whatever-it-is' },
    });
    expect(login.statusCode).toBe(400);
    expect(login.json().error).toMatch(/user login is off/);
    expect(await tw.access!.store.countUsers()).toBe(0);
  });

  it('keeps anonymous reads and refuses anonymous edits and admin routes with 401 (a token is needed)', async () => {
    expect((await tw.app.inject({ url: '/api/tw/v1/jobs' })).statusCode).toBe(200);
    const edit = await tw.app.inject({ method: 'POST', url: '/api/v2/silences', payload: {} });
    expect(edit.statusCode).toBe(401);
    expect(edit.json().error).toMatch(/authentication required to change silences, rules and annotations/);
    expect((await tw.app.inject({ url: '/api/tw/v1/tokens' })).statusCode).toBe(401);
    // A cookie means nothing while users are off.
    expect(
      (await tw.app.inject({ url: '/api/tw/v1/tokens', headers: { cookie: 'tw_session=abc' } })).statusCode,
    ).toBe(401);
  });
});
