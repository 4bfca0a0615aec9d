/**
 * Who is calling, and what they may do. Every read and write is scoped to the principal's tenant
 * (DESIGN.md, Isolation); the tenant always comes from the credentials, never from the payload.
 */
import { Errors, twError } from '../model/errors.js';
import { type PeerCertificate, peerCertificateOf, type TlsSocketLike } from './peer-certificate.js';

/**
 * What a caller may do in its tenant. `ingest`: send data (tokens of agents only); `read`: dashboards and
 * queries; `edit`: silences, rules, annotations; `admin`: tokens, users, settings. A user's role maps to
 * scopes (`scopesOfRole`); an `admin` token holds every scope.
 */
export type Scope = 'ingest' | 'read' | 'edit' | 'admin';

export interface Principal {
  readonly tenant: string;
  readonly scopes: ReadonlySet<Scope>;
  /** How the caller was identified, for logs and the audit log (e.g. `anonymous`, `token:abc123`, `session:ann`). */
  readonly via: string;
  /** The signed-in user (sessions, OIDC); undefined for tokens and anonymous callers. */
  readonly user?: { readonly id: string; readonly name: string };
  /** A cluster operator: every tenant's admin rights (picks the tenant with X-Scope-OrgID) and cluster routes. */
  readonly operator?: boolean;
}

export interface RequestCredentials {
  /** The raw `Authorization` header, if any. */
  readonly authorization: string | undefined;
  /**
   * The tenant the request names, if any (`X-Scope-OrgID`, as Mimir and Cortex clients send it). It never
   * chooses the tenant: a request naming another tenant than its credentials' is refused with 403.
   */
  readonly tenantHeader?: string | undefined;
  /**
   * The `Host` and `Origin` headers. Anonymous access is refused when Host is not a name of this server or
   * Origin is another site: otherwise a web page the local user visits could reach a loopback server by DNS
   * rebinding. Undefined for callers that are not HTTP requests.
   */
  readonly host?: string | undefined;
  readonly origin?: string | undefined;
  /** The `tw_session` cookie's value (a signed-in user's session id), if the request carries one. */
  readonly sessionId?: string | undefined;
  /**
   * The client certificate of a TLS connection that presented one (mutual TLS, src/auth/mtls.ts); undefined
   * over plain HTTP or without a certificate. Only `authorized` certificates identify anyone.
   */
  readonly peerCertificate?: PeerCertificate | undefined;
}

/** The session cookie's name (HttpOnly, SameSite=Lax, Path=/, Secure over TLS). */
export const SESSION_COOKIE = 'tw_session';

/** The value of cookie `name` in a `Cookie` header, if present. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The credentials of an HTTP request: Authorization, the tenant it names (X-Scope-OrgID), Host, Origin, and
 * the TLS client certificate of its connection.
 */
export function credentialsOf(req: {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly raw?: { readonly socket?: unknown };
}): RequestCredentials {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const peerCertificate = peerCertificateOf(req.raw?.socket as TlsSocketLike | undefined);
  return {
    authorization: first(req.headers.authorization),
    tenantHeader: first(req.headers['x-scope-orgid']),
    host: first(req.headers.host),
    origin: first(req.headers.origin),
    sessionId: cookieValue(first(req.headers.cookie), SESSION_COOKIE),
    ...(peerCertificate ? { peerCertificate } : {}),
  };
}

export interface Authenticator {
  /** Identifies the caller and checks it holds `scope`; throws a 401/403 TrainwatchError otherwise. */
  authenticate(credentials: RequestCredentials, scope: Scope): Principal;
}

const ALL_SCOPES: ReadonlySet<Scope> = new Set(['ingest', 'read', 'edit', 'admin']);

/**
 * Accepts requests without credentials as one tenant, with every scope: the single-user laptop and the demo.
 * Requests that do present credentials are refused rather than silently treated as anonymous.
 */
export class AnonymousAuthenticator implements Authenticator {
  constructor(private readonly tenant: string | null) {}

  authenticate(credentials: RequestCredentials, scope: Scope): Principal {
    if (credentials.authorization !== undefined) {
      throw twError(
        Errors.unauthorized,
        'this server does not accept credentials: it has no tokens configured; send the request without an Authorization header',
      );
    }
    if (this.tenant === null) {
      throw twError(
        Errors.unauthorized,
        `authentication required for ${scope}: send Authorization: Bearer <token>`,
      );
    }
    return { tenant: this.tenant, scopes: ALL_SCOPES, via: 'anonymous' };
  }
}
