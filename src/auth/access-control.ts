/**
 * The authenticator of a running trainwatch: who a request comes from (a bearer token, a signed-in user's
 * session cookie, or the anonymous policy), whether the route's permission allows it, which tenant it acts
 * on, CSRF for cookie requests, and tokens' own rate limits. The route-permission hook
 * (permissions.ts) calls `authenticateRequest` for every non-public route; SSE streams re-check their
 * request with the synchronous `authenticate` at every poll.
 *
 * Status contract: 401 no or bad credentials (unknown, revoked, expired token; no, unknown or expired
 * session); 403 credentials without the permission, a request naming another tenant (X-Scope-OrgID; an
 * operator may name any), or a cookie request changing state without the session's X-CSRF-Token; 429 a token
 * over its rate limit.
 *
 * Sessions are kept in the metadata store and cached here: a cached session is re-read from the store at most
 * every `SESSION_RECHECK_MS`, so a logout, password change, disabled user or removed role in another process
 * takes effect here within that time (at once in this process). Last-seen times are written in batches.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AccessStore, Role, SessionRecord, UserInfo } from '../meta/index.js';
import { sessionIdHash } from '../meta/index.js';
import { Errors, twError } from '../model/errors.js';
import {
  type Authenticator,
  credentialsOf,
  type Principal,
  type RequestCredentials,
  type Scope,
} from './auth.js';
import { TokenRateLimiter } from './limits.js';
import type { MtlsAuthenticator } from './mtls.js';
import type { Permission, RequestAuthenticator } from './permissions.js';
import { type AnonymousPolicy, type TokenAuthenticator, WHAT } from './token-auth.js';

/** How long a cached session is trusted before it is read from the store again. */
export const SESSION_RECHECK_MS = 5000;
/** How often last-seen times of sessions are written. */
const SESSION_TOUCH_INTERVAL_MS = 30_000;

const ROLE_SCOPES: Record<Role, ReadonlySet<Scope>> = {
  viewer: new Set<Scope>(['read']),
  editor: new Set<Scope>(['read', 'edit']),
  admin: new Set<Scope>(['read', 'edit', 'admin']),
};
/** An operator is every tenant's admin; `ingest` stays with tokens (agents). */
const OPERATOR_SCOPES: ReadonlySet<Scope> = ROLE_SCOPES.admin;
const NO_SCOPES: ReadonlySet<Scope> = new Set();

export function scopesOfRole(role: Role): ReadonlySet<Scope> {
  return ROLE_SCOPES[role];
}

/** The role a principal's scopes amount to in its tenant (for `/auth/me`); undefined: none. */
export function roleOfScopes(scopes: ReadonlySet<Scope>): Role | undefined {
  if (scopes.has('admin')) return 'admin';
  if (scopes.has('edit')) return 'editor';
  if (scopes.has('read')) return 'viewer';
  return undefined;
}

/** The principal of a signed-in user acting on `tenant`. */
export function userPrincipal(user: UserInfo, tenant: string, via = `session:${user.name}`): Principal {
  const role = user.roles.find((r) => r.tenant === tenant)?.role;
  return {
    tenant,
    scopes: user.operator ? OPERATOR_SCOPES : role ? ROLE_SCOPES[role] : NO_SCOPES,
    via,
    user: { id: user.id, name: user.name },
    operator: user.operator,
  };
}

export interface SessionTimes {
  /** A session unused this long ends. */
  readonly idleMs: number;
  /** A session ends this long after it began. */
  readonly maxAgeMs: number;
}

interface CachedSession {
  session: SessionRecord;
  user: UserInfo;
  checkedAtMs: number;
}

