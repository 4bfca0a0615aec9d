import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import { ACCESS_MIGRATIONS, AccessStore, sessionIdHash, sqliteRunner } from './access.js';
import { MetaStore } from './meta-store.js';
import { pgRunner } from './postgres/access.js';
import { PgMeta } from './postgres/pg-meta.js';
import { TOKEN_MIGRATIONS } from './tokens.js';

/** The same behaviour on both backends: one contract, run on SQLite and (when installed) PostgreSQL. */
function contract(open: () => Promise<AccessStore>) {
  it('creates users with hashed passwords and roles per tenant; refuses a taken name', async () => {
    const store = await open();
    expect(await store.countUsers()).toBe(0);
    const ann = await store.createUser(
      { name: 'ann', password: 'correct horse', roles: [{ tenant: 'a', role: 'admin' }] },
      1000,
    );
    expect(ann).toMatchObject({
      name: 'ann',
      operator: false,
      disabled: false,
      roles: [{ tenant: 'a', role: 'admin' }],
      createdAtMs: 1000,
      lastLoginAtMs: null,
      hasPassword: true,
    });
    await expect(store.createUser({ name: 'ann', password: 'another one' })).rejects.toThrow(
      /user ann already exists/,
    );
    await expect(store.createUser({ name: 'bob', password: 'short' })).rejects.toThrow(/at least 8/);
    await expect(store.createUser({ name: '../x', password: 'long enough' })).rejects.toThrow(/user name/);
    expect((await store.checkPassword('ann', 'correct horse'))?.id).toBe(ann.id);
    expect(await store.checkPassword('ann', 'wrong horse')).toBeUndefined();
    expect(await store.checkPassword('nobody', 'correct horse')).toBeUndefined();

    await store.setRole(ann.id, 'b', 'viewer');
    await store.setRole(ann.id, 'a', 'editor');
    expect((await store.user(ann.id))!.roles).toEqual([
      { tenant: 'a', role: 'editor' },
      { tenant: 'b', role: 'viewer' },
    ]);
    expect((await store.listUsers({ tenant: 'b' })).map((u) => u.name)).toEqual(['ann']);
    expect(await store.listUsers({ tenant: 'c' })).toEqual([]);
    await store.removeRole(ann.id, 'b');
    expect((await store.user(ann.id))!.roles).toEqual([{ tenant: 'a', role: 'editor' }]);
  });

  it('keeps sessions by the hash of their id; a password change or disabling ends them', async () => {
    const store = await open();
    const u = await store.createUser({
      name: 'cid',
      password: 'password-1',
      roles: [{ tenant: 'a', role: 'viewer' }],
    });
    const { id, session } = await store.createSession(u.id, 'a', 5000);
    expect(session.idSha256).toBe(sessionIdHash(id));
    expect(await store.session(sessionIdHash(id))).toEqual(session);
    await store.touchSessions(new Map([[session.idSha256, 7000]]));
    await store.touchSessions(new Map([[session.idSha256, 6000]]));
    expect((await store.session(session.idSha256))!.lastSeenAtMs).toBe(7000);
    await store.setPassword(u.id, 'password-2');
    expect(await store.session(session.idSha256)).toBeUndefined();
    const again = await store.createSession(u.id, 'a', 8000);
    await store.setDisabled(u.id, true);
    expect(await store.session(again.session.idSha256)).toBeUndefined();
    expect((await store.user(u.id))!.disabled).toBe(true);
    const idle = await store.createSession(u.id, 'a', 1000);
    await store.pruneSessions(100_000, 60_000, 1_000_000);
    expect(await store.session(idle.session.idSha256)).toBeUndefined();
  });

  it('appends audit events, filters them newest first, prunes by age', async () => {
    const store = await open();
    const base = { via: 'session:ann', target: '', ip: '127.0.0.1', outcome: 'success' as const };
    await store.appendAudit([
      { ...base, timeMs: 1, actor: 'ann', tenant: 'a', action: 'login' },
      { ...base, timeMs: 2, actor: 'bob', tenant: 'b', action: 'login' },
      { ...base, timeMs: 3, actor: 'ann', tenant: 'a', action: 'token.create', target: 'abc' },
    ]);
    expect((await store.audit({ tenant: 'a', limit: 10 })).map((e) => e.timeMs)).toEqual([3, 1]);
    expect((await store.audit({ action: 'login', limit: 10 })).map((e) => e.actor)).toEqual(['bob', 'ann']);
    expect((await store.audit({ sinceMs: 2, untilMs: 2, limit: 10 })).map((e) => e.actor)).toEqual(['bob']);
    expect(await store.audit({ limit: 1 })).toEqual([
      { ...base, timeMs: 3, actor: 'ann', tenant: 'a', action: 'token.create', target: 'abc' },
    ]);
    await store.pruneAudit(3);
    expect((await store.audit({ limit: 10 })).map((e) => e.timeMs)).toEqual([3]);
  });
}

describe('AccessStore on SQLite', () => {
  contract(async () => {
    const meta = new MetaStore(path.join(tempDir('tw-access-'), 'meta.db'));
    meta.migrate(TOKEN_MIGRATIONS);
    meta.migrate(ACCESS_MIGRATIONS);
    return new AccessStore(sqliteRunner(meta.db));
  });
});

describeWithPostgres('AccessStore on PostgreSQL', () => {
  let server: TestPostgres;
  const opened: PgMeta[] = [];
  let n = 0;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await Promise.all(opened.map((m) => m.close().catch(() => {})));
    await server?.stop();
  });
  contract(async () => {
    const db = new PgMeta({ url: await server.createDatabase(`access_${n++}`), applicationName: 'tw-test' });
    opened.push(db);
    await db.migrate();
    return new AccessStore(pgRunner(db));
  });
});
