/**
 * Who is calling, and what they may do. Every read and write is scoped to the principal's tenant
 * (DESIGN.md, Isolation); the tenant always comes from the credentials, never from the payload.
 */
import { Errors, twError } from '../model/errors.js';

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

/** What the authenticators read of a TLS client certificate. */
export interface PeerCertificate {
  /** True when the certificate chains to the configured client CA bundle (Node's `socket.authorized`). */
  readonly authorized: boolean;
  /** Why it does not, when it does not (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  readonly authorizationError?: string | undefined;
  /** The subject's common name, if any. */
  readonly commonName?: string | undefined;
  /** Subject alternative names as Node writes them: `URI:spiffe://…`, `DNS:agent-1`, `IP Address:10.0.0.1`. */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 fingerprint, colon-separated hex (logs). */
  readonly fingerprint256: string;
}

interface TlsSocketLike {
  readonly encrypted?: boolean;
  readonly authorized?: boolean;
  readonly authorizationError?: Error | string | null;
  getPeerCertificate?(): {
    subject?: Record<string, string | string[]>;
    subjectaltname?: string;
    fingerprint256?: string;
  } | null;
}

// One parse per connection, not per request: an agent sends every batch over the same connection.
const peerCertificates = new WeakMap<object, PeerCertificate | null>();

function peerCertificateOf(socket: TlsSocketLike | undefined): PeerCertificate | undefined {
  if (!socket?.encrypted || typeof socket.getPeerCertificate !== 'function') return undefined;
  const known = peerCertificates.get(socket);
  if (known !== undefined) return known ?? undefined;
  const raw = socket.getPeerCertificate();
  let cert: PeerCertificate | null = null;
  if (raw?.fingerprint256) {
    const cn = raw.subject?.CN;
    cert = {
      authorized: socket.authorized === true,
      authorizationError: socket.authorizationError == null ? undefined : String(socket.authorizationError),
      commonName: Array.isArray(cn) ? cn[0] : cn,
      subjectAltNames: splitSubjectAltNames(raw.subjectaltname ?? ''),
      fingerprint256: raw.fingerprint256,
    };
  }
  peerCertificates.set(socket, cert);
  return cert ?? undefined;
}

/**
 * Node's `subjectaltname` string (`DNS:a, URI:spiffe://x/y`): entries are separated by ", ", and an entry
 * whose value holds a comma or a quote is written as a JSON string (`URI:"a,b"`).
 */
export function splitSubjectAltNames(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      next = text.indexOf(', ', j);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    out.push(`${kind}:${value}`);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
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