/** Sessions of the metadata store, cached (see the file comment). */
export class SessionCache {
  private readonly cache = new Map<string, CachedSession>();
  private readonly seen = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly store: AccessStore,
    readonly times: SessionTimes,
    private readonly onError: (err: Error) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.flushSeen(), SESSION_TOUCH_INTERVAL_MS);
    this.timer.unref();
  }

  /** The live session of a cookie value with its user, read from the store when not cached recently. */
  async get(id: string): Promise<CachedSession> {
    const key = sessionIdHash(id);
    const nowMs = this.now();
    let entry = this.cache.get(key);
    if (!entry || nowMs - entry.checkedAtMs >= SESSION_RECHECK_MS) entry = await this.load(key, nowMs);
    return this.live(key, entry, nowMs);
  }

  /**
   * The cached session of a cookie value, synchronously (stream re-checks): one that is not cached is refused;
   * a stale one is refreshed in the background.
   */
  getCached(id: string): CachedSession {
    const key = sessionIdHash(id);
    const nowMs = this.now();
    const entry = this.cache.get(key);
    if (!entry) throw twError(Errors.unauthorized, 'the session has ended; sign in again');
    if (nowMs - entry.checkedAtMs >= SESSION_RECHECK_MS)
      this.load(key, nowMs).catch((err: Error) => {
        if (err.name !== 'TrainwatchError') this.onError(err);
      });
    return this.live(key, entry, nowMs);
  }

  /** Opens a session for `user` in `tenant`; returns the cookie value. */
  async open(user: UserInfo, tenant: string): Promise<{ id: string; session: SessionRecord }> {
    const opened = await this.store.createSession(user.id, tenant, this.now());
    this.cache.set(opened.session.idSha256, { session: opened.session, user, checkedAtMs: this.now() });
    return opened;
  }

  async setTenant(session: SessionRecord, tenant: string): Promise<void> {
    await this.store.setSessionTenant(session.idSha256, tenant);
    this.cache.delete(session.idSha256);
  }

  async close(idSha256: string): Promise<void> {
    this.cache.delete(idSha256);
    this.seen.delete(idSha256);
    await this.store.deleteSession(idSha256);
  }

  /** Forgets this process's cached sessions of a user (after a change to the user). */
  forgetUser(userId: string): void {
    for (const [k, v] of this.cache) if (v.user.id === userId) this.cache.delete(k);
  }

  /** Writes noted last-seen times, and deletes expired sessions from the store. */
  async flushSeen(): Promise<void> {
    const seen = new Map(this.seen);
    this.seen.clear();
    try {
      if (seen.size > 0) await this.store.touchSessions(seen);
      await this.store.pruneSessions(this.now(), this.times.idleMs, this.times.maxAgeMs);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushSeen();
  }

  private async load(key: string, nowMs: number): Promise<CachedSession> {
    const session = await this.store.session(key);
    const user = session ? await this.store.user(session.userId) : undefined;
    if (!session || !user || user.disabled) {
      this.cache.delete(key);
      throw twError(Errors.unauthorized, 'the session has ended or is not known; sign in again');
    }
    const seen = Math.max(session.lastSeenAtMs, this.cache.get(key)?.session.lastSeenAtMs ?? 0);
    const entry = { session: { ...session, lastSeenAtMs: seen }, user, checkedAtMs: nowMs };
    this.cache.set(key, entry);
    return entry;
  }

  private live(key: string, entry: CachedSession, nowMs: number): CachedSession {
    const { session } = entry;
    if (
      nowMs - session.lastSeenAtMs >= this.times.idleMs ||
      nowMs - session.createdAtMs >= this.times.maxAgeMs
    ) {
      this.cache.delete(key);
      void this.store.deleteSession(key).catch((err: Error) => this.onError(err));
      throw twError(Errors.unauthorized, 'the session has expired; sign in again');
    }
    entry.session = { ...session, lastSeenAtMs: nowMs };
    this.seen.set(key, nowMs);
    return entry;
  }
}

