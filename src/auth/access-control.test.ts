import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import {
  ACCESS_MIGRATIONS,
  AccessStore,
  MetaStore,
  sqliteRunner,
  TOKEN_MIGRATIONS,
  TokenStore,
} from '../meta/index.js';
import { TrainwatchError } from '../model/errors.js';
import { AccessControl, NO_ANONYMOUS, SessionCache } from './access-control.js';
import { LoginLimiter, TokenRateLimiter } from './limits.js';
import { TokenAuthenticator } from './token-auth.js';

function stores() {
  const meta = new MetaStore(path.join(tempDir('tw-ac-'), 'meta.db'));
  const tokens = new TokenStore(meta);
  meta.migrate(TOKEN_MIGRATIONS);
  meta.migrate(ACCESS_MIGRATIONS);
  return { tokens, access: new AccessStore(sqliteRunner(meta.db)) };
}

function statusOf(fn: () => unknown): number | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof TrainwatchError) return err.status;
    throw err;
  }
}

describe('sessions', () => {
  it('end after the idle timeout and after the absolute age, whichever comes first', async () => {
    const { access } = stores();
    let now = 1_000_000;
    const cache = new SessionCache(access, { idleMs: 10_000, maxAgeMs: 25_000 }, undefined, () => now);
    const user = await access.createUser({
      name: 'ann',
      password: 'password-1',
      roles: [{ tenant: 'a', role: 'viewer' }],
    });
    const { id } = await cache.open(user, 'a');
    now += 9_000;
    expect((await cache.get(id)).user.name).toBe('ann');
    now += 9_000; // 9 s after the last use: still alive
    expect((await cache.get(id)).session.tenant).toBe('a');
    now += 9_000; // 27 s after sign-in: past the absolute age
    await expect(cache.get(id)).rejects.toThrow(/the session has expired/);
    const second = await cache.open(user, 'a');
    now += 10_000; // idle for 10 s
    await expect(cache.get(second.id)).rejects.toThrow(/expired/);
    await cache.stop();
  });

  it('notice a disabled user or a logout in another process within the re-check interval', async () => {
    const { access } = stores();
    let now = 1_000_000;
    const here = new SessionCache(access, { idleMs: 60_000, maxAgeMs: 600_000 }, undefined, () => now);
    const user = await access.createUser({
      name: 'bob',
      password: 'password-1',
      roles: [{ tenant: 'a', role: 'admin' }],
    });
    const { id } = await here.open(user, 'a');
    await access.setDisabled(user.id, true); // e.g. `trainwatch user disable bob`
    expect((await here.get(id)).user.name).toBe('bob'); // cached
    now += 5_000;
    await expect(here.get(id)).rejects.toThrow(/sign in again/);
    await here.stop();
  });
});

describe('AccessControl', () => {
  it('lets an operator pick the tenant with X-Scope-OrgID and refuses it to everyone else', async () => {
    const { tokens, access } = stores();
    const cache = new SessionCache(access, { idleMs: 60_000, maxAgeMs: 600_000 });
    const control = new AccessControl({
      tokens: new TokenAuthenticator(tokens, NO_ANONYMOUS),
      sessions: cache,
    });
    const op = await access.createUser({ name: 'op', password: 'password-1', operator: true });
    const viewer = await access.createUser({
      name: 'vi',
      password: 'password-1',
      roles: [{ tenant: 'a', role: 'viewer' }],
    });
    const opSession = (await cache.open(op, 'a')).id;
    const viSession = (await cache.open(viewer, 'a')).id;
    const cred = (sessionId: string, tenantHeader?: string) => ({
      authorization: undefined,
      sessionId,
      tenantHeader,
    });
    expect(control.authenticate(cred(opSession, 'zeta'), 'admin')).toMatchObject({
      tenant: 'zeta',
      operator: true,
    });
    expect(statusOf(() => control.authenticate(cred(opSession, 'Bad Name'), 'read'))).toBe(400);
    expect(control.authenticate(cred(viSession), 'read')).toMatchObject({ tenant: 'a', via: 'session:vi' });
    expect(statusOf(() => control.authenticate(cred(viSession, 'zeta'), 'read'))).toBe(403);
    expect(statusOf(() => control.authenticate(cred(viSession), 'edit'))).toBe(403);
    // Users never send data: ingest is for tokens.
    expect(statusOf(() => control.authenticate(cred(opSession), 'ingest'))).toBe(403);
    expect(statusOf(() => control.authenticate({ authorization: undefined }, 'read'))).toBe(401);
    const { token } = tokens.create({ tenant: 'a', scope: 'read' });
    expect(
      statusOf(() => control.authenticate({ authorization: `Bearer ${token}`, tenantHeader: 'b' }, 'read')),
    ).toBe(403);
    await cache.stop();
  });
});

describe('limits', () => {
  it('token rate: a bucket of one second, refilled continuously, 429 with Retry-After beyond it', () => {
    const rates = new TokenRateLimiter();
    for (let i = 0; i < 4; i++) rates.take('t', 4, 1000);
    expect(() => rates.take('t', 4, 1000)).toThrow(/over its rate limit of 4 requests per second/);
    rates.take('t', 4, 1250);
    try {
      rates.take('t', 0.5, 1250);
      expect.unreachable();
    } catch (err) {
      expect((err as TrainwatchError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    }
  });

  it('login failures: per name and address within the window, forgotten on success', () => {
    const limiter = new LoginLimiter({ maxFailures: 2, windowMs: 60_000 });
    limiter.fail('ann', '1.1.1.1', 0);
    limiter.fail('ann', '1.1.1.1', 1000);
    expect(() => limiter.check('ann', '1.1.1.1', 2000)).toThrow(/too many failed logins/);
    expect(() => limiter.check('ann', '2.2.2.2', 2000)).not.toThrow();
    expect(() => limiter.check('ann', '1.1.1.1', 61_000)).not.toThrow();
    limiter.succeed('ann', '1.1.1.1');
    expect(() => limiter.check('ann', '1.1.1.1', 2000)).not.toThrow();
    // An attempt counts before its password is checked: concurrent attempts cannot all slip through.
    limiter.begin('bob', '3.3.3.3', 0);
    limiter.begin('bob', '3.3.3.3', 0);
    expect(() => limiter.begin('bob', '3.3.3.3', 0)).toThrow(/too many failed logins/);
  });
});
