/**
 * The authenticator of a running trainwatch: `Authorization: Bearer <token>` checked against the token store
 * (src/meta/tokens.ts), and requests without credentials allowed only for the scopes the configuration
 * grants to anonymous callers (`auth.anonymous_scopes`, `auth.anonymous_from`).
 *
 * Status contract (senders and the dashboard act on it):
 * - 401: no credentials where they are needed, or credentials that are malformed, unknown or revoked.
 *   The dashboard answers a 401 with its token prompt.
 * - 403: a valid token without the scope the request needs, or a request that names another tenant
 *   (`X-Scope-OrgID`) than its token's.
 */
import { Errors, twError } from '../model/errors.js';
import type { Authenticator, Principal, RequestCredentials, Scope } from './auth.js';

/**
 * What the authenticator needs from the token store: `TokenSource` in src/meta, i.e. the SQLite `TokenStore`
 * or, with `meta.kind: postgres`, `PgTokenCache`. Synchronous: it runs on every request.
 */
export interface TokenVerifier {
  verify(presented: string):
    | {
        readonly ok: true;
        readonly token: {
          readonly id: string;
          readonly tenant: string;
          readonly scope: Scope;
          /** Requests per second this token may make (enforced by `AccessControl`); null/absent: none. */
          readonly rateLimitPerSecond?: number | null;
        };
      }
    | {
        readonly ok: false;
        readonly reason: 'malformed' | 'unknown' | 'revoked' | 'expired';
        readonly id?: string;
      };
}

/** Who a request without credentials is, and what it may do. An empty scope set: tokens required. */
export interface AnonymousPolicy {
  readonly tenant: string | null;
  readonly scopes: ReadonlySet<Scope>;
  /**
   * Host names (no port) anonymous requests may name in `Host`, besides loopback names and addresses: the
   * configured listen host. Anything else is refused with 403 (DNS rebinding). `any`: no Host check (a
   * wildcard listen address with `anonymous_from: anywhere`, where anyone may reach the server directly).
   */
  readonly hosts?: readonly string[] | 'any';
}

/** A token's scope grants: `admin` can do everything (editing included), `ingest` and `read` only themselves. */
export function scopesOf(scope: Scope): ReadonlySet<Scope> {
  return scope === 'admin' ? new Set<Scope>(['ingest', 'read', 'edit', 'admin']) : new Set<Scope>([scope]);
}

export const WHAT: Record<Scope, string> = {
  ingest: 'send data',
  read: 'read data',
  edit: 'change silences, rules and annotations',
  admin: 'change settings',
};

export class TokenAuthenticator implements Authenticator {
  private readonly anonymous: Principal | undefined;
  private readonly anonymousHosts: ReadonlySet<string>;
  private readonly anyHost: boolean;

  constructor(
    private readonly tokens: TokenVerifier,
    policy: AnonymousPolicy,
  ) {
    this.anonymous =
      policy.tenant !== null && policy.scopes.size > 0
        ? { tenant: policy.tenant, scopes: policy.scopes, via: 'anonymous' }
        : undefined;
    this.anyHost = policy.hosts === 'any';
    this.anonymousHosts = new Set(
      (policy.hosts === 'any' ? [] : (policy.hosts ?? [])).map((h) =>
        h.replace(/^\[|\]$/g, '').toLowerCase(),
      ),
    );
  }

  authenticate(credentials: RequestCredentials, scope: Scope): Principal {
    const principal = this.identify(credentials, scope).principal;
    if (!principal.scopes.has(scope)) {
      if (principal.via === 'anonymous') throw this.credentialsRequired(scope);
      throw twError(
        Errors.forbidden,
        `${principal.via} (tenant ${principal.tenant}) has scope ${[...principal.scopes].join(', ')}; ` +
          `to ${WHAT[scope]} it needs scope ${scope === 'admin' ? 'admin' : `${scope} or admin`}`,
      );
    }
    const named = credentials.tenantHeader;
    if (named !== undefined && named !== '' && named !== principal.tenant) {
      throw twError(
        Errors.forbidden,
        `the request names tenant ${JSON.stringify(named)} (X-Scope-OrgID) but its credentials belong to tenant ${principal.tenant}`,
      );
    }
    return principal;
  }

