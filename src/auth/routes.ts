/**
 * The access-control HTTP API (issue 16's contract; docs/security.md):
 * - sessions: `POST /api/tw/v1/auth/login|logout|tenant`, `GET /api/tw/v1/auth/me|providers`;
 * - users (tenant admin for its tenant's roles, operator for all): `GET|POST /api/tw/v1/users`,
 *   `PATCH /api/tw/v1/users/:name`, `DELETE /api/tw/v1/users/:name/roles/:tenant`;
 * - tokens (tenant admin): `GET|POST /api/tw/v1/tokens`, `DELETE /api/tw/v1/tokens/:id`;
 * - audit (tenant admin: its tenant; operator: all, or the tenant X-Scope-OrgID names): `GET /api/tw/v1/audit`.
 *
 * Every route declares its permission (permissions.ts); handlers read the caller with `requestPrincipal`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessStore, Role, TokenAdmin, TokenInfo, TokenScope, UserInfo } from '../meta/index.js';
import { TOKEN_SCOPES, validatePassword, validateRole, validateTenant } from '../meta/index.js';
import { parseDuration } from '../model/duration.js';
import { Errors, TrainwatchError, twError } from '../model/errors.js';
import { optionalTimeParam } from '../model/query-params.js';
import { type AccessControl, roleOfScopes, userPrincipal } from './access-control.js';
import type { AuditLog } from './audit.js';
import { type Principal, SESSION_COOKIE } from './auth.js';
import type { LoginLimiter } from './limits.js';
import { accessControlOf, requestPrincipal, setAuditTarget, setRequestPrincipal } from './permissions.js';

export interface OidcProviderLink {
  readonly id: string;
  readonly name: string;
  readonly loginUrl: string;
}

export interface AuthApiDeps {
  readonly access: AccessControl;
  readonly store: AccessStore;
  readonly tokenAdmin: TokenAdmin;
  readonly audit: AuditLog;
  readonly loginLimiter: LoginLimiter;
  /** OpenID Connect providers for the login page (src/auth/oidc*.ts adds them). */
  readonly oidcProviders?: () => readonly OidcProviderLink[];
}

const PUBLIC = { config: { permission: 'public' } } as const;
const READ = { config: { permission: 'read' } } as const;
const admin = (audit?: string) => ({ config: { permission: 'admin' as const, ...(audit ? { audit } : {}) } });

function bodyOf(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  if (b === null || typeof b !== 'object' || Array.isArray(b))
    throw twError(Errors.badRequest, 'the request body must be a JSON object');
  return b as Record<string, unknown>;
}

