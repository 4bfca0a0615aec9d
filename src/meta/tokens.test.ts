import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { MetaStore } from './meta-store.js';
import { TokenStore } from './tokens.js';

/** `twk_<16 hex id>_`: the secret is the rest (base64url, so it may itself hold '_'). */
const TOKEN_PREFIX_LENGTH = 'twk_0123456789abcdef_'.length;

function store() {
  const meta = new MetaStore(path.join(tempDir('tw-tokens-'), 'meta.db'));
  return { meta, tokens: new TokenStore(meta) };
}

describe('TokenStore', () => {
  it('creates a token that verifies, and stores only a hash of its secret', () => {
    const { meta, tokens } = store();
    const { token, info } = tokens.create({ tenant: 'team-a', scope: 'ingest', name: 'node agents' }, 1000);
    expect(token).toMatch(/^twk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(info).toMatchObject({ tenant: 'team-a', scope: 'ingest', name: 'node agents', createdAtMs: 1000 });
    const check = tokens.verify(token, 2000);
    expect(check).toEqual({ ok: true, token: expect.objectContaining({ id: info.id, tenant: 'team-a' }) });
    const secret = token.slice(TOKEN_PREFIX_LENGTH);
    const dump = JSON.stringify(meta.db.prepare('SELECT * FROM auth_tokens').all());
    expect(dump).not.toContain(secret);
    // Noted in memory, written in a batch: no write on the request path.
    expect(tokens.get(info.id)!.lastUsedAtMs).toBeNull();
    tokens.flushLastUsed();
    expect(tokens.get(info.id)!.lastUsedAtMs).toBe(2000);
  });

  it('refuses an expired token and keeps its rate limit', () => {
    const { tokens } = store();
    const { token, info } = tokens.create(
      { tenant: 't', scope: 'read', expiresAtMs: 10_000, rateLimitPerSecond: 5 },
      1000,
    );
    expect(info).toMatchObject({ expiresAtMs: 10_000, rateLimitPerSecond: 5 });
    expect(tokens.verify(token, 9_999).ok).toBe(true);
    expect(tokens.verify(token, 10_000)).toEqual({ ok: false, reason: 'expired', id: info.id });
    expect(() => tokens.create({ tenant: 't', scope: 'read', rateLimitPerSecond: 0 })).toThrow(
      /rateLimitPerSecond 0 is invalid/,
    );
  });

  it('refuses malformed, unknown, tampered and revoked tokens, saying which', () => {
    const { tokens } = store();
    const { token, info } = tokens.create({ tenant: 't', scope: 'read' });
    expect(tokens.verify('hello')).toEqual({ ok: false, reason: 'malformed' });
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    expect(tokens.verify(tampered)).toEqual({ ok: false, reason: 'unknown', id: info.id });
    expect(tokens.verify(`twk_0123456789abcdef_${token.slice(TOKEN_PREFIX_LENGTH)}`).ok).toBe(false);
    expect(tokens.revoke(info.id, 5)!.revokedAtMs).toBe(5);
    expect(tokens.revoke(info.id, 9)!.revokedAtMs).toBe(5);
    expect(tokens.verify(token)).toEqual({ ok: false, reason: 'revoked', id: info.id });
    expect(tokens.revoke('ffffffffffffffff')).toBeUndefined();
  });

  it('lists by tenant, hiding revoked tokens unless asked', () => {
    const { tokens } = store();
    const a = tokens.create({ tenant: 'a', scope: 'admin' }).info;
    const b = tokens.create({ tenant: 'b', scope: 'ingest' }).info;
    tokens.revoke(b.id);
    expect(tokens.list().map((t) => t.id)).toEqual([a.id]);
    expect(tokens.list({ includeRevoked: true }).map((t) => t.id)).toEqual([a.id, b.id]);
    expect(tokens.list({ tenant: 'b', includeRevoked: true }).map((t) => t.id)).toEqual([b.id]);
  });

  it('validates tenant and scope', () => {
    const { tokens } = store();
    expect(() => tokens.create({ tenant: 'Team A', scope: 'read' })).toThrow(/tenant "Team A" is invalid/);
    expect(() => tokens.create({ tenant: 'a', scope: 'root' as never })).toThrow(/scope "root" is invalid/);
  });

  it('sees tokens created by another connection at once (a CLI next to a running server)', () => {
    const dir = tempDir('tw-tokens-');
    const server = new TokenStore(new MetaStore(path.join(dir, 'meta.db')));
    const cliMeta = new MetaStore(path.join(dir, 'meta.db'));
    const { token, info } = new TokenStore(cliMeta).create({ tenant: 'x', scope: 'ingest' });
    expect(server.verify(token).ok).toBe(true);
    new TokenStore(cliMeta).revoke(info.id);
    expect(server.verify(token)).toMatchObject({ ok: false, reason: 'revoked' });
  });
});
