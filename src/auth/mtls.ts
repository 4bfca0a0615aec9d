/**
 * Mutual TLS for agents (config `http.tls` with `client_ca_file`; docs/security.md, "mTLS"): a client
 * certificate the listener verified against the client CA bundle identifies the caller, so an agent needs no
 * token file. The tenant comes from the configured mapping (`client_tenants`, by subject CN or SAN) or from a
 * URI SAN `spiffe://<trust domain>/…/tenant/<t>` or `trainwatch://tenant/<t>`; the scopes are
 * `client_scopes` (default: ingest).
 *
 * Tokens come first: a request with an Authorization header is the token authenticator's, whatever
 * certificate its connection has (an operator's curl with an admin token through an agent's proxy). Without
 * one, a verified certificate identifies the caller; without a certificate the token authenticator decides
 * (anonymous policy, or 401).
 */
import { Errors, twError } from '../model/errors.js';
import type { Authenticator, Principal, RequestCredentials, Scope } from './auth.js';
import type { PeerCertificate } from './peer-certificate.js';
import { scopesOf } from './token-auth.js';

export interface MtlsOptions {
  /** Subject CN or SAN (`URI:…`, `DNS:…`, or the bare value) → tenant; checked before the URI SAN rules. */
  readonly clientTenants: Readonly<Record<string, string>>;
  readonly scopes: readonly Scope[];
}

const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** `spiffe://<trust domain>/…/tenant/<t>` (the tenant is the last path segment) or `trainwatch://tenant/<t>`. */
const SAN_TENANT = /^(?:spiffe:\/\/[^/]+(?:\/[^/]+)*\/tenant\/|trainwatch:\/\/tenant\/)([^/?#]+)$/;

/** The tenant a certificate names, or undefined. Exported for tests and `trainwatch` diagnostics. */
export function tenantOfCertificate(
  cert: Pick<PeerCertificate, 'commonName' | 'subjectAltNames'>,
  clientTenants: Readonly<Record<string, string>>,
): string | undefined {
  if (cert.commonName !== undefined && Object.hasOwn(clientTenants, cert.commonName))
    return clientTenants[cert.commonName];
  for (const san of cert.subjectAltNames) {
    if (Object.hasOwn(clientTenants, san)) return clientTenants[san];
    const bare = san.slice(san.indexOf(':') + 1);
    if (Object.hasOwn(clientTenants, bare)) return clientTenants[bare];
  }
  for (const san of cert.subjectAltNames) {
    if (!san.startsWith('URI:')) continue;
    const m = SAN_TENANT.exec(san.slice(4));
    if (m && TENANT.test(m[1]!)) return m[1];
  }
  return undefined;
}

export class MtlsAuthenticator implements Authenticator {
  private readonly scopes: ReadonlySet<Scope>;

  constructor(
    /** Tokens and the anonymous policy: the token authenticator. */
    private readonly fallback: Authenticator,
    private readonly opts: MtlsOptions,
  ) {
    // What each scope implies is the tokens' rule (admin implies the others).
    this.scopes = new Set(opts.scopes.flatMap((s) => [...scopesOf(s)]));
  }

  authenticate(credentials: RequestCredentials, scope: Scope): Principal {
    const principal = this.identify(credentials);
    if (principal === undefined) return this.fallback.authenticate(credentials, scope);
    const tenant = principal.tenant;
    if (!this.scopes.has(scope)) {
      throw twError(
        Errors.forbidden,
        `${principal.via} (tenant ${tenant}) has scope ${[...this.scopes].join(', ')} (http.tls.client_scopes); this request needs scope ${scope}`,
      );
    }
    const named = credentials.tenantHeader;
    if (named !== undefined && named !== '' && named !== tenant) {
      throw twError(
        Errors.forbidden,
        `the request names tenant ${JSON.stringify(named)} (X-Scope-OrgID) but its client certificate belongs to tenant ${tenant}`,
      );
    }
    return principal;
  }

  /**
   * Who a request's client certificate identifies, before any scope or tenant check: undefined when the request
   * carries a token (the token decides) or no certificate. Throws 401 for a certificate the CA bundle did not
   * verify or that names no tenant.
   */
  identify(credentials: RequestCredentials): Principal | undefined {
    const cert = credentials.peerCertificate;
    const hasToken = credentials.authorization !== undefined && credentials.authorization !== '';
    if (hasToken || cert === undefined) return undefined;
    const who = cert.commonName ?? cert.subjectAltNames[0] ?? cert.fingerprint256;
    if (!cert.authorized) {
      throw twError(
        Errors.unauthorized,
        `the client certificate ${JSON.stringify(who)} is not signed by a CA in http.tls.client_ca_file ` +
          `(${cert.authorizationError ?? 'not verified'}); use a certificate of that CA or send a token`,
      );
    }
    const tenant = tenantOfCertificate(cert, this.opts.clientTenants);
    if (tenant === undefined) {
      throw twError(
        Errors.unauthorized,
        `the client certificate ${JSON.stringify(who)} names no tenant: give it a URI SAN ` +
          'trainwatch://tenant/<tenant> (or spiffe://<domain>/…/tenant/<tenant>), or map its CN or SAN in http.tls.client_tenants',
      );
    }
    return { tenant, scopes: this.scopes, via: `mtls:${who}` };
  }
}