/** Runs a validation that throws plain Errors (src/meta), answering 400 with its message. */
function valid<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TrainwatchError) throw err;
    throw twError(Errors.badRequest, (err as Error).message);
  }
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The session cookie: HttpOnly, SameSite=Lax, Path=/, Secure when the request came over TLS. */
export function sessionCookie(req: FastifyRequest, value: string, maxAgeSeconds: number): string {
  return (
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}` +
    (req.protocol === 'https' ? '; Secure' : '')
  );
}

/** The answer of login and `/auth/me` for a signed-in user. */
function sessionView(user: UserInfo, tenant: string, csrfToken: string) {
  const p = userPrincipal(user, tenant);
  return {
    user: { id: user.id, name: user.name, operator: user.operator },
    tenant,
    role: roleOfScopes(p.scopes) ?? null,
    tenants: tenantsOf(user, tenant),
    csrfToken,
  };
}

function tenantsOf(user: UserInfo, current: string): { tenant: string; role: Role }[] {
  const list = user.roles.map((r) => ({ tenant: r.tenant, role: r.role }));
  if (user.operator && !list.some((r) => r.tenant === current)) list.push({ tenant: current, role: 'admin' });
  return list.sort((a, b) => a.tenant.localeCompare(b.tenant));
}

/** The tenant a signing-in user starts in: the one asked for (if the user has a role there), else the first. */
function startTenant(user: UserInfo, asked: unknown): string | undefined {
  if (typeof asked === 'string' && asked !== '') {
    if (user.operator || user.roles.some((r) => r.tenant === asked))
      return valid(() => validateTenant(asked));
    return undefined;
  }
  return user.roles[0]?.tenant;
}

/**
 * Starts a session for `user` and sets its cookie: password login here, OIDC callbacks (oidc*.ts) too.
 * Returns the login answer.
 */
export async function issueSession(
  deps: AuthApiDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  user: UserInfo,
  tenant: string,
  via = `session:${user.name}`,
) {
  const sessions = deps.access.sessions;
  if (!sessions) throw twError(Errors.badRequest, 'user login is off on this server (auth.users: false)');
  const { id, session } = await sessions.open(user, tenant);
  await deps.store.noteLogin(user.id);
  reply.header('set-cookie', sessionCookie(req, id, Math.floor(sessions.times.maxAgeMs / 1000)));
  setRequestPrincipal(req, userPrincipal(user, tenant, via));
  deps.audit.record({
    actor: user.name,
    via,
    tenant,
    action: 'login',
    target: user.name,
    ip: req.ip,
    outcome: 'success',
  });
  return sessionView(user, tenant, session.csrfToken);
}

function userView(u: UserInfo, onlyTenant: string | undefined) {
  return {
    id: u.id,
    name: u.name,
    disabled: u.disabled,
    operator: u.operator,
    roles: onlyTenant === undefined ? u.roles : u.roles.filter((r) => r.tenant === onlyTenant),
    createdAt: iso(u.createdAtMs),
    lastLoginAt: iso(u.lastLoginAtMs),
  };
}

function tokenView(t: TokenInfo) {
  return {
    id: t.id,
    name: t.name,
    scopes: [t.scope],
    createdAt: iso(t.createdAtMs),
    expiresAt: iso(t.expiresAtMs),
    lastUsedAt: iso(t.lastUsedAtMs),
    rateLimitPerSecond: t.rateLimitPerSecond,
    revoked: t.revokedAtMs !== null,
  };
}

/**
 * A non-operator admin may change a user's password or disable it only when the user belongs to the admin's
 * tenant alone (else it would act on other tenants' access).
 */
function checkOwnsUser(p: Principal, user: UserInfo): void {
  if (p.operator) return;
  if (user.operator || user.roles.some((r) => r.tenant !== p.tenant) || user.roles.length === 0)
    throw twError(
      Errors.forbidden,
      `user ${user.name} has roles in other tenants than ${p.tenant} (or is an operator): only an operator may change its password or disable it`,
    );
}

export function registerAuthApi(app: FastifyInstance, deps: AuthApiDeps): void {
  const { access, store, tokenAdmin, audit } = deps;

  async function userNamed(name: string): Promise<UserInfo> {
    const user = await store.userByName(name);
    if (!user) throw twError(Errors.notFound, `no user ${JSON.stringify(name)}`);
    return user;
  }

  // ---- sessions -------------------------------------------------------------------------------------------

  app.post('/api/tw/v1/auth/login', PUBLIC, async (req, reply) => {
    if (!access.sessions)
      throw twError(Errors.badRequest, 'user login is off on this server (auth.users: false)');
    const body = bodyOf(req);
    const { username, password } = body;
    if (typeof username !== 'string' || typeof password !== 'string' || username === '' || password === '')
      throw twError(
        Errors.badRequest,
        'the body must be {"username": "...", "password": "...", "tenant"?: "..."}',
      );
    const name = username.slice(0, 128);
    const nowMs = Date.now();
    deps.loginLimiter.begin(name, req.ip, nowMs);
    const user = await store.checkPassword(name, password);
    if (!user || user.disabled) {
      const known = user ?? (await store.userByName(name));
      audit.record({
        actor: name,
        via: 'password',
        tenant: known?.roles[0]?.tenant ?? '',
        action: 'login',
        target: name,
        ip: req.ip,
        outcome: 'failure',
      });
      // One answer for an unknown name, a wrong password and a disabled user: no user enumeration.
      throw twError(Errors.unauthorized, 'invalid username or password');
    }
    deps.loginLimiter.succeed(name, req.ip);
    const tenant = startTenant(user, body.tenant);
    if (tenant === undefined)
      throw twError(
        Errors.forbidden,
        body.tenant === undefined
          ? `user ${user.name} has no role in any tenant; an admin must give it one`
          : `user ${user.name} has no role in tenant ${JSON.stringify(body.tenant)}`,
      );
    return issueSession(deps, req, reply, user, tenant);
  });

  // `read`: any signed-in caller; the hook checks the session's CSRF token like on every state change.
  app.post('/api/tw/v1/auth/logout', READ, async (req, reply) => {
    const current = await access.sessionOf(req);
    if (current) {
      await access.sessions!.close(current.session.idSha256);
      audit.record({
        actor: current.user.name,
        via: `session:${current.user.name}`,
        tenant: current.session.tenant,
        action: 'logout',
        target: current.user.name,
        ip: req.ip,
        outcome: 'success',
      });
    }
    return reply
      .header('set-cookie', sessionCookie(req, '', 0))
      .code(204)
      .send();
  });

  app.get('/api/tw/v1/auth/me', READ, async (req) => {
    const p = requestPrincipal(req);
    const current = await access.sessionOf(req);
    if (current) return sessionView(current.user, p.tenant, current.session.csrfToken);
    const role = roleOfScopes(p.scopes) ?? null;
    return {
      user: null,
      tenant: p.tenant,
      role,
      via: p.via,
      tenants: [{ tenant: p.tenant, role }],
      csrfToken: null,
    };
  });

  app.post(
    '/api/tw/v1/auth/tenant',
    { config: { permission: 'read', audit: 'auth.tenant' } },
    async (req) => {
      const current = await access.sessionOf(req);
      if (!current)
        throw twError(
          Errors.badRequest,
          'only a signed-in session switches tenant (tokens belong to one tenant)',
        );
      const tenant = bodyOf(req).tenant;
      valid(() => validateTenant(tenant));
      const { user } = current;
      if (!user.operator && !user.roles.some((r) => r.tenant === tenant))
        throw twError(Errors.forbidden, `user ${user.name} has no role in tenant ${JSON.stringify(tenant)}`);
      await access.sessions!.setTenant(current.session, tenant as string);
      setAuditTarget(req, tenant as string);
      return sessionView(user, tenant as string, current.session.csrfToken);
    },
  );

  app.get('/api/tw/v1/auth/providers', PUBLIC, async () => ({
    password: access.usersEnabled,
    oidc: deps.oidcProviders?.() ?? [],
  }));

  // ---- users ----------------------------------------------------------------------------------------------

  app.get('/api/tw/v1/users', admin(), async (req) => {
    const p = requestPrincipal(req);
    // An operator without X-Scope-OrgID sees every user; a tenant admin those with a role in its tenant.
    const all = p.operator && req.headers['x-scope-orgid'] === undefined;
    const users = await store.listUsers(all ? {} : { tenant: p.tenant });
    return { users: users.map((u) => userView(u, all ? undefined : p.tenant)) };
  });

  app.post('/api/tw/v1/users', admin('user.create'), async (req, reply) => {
    const p = requestPrincipal(req);
    const body = bodyOf(req);
    const role = valid(() => validateRole(body.role ?? 'viewer'));
    setAuditTarget(req, String(body.name ?? ''));
    if (typeof body.name === 'string' && (await store.userByName(body.name)))
      throw twError(
        Errors.conflict,
        `user ${body.name} already exists; give it a role with PATCH /api/tw/v1/users/${body.name}`,
      );
    const created = await store
      .createUser({
        name: body.name as string,
        password: body.password as string,
        roles: [{ tenant: p.tenant, role }],
      })
      .catch((err: Error) => {
        throw twError(Errors.badRequest, err.message);
      });
    return reply.code(201).send({ user: userView(created, p.operator ? undefined : p.tenant) });
  });

  app.patch('/api/tw/v1/users/:name', admin('user.update'), async (req) => {
    const p = requestPrincipal(req);
    const body = bodyOf(req);
    const user = await userNamed((req.params as { name: string }).name);
    const changes: string[] = [];
    if (body.role !== undefined) {
      await store.setRole(
        user.id,
        p.tenant,
        valid(() => validateRole(body.role)),
      );
      changes.push(`role=${String(body.role)}`);
    }
    if (body.password !== undefined) {
      checkOwnsUser(p, user);
      const password = valid(() => validatePassword(body.password));
      await store.setPassword(user.id, password);
      changes.push('password');
    }
    if (body.disabled !== undefined) {
      if (typeof body.disabled !== 'boolean')
        throw twError(Errors.badRequest, 'disabled must be true or false');
      checkOwnsUser(p, user);
      await store.setDisabled(user.id, body.disabled);
      changes.push(`disabled=${body.disabled}`);
    }
    if (changes.length === 0)
      throw twError(Errors.badRequest, 'nothing to change: give role, disabled or password');
    access.sessions?.forgetUser(user.id);
    setAuditTarget(req, `${user.name} ${changes.join(' ')}`);
    return { user: userView((await store.user(user.id))!, p.operator ? undefined : p.tenant) };
  });

  app.delete('/api/tw/v1/users/:name/roles/:tenant', admin('user.role.remove'), async (req, reply) => {
    const p = requestPrincipal(req);
    const { name, tenant } = req.params as { name: string; tenant: string };
    if (!p.operator && tenant !== p.tenant)
      throw twError(
        Errors.forbidden,
        `the path names tenant ${JSON.stringify(tenant)} but the credentials belong to tenant ${p.tenant}`,
      );
    const user = await userNamed(name);
    await store.removeRole(user.id, tenant);
    access.sessions?.forgetUser(user.id);
    return reply.code(204).send();
  });

  // ---- tokens ---------------------------------------------------------------------------------------------

  app.get('/api/tw/v1/tokens', admin(), async (req) => {
    const p = requestPrincipal(req);
    const tokens = await tokenAdmin.list({ tenant: p.tenant, includeRevoked: true });
    return { tokens: tokens.map(tokenView) };
  });

  app.post('/api/tw/v1/tokens', admin('token.create'), async (req, reply) => {
    const p = requestPrincipal(req);
    const body = bodyOf(req);
    const scopes = body.scopes;
    if (!Array.isArray(scopes) || scopes.length !== 1 || !TOKEN_SCOPES.includes(scopes[0] as TokenScope))
      throw twError(
        Errors.badRequest,
        `scopes must hold exactly one of ${TOKEN_SCOPES.join(', ')} (admin includes read and ingest)`,
      );
    let expiresAtMs: number | null = null;
    if (body.expiresIn !== undefined && body.expiresIn !== null) {
      const ms =
        typeof body.expiresIn === 'number'
          ? body.expiresIn
          : valid(() => parseDuration(String(body.expiresIn)));
      if (!Number.isFinite(ms) || ms <= 0)
        throw twError(
          Errors.badRequest,
          'expiresIn must be a positive duration such as "30d" (or milliseconds)',
        );
      expiresAtMs = Date.now() + ms;
    }
    const rate = body.rateLimitPerSecond;
    if (rate !== undefined && rate !== null && typeof rate !== 'number')
      throw twError(Errors.badRequest, 'rateLimitPerSecond must be a number');
    const name = typeof body.name === 'string' ? body.name : '';
    const created = await tokenAdmin
      .create({
        tenant: p.tenant,
        scope: scopes[0] as TokenScope,
        name,
        expiresAtMs,
        rateLimitPerSecond: (rate as number | null | undefined) ?? null,
      })
      .catch((err: Error) => {
        throw twError(Errors.badRequest, err.message);
      });
    setAuditTarget(req, created.info.id);
    return reply.code(201).send({ token: created.token, ...tokenView(created.info) });
  });

  app.delete('/api/tw/v1/tokens/:id', admin('token.revoke'), async (req, reply) => {
    const p = requestPrincipal(req);
    const { id } = req.params as { id: string };
    // Another tenant's token answers like an unknown one: its existence is not revealed.
    const mine = (await tokenAdmin.list({ tenant: p.tenant, includeRevoked: true })).some((t) => t.id === id);
    if (!mine) throw twError(Errors.notFound, `no token ${JSON.stringify(id)} in tenant ${p.tenant}`);
    await tokenAdmin.revoke(id);
    return reply.code(204).send();
  });

  // ---- audit ----------------------------------------------------------------------------------------------

  app.get('/api/tw/v1/audit', admin(), async (req) => {
    const p = requestPrincipal(req);
    const q = req.query as Record<string, string | undefined>;
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw twError(Errors.badRequest, 'parameter limit must be an integer from 1 to 10000');
    const all = p.operator && req.headers['x-scope-orgid'] === undefined;
    const sinceMs = optionalTimeParam(q.since, 'since');
    const untilMs = optionalTimeParam(q.until, 'until');
    const events = await audit.query({
      ...(all ? {} : { tenant: p.tenant }),
      ...(sinceMs !== undefined ? { sinceMs } : {}),
      ...(untilMs !== undefined ? { untilMs } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.action ? { action: q.action } : {}),
      limit,
    });
    return {
      events: events.map((e) => ({
        time: new Date(e.timeMs).toISOString(),
        actor: e.actor,
        via: e.via,
        tenant: e.tenant,
        action: e.action,
        target: e.target,
        ip: e.ip,
        outcome: e.outcome,
      })),
    };
  });

  // Every audited route (option `audit`: these, silences, …) is recorded once its answer is sent.
  accessControlOf(app).onAudited((r) => audit.recordRequest(r));
}