export interface AccessControlOptions {
  readonly tokens: TokenAuthenticator;
  /**
   * Client certificates (`http.tls.client_ca_file`, mutual TLS): a verified certificate identifies an agent
   * that sends no token, with users on or off. Undefined: certificates identify nobody.
   */
  readonly certificates?: MtlsAuthenticator;
  /** Users and sessions (`auth.users: true`); undefined: tokens and the anonymous policy only. */
  readonly sessions?: SessionCache;
  readonly now?: () => number;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class AccessControl implements Authenticator, RequestAuthenticator {
  readonly tokens: TokenAuthenticator;
  readonly sessions: SessionCache | undefined;
  private readonly certificates: MtlsAuthenticator | undefined;
  private readonly rates = new TokenRateLimiter();
  private readonly now: () => number;

  constructor(opts: AccessControlOptions) {
    this.tokens = opts.tokens;
    this.certificates = opts.certificates;
    this.sessions = opts.sessions;
    this.now = opts.now ?? Date.now;
  }

  /** Whether users sign in (sessions) on this server. */
  get usersEnabled(): boolean {
    return this.sessions !== undefined;
  }

  /** Synchronous for tokens and anonymous callers (the ingest path); a promise for sessions. */
  authenticateRequest(
    req: FastifyRequest,
    permission: Exclude<Permission, 'public'>,
  ): Principal | Promise<Principal> {
    const credentials = credentialsOf(req);
    if (this.sessions && !credentials.authorization && credentials.sessionId) {
      return this.sessions.get(credentials.sessionId).then(({ session, user }) => {
        const principal = this.decide(userPrincipal(user, session.tenant), credentials, permission);
        if (!SAFE_METHODS.has(req.method)) checkCsrf(req, session);
        return principal;
      });
    }
    return this.viaToken(credentials, permission);
  }

  /** Synchronous: tokens, the anonymous policy, and cached sessions (stream re-checks). */
  authenticate(credentials: RequestCredentials, scope: Scope): Principal {
    if (this.sessions && !credentials.authorization && credentials.sessionId) {
      const { session, user } = this.sessions.getCached(credentials.sessionId);
      return this.decide(userPrincipal(user, session.tenant), credentials, scope);
    }
    return this.viaToken(credentials, scope);
  }

  /** The session behind a request's cookie, if it has a live one (logout, tenant switch, /auth/me). */
  async sessionOf(req: FastifyRequest): Promise<{ session: SessionRecord; user: UserInfo } | undefined> {
    const { sessionId, authorization } = credentialsOf(req);
    if (!this.sessions || authorization || !sessionId) return undefined;
    return this.sessions.get(sessionId);
  }

  private viaToken(credentials: RequestCredentials, permission: Exclude<Permission, 'public'>): Principal {
    const scope = permission === 'operator' ? 'admin' : permission;
    const byCertificate = this.certificates?.identify(credentials);
    if (byCertificate) return this.decide(byCertificate, credentials, permission);
    if (this.sessions && !credentials.authorization)
      throw twError(
        Errors.unauthorized,
        `sign in to ${WHAT[scope]} (POST /api/tw/v1/auth/login), or send Authorization: Bearer <token>`,
      );
    const { principal, rateLimitPerSecond } = this.tokens.identify(credentials, scope);
    const decided = this.decide(principal, credentials, permission);
    if (rateLimitPerSecond !== null) this.rates.take(principal.via, rateLimitPerSecond, this.now());
    return decided;
  }

  /** The tenant the request acts on, and whether the principal may use the route there. */
  private decide(
    principal: Principal,
    credentials: RequestCredentials,
    permission: Exclude<Permission, 'public'>,
  ): Principal {
    const named = credentials.tenantHeader;
    let p = principal;
    if (named !== undefined && named !== '' && named !== principal.tenant) {
      if (!principal.operator)
        throw twError(
          Errors.forbidden,
          `the request names tenant ${JSON.stringify(named)} (X-Scope-OrgID) but its credentials belong to tenant ${principal.tenant}`,
        );
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(named))
        throw twError(Errors.badRequest, `X-Scope-OrgID ${JSON.stringify(named)} is not a tenant name`);
      p = { ...principal, tenant: named };
    }
    if (permission === 'operator') {
      if (!p.operator)
        throw twError(Errors.forbidden, `${p.via} is not a cluster operator; this route is for operators`);
      return p;
    }
    if (!p.scopes.has(permission)) {
      if (p.via === 'anonymous') throw this.tokens.credentialsRequired(permission);
      const has = p.scopes.size === 0 ? `no role in tenant ${p.tenant}` : `scope ${[...p.scopes].join(', ')}`;
      throw twError(
        Errors.forbidden,
        `${p.via} (tenant ${p.tenant}) has ${has}; to ${WHAT[permission]} it needs ${needed(permission, p.user !== undefined)}`,
      );
    }
    return p;
  }
}

/** What a caller lacking `scope` would need, in the words of its kind of credentials. */
function needed(scope: Scope, user: boolean): string {
  if (!user) return `scope ${scope === 'admin' || scope === 'ingest' ? scope : `${scope} or admin`}`;
  if (scope === 'ingest') return 'a token with scope ingest (users do not send data)';
  return scope === 'admin'
    ? 'role admin'
    : scope === 'edit'
      ? 'role editor or admin'
      : 'role viewer or above';
}

/** A cookie request that changes state must send the session's CSRF token in X-CSRF-Token (403 otherwise). */
function checkCsrf(req: FastifyRequest, session: SessionRecord): void {
  const raw = req.headers['x-csrf-token'];
  const sent = Buffer.from(Array.isArray(raw) ? (raw[0] ?? '') : (raw ?? ''));
  const expected = Buffer.from(session.csrfToken);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected))
    throw twError(
      Errors.forbidden,
      `${sent.length === 0 ? 'missing' : 'wrong'} CSRF token: a request signed in by cookie that changes state must send header X-CSRF-Token with the csrfToken of /api/tw/v1/auth/me`,
    );
}

/** The anonymous policy when users sign in: none (every request needs a session or a token). */
export const NO_ANONYMOUS: AnonymousPolicy = { tenant: null, scopes: new Set() };
