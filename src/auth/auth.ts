/**
 * Who is calling, and what they may do. Every read and write is scoped to the principal's tenant
 * (DESIGN.md, Isolation); the tenant always comes from the credentials, never from the payload.
 */
import { Errors, twError } from '../model/errors.js';
import { type PeerCertificate, peerCertificateOf, type TlsSocketLike } from './peer-certificate.js';

export type Scope = 'ingest' | 'read' | 'admin';

export interface Principal {
  readonly tenant: string;
  readonly scopes: ReadonlySet<Scope>;
  /** How the caller was identified, for logs and self-metrics (e.g. `anonymous`, `token:abc123`). */
  readonly via: string;
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
  /**
   * The client certificate of a TLS connection that presented one (mutual TLS, src/auth/mtls.ts); undefined
   * over plain HTTP or without a certificate. Only `authorized` certificates identify anyone.
   */
  readonly peerCertificate?: PeerCertificate | undefined;
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
    ...(peerCertificate ? { peerCertificate } : {}),
  };
}

export interface Authenticator {
  /** Identifies the caller and checks it holds `scope`; throws a 401/403 TrainwatchError otherwise. */
  authenticate(credentials: RequestCredentials, scope: Scope): Principal;
}

const ALL_SCOPES: ReadonlySet<Scope> = new Set(['ingest', 'read', 'admin']);

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
