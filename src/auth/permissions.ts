/**
 * One permission per route, checked in one place. Every route declares what it needs in its options
 * (`{ config: { permission: 'read' } }`); `installAccessControl` refuses at registration — so at start, and in
 * every test that builds the routes — a route that declares none, and its `onRequest` hook authenticates each
 * request before any handler (or body read) runs. Handlers then take the caller from `requestPrincipal(req)`.
 *
 * Permissions:
 * - `public`: anyone (health, readiness, `/metrics`, login, the UI's files).
 * - `ingest` | `read` | `edit` | `admin`: the caller's credentials must hold that scope in its tenant
 *   (roles map to scopes: viewer → read, editor → read + edit, admin → read + edit + admin).
 * - `operator`: cluster-wide routes, for users with the operator flag only.
 *
 * The tenant always comes from the credentials; a request naming another tenant (`X-Scope-OrgID`) is refused
 * with 403, except from an operator, who picks the tenant that way.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, twError } from '../model/errors.js';
import { type Authenticator, credentialsOf, type Principal, type Scope } from './auth.js';

export type Permission = 'public' | 'ingest' | 'read' | 'edit' | 'admin' | 'operator';
export const PERMISSIONS: readonly Permission[] = ['public', 'ingest', 'read', 'edit', 'admin', 'operator'];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What a caller needs to use the route (src/auth/permissions.ts). Required for every route. */
    permission?: Permission;
    /**
     * The audit log action this route's requests are recorded under (e.g. `silence.create`), with the
     * caller, tenant, target (the route's parameters, or what the handler sets) and outcome.
     */
    audit?: string;
  }
}

/**
 * Authenticates a request for a permission other than `public`: identifies the caller (token, session,
 * anonymous), checks the permission and the tenant the request names, and for cookie-authenticated
 * state-changing requests the CSRF token. Throws a 401/403 TrainwatchError (429 for a token over its rate).
 */
export interface RequestAuthenticator {
  authenticateRequest(
    req: FastifyRequest,
    permission: Exclude<Permission, 'public'>,
  ): Promise<Principal> | Principal;
}

/** A declared route, as the access matrix test enumerates them. */
export interface DeclaredRoute {
  readonly method: string;
  readonly url: string;
  readonly permission: Permission;
  readonly audit?: string;
}

export interface AccessControlHandle {
  /** Sets who authenticates requests (modules: once the metadata store is open). Until then: 503. */
  use(auth: Authenticator | RequestAuthenticator): void;
  /** Every route registered so far, with its permission. */
  routes(): readonly DeclaredRoute[];
  /**
   * Runs `register` (which adds routes, e.g. a static-file plugin that takes no route options) with
   * `permission` as the declared permission of the routes it adds without one.
   */
  withPermission<T>(permission: Permission, register: () => Promise<T>): Promise<T>;
  /** Called after each audited request (route option `audit`), once its answer is sent. */
  onAudited(listener: (event: AuditedRequest) => void): void;
}

/** An audited route's request, as the audit log records it. */
export interface AuditedRequest {
  readonly action: string;
  readonly principal: Principal | undefined;
  readonly target: string;
  readonly ip: string;
  readonly status: number;
}

const STATE = Symbol('trainwatch.accessControl');
const PRINCIPAL = Symbol('trainwatch.principal');
const AUDIT_TARGET = Symbol('trainwatch.auditTarget');
type WithState = FastifyInstance & { [STATE]?: AccessControlHandle };
type WithPrincipal = FastifyRequest & { [PRINCIPAL]?: Principal; [AUDIT_TARGET]?: string };

/** The scope a permission needs; undefined for `public` and `operator`. */
export function scopeOfPermission(permission: Permission): Scope | undefined {
  return permission === 'public' || permission === 'operator' ? undefined : permission;
}

function isRequestAuthenticator(a: Authenticator | RequestAuthenticator): a is RequestAuthenticator {
  return typeof (a as RequestAuthenticator).authenticateRequest === 'function';
}

/** Plain `Authenticator`s (tokens and anonymous only, stage tests' stand-ins) checked for a permission. */
function viaAuthenticator(
  auth: Authenticator,
  req: FastifyRequest,
  permission: Exclude<Permission, 'public'>,
): Principal {
  const scope = scopeOfPermission(permission);
  const principal = auth.authenticate(credentialsOf(req), scope ?? 'admin');
  if (permission === 'operator' && !principal.operator)
    throw twError(
      Errors.forbidden,
      `${principal.via} is not a cluster operator; this route is for operators`,
    );
  return principal;
}

