/**
 * `PgTokenCache` behind the one `TokenAuthenticator`: tokens created or revoked through another process (here:
 * another pool) are honoured within the documented bounds; wrong secrets are refused; no secret is stored.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import { TokenAuthenticator } from '../../auth/index.js';
import { hashTokenSecret, parseToken } from '../tokens.js';
import { PgMeta } from './pg-meta.js';
import { PgTokenCache } from './token-cache.js';
import { PgTokenRepository } from './tokens.js';

const REFRESH_MS = 300;
const MISS_REFRESH_MS = 100;
/** Slack over a bound for a loaded shared machine: one query, scheduling. */
const SLACK_MS = 3000;

describeWithPostgres('PgTokenCache', () => {
  let server: TestPostgres;
  const pools: PgMeta[] = [];
  const caches: PgTokenCache[] = [];
  let admin: PgTokenRepository;

  async function process(opts: { refreshIntervalMs?: number; missRefreshMinIntervalMs?: number } = {}) {
    const db = await PgMeta.open({ url: server.url, poolSize: 2 });
    pools.push(db);
    const cache = await PgTokenCache.open(db, {
      refreshIntervalMs: REFRESH_MS,
      missRefreshMinIntervalMs: MISS_REFRESH_MS,
      ...opts,
    });
    caches.push(cache);
    const auth = new TokenAuthenticator(cache, { tenant: null, scopes: new Set() });
    const check = (token: string) => {
      try {
        return auth.authenticate({ authorization: `Bearer ${token}` }, 'ingest').tenant;
      } catch (err) {
        return (err as Error).message;
      }
    };
    return { db, cache, check };
  }

  beforeAll(async () => {
    server = await startPostgres();
    const db = await PgMeta.open({ url: server.url, poolSize: 2 });
    pools.push(db);
    admin = new PgTokenRepository(db);
  }, 60_000);
  afterAll(async () => {
    for (const c of caches) await c.close();
    for (const p of pools) await p.close();
    await server?.stop();
  });

  it('accepts a token created in another process once a verify miss has refreshed the copy', async () => {
    const { check } = await process({ refreshIntervalMs: 3_600_000 }); // only the miss refresh can help
    const { token } = await admin.create({ tenant: 'acme', scope: 'ingest' });
    const t0 = Date.now();
    expect(check(token)).toMatch(/is not known to this server/);
    await waitFor(
      'token accepted after a miss refresh',
      () => check(token) === 'acme' || undefined,
      MISS_REFRESH_MS + SLACK_MS,
      20,
    );
    expect(Date.now() - t0).toBeLessThan(MISS_REFRESH_MS + SLACK_MS);
  });

  it('accepts a token created through another authenticator’s process, and refuses it once revoked, within the refresh interval', async () => {
    const creator = await process();
    const other = await process({ missRefreshMinIntervalMs: 3_600_000 }); // only the periodic refresh can help
    const creatorAdmin = new PgTokenRepository(creator.db);
    const { token, info } = await creatorAdmin.create({ tenant: 'acme', scope: 'admin' });
    await waitFor(
      'accepted by the other process',
      () => other.check(token) === 'acme' || undefined,
      REFRESH_MS + SLACK_MS,
      20,
    );
    await creatorAdmin.revoke(info.id);
    const t0 = Date.now();
    await waitFor(
      'refused by the other process',
      () => /was revoked/.test(other.check(token)) || undefined,
      REFRESH_MS + SLACK_MS,
      20,
    );
    expect(Date.now() - t0).toBeLessThan(REFRESH_MS + SLACK_MS);
  });

  it('refuses wrong secrets, malformed tokens and unknown ids', async () => {
    const { cache, check } = await process();
    const { token } = await admin.create({ tenant: 'acme', scope: 'read' });
    await cache.refresh();
    const { id, secret } = parseToken(token)!;
    const wrong = `twk_${id}_${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    expect(cache.verify(wrong)).toEqual({ ok: false, reason: 'unknown', id });
    expect(check(wrong)).toMatch(new RegExp(`token ${id} is not known`));
    expect(cache.verify('twk_nope')).toEqual({ ok: false, reason: 'malformed' });
    expect(cache.verify(`twk_0123456789abcdef_${secret}`)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(cache.verify(token)).toMatchObject({ ok: true, token: { id, tenant: 'acme', scope: 'read' } });
    // A read token may not ingest.
    expect(check(token)).toMatch(/needs scope ingest/);
  });

  it('stores and caches only the SHA-256 of a secret', async () => {
    const { cache } = await process();
    const { token } = await admin.create({ tenant: 'acme', scope: 'ingest', name: 'agents' });
    await cache.refresh();
    const { id, secret } = parseToken(token)!;
    const row = (await pools[0]!.query('SELECT * FROM auth_tokens WHERE id = $1', [id])).rows[0]!;
    expect(row.secret_sha256).toEqual(hashTokenSecret(secret));
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(secret);
    const held = JSON.stringify([...(cache as unknown as { tokens: Map<string, unknown> }).tokens.values()]);
    expect(held).not.toContain(secret);
    expect(held).not.toContain(Buffer.from(secret).toString('base64'));
  });

  it('writes last use in batches, and refreshes at most once per interval on a flood of unknown ids', async () => {
    const { db, cache } = await process({ refreshIntervalMs: 3_600_000, missRefreshMinIntervalMs: 60_000 });
    const { token, info } = await admin.create({ tenant: 'acme', scope: 'ingest' });
    await cache.refresh();
    expect(cache.verify(token, 5_000_000).ok).toBe(true);
    expect(cache.verify(token, 5_000_001).ok).toBe(true); // within the interval: not noted again
    expect((await admin.get(info.id))!.lastUsedAtMs).toBeNull(); // nothing written per request
    await cache.refresh();
    expect((await admin.get(info.id))!.lastUsedAtMs).toBe(5_000_000);

    const query = vi.spyOn(db, 'query');
    for (let i = 0; i < 200; i++) cache.verify(`twk_${i.toString(16).padStart(16, '0')}_${'A'.repeat(43)}`);
    await waitFor(
      'the miss refresh to finish',
      () => query.mock.calls.length >= 1 || undefined,
      SLACK_MS,
      10,
    );
    // close() waits for the refresh in flight, and the flood left no last-use to write: every query the flood
    // caused has been made once it returns.
    await cache.close();
    expect(query.mock.calls.length).toBe(1);
    query.mockRestore();
    expect(cache.staleForMs()).toBeLessThan(SLACK_MS);
  });
});
