import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { MetaStore, TokenStore } from '../meta/index.js';
import { TrainwatchError } from '../model/errors.js';
import type { Scope } from './auth.js';
import { anonymousPolicyFor, isLoopbackHost, TokenAuthenticator } from './token-auth.js';

function setup(anonymous: Scope[] = []) {
  const tokens = new TokenStore(new MetaStore(path.join(tempDir('tw-auth-'), 'meta.db')));
  const auth = new TokenAuthenticator(tokens, { tenant: 'default', scopes: new Set(anonymous) });
  return { tokens, auth };
}

function refusal(f: () => unknown): { status: number; message: string } {
  try {
    f();
  } catch (err) {
    if (err instanceof TrainwatchError) return { status: err.status, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('TokenAuthenticator', () => {
  it('takes the tenant from the token and grants its scope (admin grants all)', () => {
    const { tokens, auth } = setup();
    const ingest = tokens.create({ tenant: 'team-a', scope: 'ingest' });
    const p = auth.authenticate({ authorization: `Bearer ${ingest.token}` }, 'ingest');
    expect(p).toMatchObject({ tenant: 'team-a', via: `token ${ingest.info.id}` });
    const admin = tokens.create({ tenant: 'team-b', scope: 'admin' }).token;
    for (const s of ['ingest', 'read', 'admin'] as const)
      expect(auth.authenticate({ authorization: `bearer ${admin}` }, s).tenant).toBe('team-b');
  });

  it('answers 401 without credentials, and for bad or revoked tokens; 403 for a missing scope', () => {
    const { tokens, auth } = setup();
    expect(refusal(() => auth.authenticate({ authorization: undefined }, 'ingest'))).toEqual({
      status: 401,
      message: expect.stringMatching(/authentication required to send data.*trainwatch token create/),
    });
    expect(refusal(() => auth.authenticate({ authorization: 'Basic dXNlcjpwYXNz' }, 'read')).status).toBe(
      401,
    );
    expect(refusal(() => auth.authenticate({ authorization: 'Bearer nope' }, 'read')).message).toMatch(
      /not a trainwatch token/,
    );
    const read = tokens.create({ tenant: 'a', scope: 'read' });
    expect(refusal(() => auth.authenticate({ authorization: `Bearer ${read.token}` }, 'ingest'))).toEqual({
      status: 403,
      message: expect.stringMatching(
        /tenant a\) has scope read; to send data it needs scope ingest or admin/,
      ),
    });
    tokens.revoke(read.info.id);
    expect(refusal(() => auth.authenticate({ authorization: `Bearer ${read.token}` }, 'read'))).toEqual({
      status: 401,
      message: `token ${read.info.id} was revoked`,
    });
  });

  it('refuses a request naming another tenant than its token (X-Scope-OrgID) with 403', () => {
    const { tokens, auth } = setup();
    const t = tokens.create({ tenant: 'a', scope: 'ingest' }).token;
    expect(auth.authenticate({ authorization: `Bearer ${t}`, tenantHeader: 'a' }, 'ingest').tenant).toBe('a');
    expect(
      refusal(() => auth.authenticate({ authorization: `Bearer ${t}`, tenantHeader: 'b' }, 'ingest')).status,
    ).toBe(403);
  });

  it('lets anonymous callers do only what the policy grants, and never hides a bad token behind it', () => {
    const { auth } = setup(['read']);
    expect(auth.authenticate({ authorization: undefined }, 'read')).toMatchObject({
      tenant: 'default',
      via: 'anonymous',
    });
    expect(refusal(() => auth.authenticate({ authorization: undefined }, 'ingest')).status).toBe(401);
    expect(refusal(() => auth.authenticate({ authorization: 'Bearer twk_bad' }, 'read')).status).toBe(401);
  });
});

describe('anonymous policy', () => {
  const auth = {
    anonymous_tenant: 'default',
    anonymous_scopes: ['read' as const],
    anonymous_from: 'loopback' as const,
  };
  it('grants anonymous scopes only on loopback unless told otherwise', () => {
    expect([...anonymousPolicyFor(auth, '127.0.0.1:9470').scopes]).toEqual(['read']);
    expect([...anonymousPolicyFor(auth, '[::1]:9470').scopes]).toEqual(['read']);
    expect([...anonymousPolicyFor(auth, '0.0.0.0:9470').scopes]).toEqual([]);
    expect([...anonymousPolicyFor({ ...auth, anonymous_from: 'anywhere' }, '0.0.0.0:9470').scopes]).toEqual([
      'read',
    ]);
    expect([...anonymousPolicyFor({ ...auth, anonymous_tenant: null }, '127.0.0.1:1').scopes]).toEqual([]);
  });
  it('knows loopback hosts', () => {
    expect(['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '10.0.0.1', 'example.com', '::'].some(isLoopbackHost)).toBe(false);
  });
});

describe('anonymous access and the site that sends it (DNS rebinding)', () => {
  const tokens = new TokenStore(new MetaStore(path.join(tempDir('tw-auth-'), 'meta.db')));
  const policy = anonymousPolicyFor(
    { anonymous_tenant: 'default', anonymous_scopes: ['read'], anonymous_from: 'loopback' },
    '127.0.0.1:9470',
  );
  const auth = new TokenAuthenticator(tokens, policy);
  const anon = (host: string | undefined, origin?: string) =>
    auth.authenticate({ authorization: undefined, host, origin }, 'read');

  it('serves anonymous requests whose Host is a loopback name or the listen address, from the same site', () => {
    for (const host of ['localhost:9470', '127.0.0.1:9470', '[::1]:9470', 'LOCALHOST', undefined])
      expect(anon(host).via).toBe('anonymous');
    expect(anon('localhost:9470', 'http://localhost:9470').via).toBe('anonymous');
    expect(anon('127.0.0.1:9470', 'http://localhost:5173').via).toBe('anonymous');
    const lan = new TokenAuthenticator(
      tokens,
      anonymousPolicyFor(
        { anonymous_tenant: 'default', anonymous_scopes: ['read'], anonymous_from: 'anywhere' },
        '10.0.0.5:9470',
      ),
    );
    expect(lan.authenticate({ authorization: undefined, host: '10.0.0.5:9470' }, 'read').via).toBe(
      'anonymous',
    );
    expect(
      refusal(() => lan.authenticate({ authorization: undefined, host: 'evil.example' }, 'read')).status,
    ).toBe(403);
  });

  it('refuses a foreign Host or Origin with 403 naming the header', () => {
    expect(refusal(() => anon('attacker.example:9470'))).toEqual({
      status: 403,
      message: expect.stringMatching(/Host header "attacker.example:9470" is not a loopback name/),
    });
    expect(refusal(() => anon('127.0.0.1:9470', 'http://attacker.example'))).toEqual({
      status: 403,
      message: expect.stringMatching(/Origin header "http:\/\/attacker.example" is another site/),
    });
    expect(refusal(() => anon('localhost:9470', 'null')).status).toBe(403);
  });

  it('leaves requests with a token alone, whatever their Host', () => {
    const { token } = tokens.create({ tenant: 'a', scope: 'read' });
    expect(
      auth.authenticate(
        { authorization: `Bearer ${token}`, host: 'tw.example.com', origin: 'https://grafana.example' },
        'read',
      ).tenant,
    ).toBe('a');
  });

  it('says which scope an admin action needs without repeating it', () => {
    const { token } = tokens.create({ tenant: 'a', scope: 'read' });
    expect(refusal(() => auth.authenticate({ authorization: `Bearer ${token}` }, 'admin')).message).toMatch(
      /to change settings it needs scope admin$/,
    );
  });
});