/**
 * Installs the route-permission check on `app` (before any route is added) and returns its handle; a second
 * call returns the same handle.
 */
export function installAccessControl(
  app: FastifyInstance,
  auth?: Authenticator | RequestAuthenticator,
): AccessControlHandle {
  const existing = (app as WithState)[STATE];
  if (existing) {
    if (auth) existing.use(auth);
    return existing;
  }
  let current = auth;
  let defaultPermission: Permission | undefined;
  const routes: DeclaredRoute[] = [];
  const auditListeners: ((event: AuditedRequest) => void)[] = [];

  app.addHook('onRoute', (opts) => {
    const declared = opts.config?.permission ?? defaultPermission;
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    if (declared === undefined || !PERMISSIONS.includes(declared)) {
      throw new Error(
        `route ${methods.join(',')} ${opts.url} declares no permission: add { config: { permission: ` +
          `'public' | 'ingest' | 'read' | 'edit' | 'admin' | 'operator' } } to its options (src/auth/permissions.ts)`,
      );
    }
    opts.config = { ...opts.config, permission: declared };
    for (const method of methods)
      routes.push({
        method: String(method),
        url: opts.url,
        permission: declared,
        ...(opts.config.audit ? { audit: opts.config.audit } : {}),
      });
  });

  app.addHook('onRequest', async (req: WithPrincipal, reply: FastifyReply) => {
    const permission = req.routeOptions.config?.permission;
    // No route matched (404), or a public route: nothing to check.
    if (permission === undefined || permission === 'public') return;
    try {
      if (!current) throw twError(Errors.unavailable, 'trainwatch is starting; retry after 1 s', 1);
      req[PRINCIPAL] = isRequestAuthenticator(current)
        ? await current.authenticateRequest(req, permission)
        : viaAuthenticator(current, req, permission);
    } catch (err) {
      // A refused request's body is never read: close the connection rather than drain it (issue 16, item 1).
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)
        reply.header('connection', 'close');
      throw err;
    }
  });

  app.addHook('onResponse', async (req: WithPrincipal, reply) => {
    const action = req.routeOptions.config?.audit;
    if (!action || auditListeners.length === 0) return;
    const params = (req.params ?? {}) as Record<string, string>;
    const event: AuditedRequest = {
      action,
      principal: req[PRINCIPAL],
      target: req[AUDIT_TARGET] ?? Object.values(params).join('/'),
      ip: req.ip,
      status: reply.statusCode,
    };
    for (const listener of auditListeners) listener(event);
  });

  const handle: AccessControlHandle = {
    use: (a) => {
      current = a;
    },
    routes: () => routes,
    withPermission: async (permission, register) => {
      defaultPermission = permission;
      try {
        return await register();
      } finally {
        defaultPermission = undefined;
      }
    },
    onAudited: (listener) => {
      auditListeners.push(listener);
    },
  };
  (app as WithState)[STATE] = handle;
  return handle;
}

/** The handle `installAccessControl` put on `app`; throws when it was not installed. */
export function accessControlOf(app: FastifyInstance): AccessControlHandle {
  const handle = (app as WithState)[STATE];
  if (!handle) throw new Error('installAccessControl(app) was not called before the routes were added');
  return handle;
}

/**
 * The caller of a request, as the access-control hook authenticated it for the route's permission. Throws
 * (500) on a route whose permission is `public` or an app without the hook: a programming error.
 */
export function requestPrincipal(req: FastifyRequest): Principal {
  const principal = (req as WithPrincipal)[PRINCIPAL];
  if (!principal)
    throw new Error(
      `no authenticated caller for ${req.method} ${req.routeOptions.url}: the route is public or the app has no installAccessControl`,
    );
  return principal;
}

/** The caller when the hook authenticated one (any non-public route), else undefined. */
export function maybeRequestPrincipal(req: FastifyRequest): Principal | undefined {
  return (req as WithPrincipal)[PRINCIPAL];
}

/** Sets what an audited request's audit event names as its target (default: the route's parameters). */
export function setAuditTarget(req: FastifyRequest, target: string): void {
  (req as WithPrincipal)[AUDIT_TARGET] = target;
}

/** Sets the principal of a public route's request once the handler identified it (login), for the audit log. */
export function setRequestPrincipal(req: FastifyRequest, principal: Principal): void {
  (req as WithPrincipal)[PRINCIPAL] = principal;
}