  /**
   * Who the request's token (or, without one, the anonymous policy) says the caller is; its scopes are not
   * checked here. `rateLimitPerSecond`: the token's own rate limit, if any.
   */
  identify(
    credentials: RequestCredentials,
    scope: Scope,
  ): { principal: Principal; rateLimitPerSecond: number | null } {
    const header = credentials.authorization;
    if (header === undefined || header === '') {
      if (this.anonymous) {
        this.checkAnonymousSite(credentials);
        return { principal: this.anonymous, rateLimitPerSecond: null };
      }
      throw this.credentialsRequired(scope);
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) {
      throw twError(
        Errors.unauthorized,
        'the Authorization header must be "Bearer <token>" (trainwatch tokens look like twk_<id>_<secret>)',
      );
    }
    const check = this.tokens.verify(m[1]!);
    if (!check.ok) {
      const which = check.id ? `token ${check.id}` : 'the bearer token';
      const why =
        check.reason === 'malformed'
          ? 'is not a trainwatch token (expected twk_<id>_<secret>)'
          : check.reason === 'revoked'
            ? 'was revoked'
            : check.reason === 'expired'
              ? 'has expired'
              : 'is not known to this server';
      throw twError(Errors.unauthorized, `${which} ${why}`);
    }
    return {
      principal: {
        tenant: check.token.tenant,
        scopes: scopesOf(check.token.scope),
        via: `token ${check.token.id}`,
      },
      rateLimitPerSecond: check.token.rateLimitPerSecond ?? null,
    };
  }

  /**
   * Anonymous access is for the local user's own tools: a request whose Host is not a name of this server, or
   * whose Origin is another site, comes from a web page that reached the server by DNS rebinding or
   * cross-site, and is refused (403 naming the header). Requests with a token are not affected.
   */
  private checkAnonymousSite(credentials: RequestCredentials): void {
    const { host, origin } = credentials;
    const hostName = host === undefined ? undefined : hostOf(host);
    if (
      hostName !== undefined &&
      !this.anyHost &&
      !isLoopbackHost(hostName) &&
      !this.anonymousHosts.has(hostName)
    ) {
      throw twError(
        Errors.forbidden,
        `anonymous access refused: the Host header ${JSON.stringify(host)} is not a loopback name or the listen address of this server; send a token (Authorization: Bearer <token>)`,
      );
    }
    if (origin === undefined) return;
    let originHost = '';
    try {
      originHost = new URL(origin).hostname.replace(/^\[|\]$/g, '').toLowerCase();
    } catch {
      // "null" (sandboxed pages, file://) and anything unparsable is a foreign site.
    }
    const ownSite =
      originHost !== '' &&
      (isLoopbackHost(originHost) || originHost === hostName || this.anonymousHosts.has(originHost));
    if (!ownSite) {
      throw twError(
        Errors.forbidden,
        `anonymous access refused: the Origin header ${JSON.stringify(origin)} is another site; send a token (Authorization: Bearer <token>)`,
      );
    }
  }

  credentialsRequired(scope: Scope) {
    return twError(
      Errors.unauthorized,
      `authentication required to ${WHAT[scope]}: send Authorization: Bearer <token> ` +
        `(create one with: trainwatch token create --tenant <tenant> --scope ${scope})`,
    );
  }
}

/** The host name of a Host header value (port and IPv6 brackets removed), lower case. */
function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h.slice(1);
  }
  const colon = h.lastIndexOf(':');
  // One colon: name:port. More: a bare IPv6 address (not valid in Host, but compared as is).
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The anonymous policy a configuration means for a server listening on `listen` (host:port):
 * `from: loopback` grants the anonymous scopes only when the listen address is loopback, so that nobody on
 * another machine can reach the server without a token.
 */
export function anonymousPolicyFor(
  auth: {
    readonly anonymous_tenant: string | null;
    readonly anonymous_scopes: readonly Scope[];
    readonly anonymous_from: 'loopback' | 'anywhere';
  },
  listen: string,
): AnonymousPolicy & { readonly loopback: boolean } {
  const loopback = isLoopbackHost(listen.slice(0, listen.lastIndexOf(':')));
  const allowed = auth.anonymous_tenant !== null && (auth.anonymous_from === 'anywhere' || loopback);
  const listenHost = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  // An anonymous admin may also edit (an admin token implies edit too).
  const scopes = new Set<Scope>(allowed ? auth.anonymous_scopes : []);
  if (scopes.has('admin')) scopes.add('edit');
  return {
    tenant: auth.anonymous_tenant,
    scopes,
    // A wildcard listen address names no host of its own: loopback names only, unless anonymous callers
    // may come from anywhere anyway.
    hosts:
      listenHost === '0.0.0.0' || listenHost === '::' || listenHost === ''
        ? auth.anonymous_from === 'anywhere'
          ? 'any'
          : []
        : [listenHost],
    loopback,
  };
}
