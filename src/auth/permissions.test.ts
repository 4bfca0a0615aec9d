import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { TrainwatchError } from '../model/errors.js';
import type { Authenticator, Principal, RequestCredentials, Scope } from './auth.js';
import { installAccessControl, requestPrincipal } from './permissions.js';

/** Bearer `<tenant>:<scope>` → that tenant with that scope; nothing else. */
class ScopeFromBearer implements Authenticator {
  authenticate(c: RequestCredentials, scope: Scope): Principal {
    const m = /^Bearer (\w+):(\w+)$/.exec(c.authorization ?? '');
    if (!m) throw new TrainwatchError({ code: 'unauthorized', status: 401, retryable: false }, 'no token');
    if (m[2] !== scope)
      throw new TrainwatchError({ code: 'forbidden', status: 403, retryable: false }, `needs ${scope}`);
    return { tenant: m[1]!, scopes: new Set([scope]), via: 'test' };
  }
}

function appWith(auth: Authenticator) {
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) =>
    reply.code(err instanceof TrainwatchError ? err.status : 500).send({ error: (err as Error).message }),
  );
  const access = installAccessControl(app, auth);
  return { app, access };
}

describe('route permissions', () => {
  it('refuses at start a route that declares no permission', async () => {
    const { app } = appWith(new ScopeFromBearer());
    expect(() => app.get('/undeclared', async () => ({}))).toThrow(/declares no permission/);
  });

  it('checks each route with its declared permission before the handler runs', async () => {
    const { app, access } = appWith(new ScopeFromBearer());
    let handled = 0;
    app.get('/open', { config: { permission: 'public' } }, async () => ({ ok: true }));
    app.post('/edit', { config: { permission: 'edit' } }, async (req) => {
      handled++;
      return { tenant: requestPrincipal(req).tenant };
    });
    await app.ready();
    expect((await app.inject({ url: '/open' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/edit' })).statusCode).toBe(401);
    const wrong = await app.inject({
      method: 'POST',
      url: '/edit',
      headers: { authorization: 'Bearer t:read' },
    });
    expect(wrong.statusCode).toBe(403);
    expect(handled).toBe(0);
    const ok = await app.inject({
      method: 'POST',
      url: '/edit',
      headers: { authorization: 'Bearer t:edit' },
    });
    expect(ok.json()).toEqual({ tenant: 't' });
    expect(access.routes().map((r) => `${r.method} ${r.url} ${r.permission}`)).toEqual([
      'GET /open public',
      'HEAD /open public',
      'POST /edit edit',
    ]);
  });

  it('closes the connection of a refused request that declares a body, without reading it', async () => {
    const { app } = appWith(new ScopeFromBearer());
    app.post('/ingest', { config: { permission: 'ingest' } }, async () => ({}));
    const res = await app.inject({ method: 'POST', url: '/ingest', payload: 'x'.repeat(100) });
    expect(res.statusCode).toBe(401);
    expect(res.headers.connection).toBe('close');
  });

  it('lets a plugin without route options add routes under one declared permission', async () => {
    const { app, access } = appWith(new ScopeFromBearer());
    await access.withPermission('public', async () => {
      await app.register(async (scope) => {
        scope.get('/asset.js', async () => 'x');
      });
    });
    expect(() => app.get('/after', async () => ({}))).toThrow(/declares no permission/);
    expect((await app.inject({ url: '/asset.js' })).statusCode).toBe(200);
  });
});
