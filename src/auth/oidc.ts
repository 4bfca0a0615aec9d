/**
 * Single sign-on with OpenID Connect (docs/sso.md): the authorization code flow with PKCE (S256), state and
 * nonce, through `openid-client`. The ID token is checked for issuer, audience, expiry, nonce and its
 * signature against the provider's JWKS; one of its claims (or userinfo's) maps to tenant roles.
 *
 * Between the login redirect and the callback the flow's secrets (state, nonce, PKCE verifier, where to go
 * afterwards) ride in one short-lived HttpOnly cookie, `tw_oidc`, sealed with an HMAC keyed by the client
 * secret: any process of a scaled-out deployment can finish a flow another began, and a cookie planted by a
 * sibling domain is refused. The state in the cookie must equal the callback's `state` (login CSRF).
 *
 * What a successful callback does with the identity (create or update the user `<provider>|<sub>`, start a
 * session, set `tw_session`) belongs to the user store: {@link OidcSignIn}.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Configuration } from 'openid-client';
import type { Config } from '../config/index.js';
import { Errors, TrainwatchError, twError } from '../model/errors.js';
import { setAuditTarget } from './permissions.js';

export type OidcProviderConfig = Config['auth']['oidc']['providers'][number];
export type TenantRole = 'viewer' | 'editor' | 'admin';

export interface TenantRoleGrant {
  readonly tenant: string;
  readonly role: TenantRole;
}

/** Who signed in, as the provider vouched for it, with the roles its claims map to. */
export interface OidcIdentity {
  readonly provider: string;
  /** `<provider>|<sub>`: stable across renames at the provider; the user's external id. */
  readonly externalId: string;
  readonly subject: string;
  /** The display name (`name_claim`, else `email`, else `sub`). */
  readonly name: string;
  readonly email?: string;
  /** The user's roles, one per tenant (the highest when several groups name one tenant), sorted by tenant. */
  readonly roles: readonly TenantRoleGrant[];
  readonly operator: boolean;
}

/**
 * Completes a sign-in: creates or updates the user `identity.externalId` with exactly `identity.roles` (and
 * the operator flag), starts its session and sets the session cookie on `reply`. Throws a TrainwatchError
 * (e.g. 403 for a disabled user) to refuse it.
 */
export type OidcSignIn = (identity: OidcIdentity, req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** A provider as the login page lists it (`GET /api/tw/v1/auth/providers`). */
export interface OidcProviderSummary {
  readonly id: string;
  readonly name: string;
  readonly loginUrl: string;
}

export const OIDC_ROUTE_PREFIX = '/api/tw/v1/auth/oidc';
/** The cookie carrying the flow's state between the login redirect and the callback. */
export const OIDC_STATE_COOKIE = 'tw_oidc';
/** How long a user may take at the provider before the callback is refused. */
const FLOW_TTL_MS = 10 * 60_000;
const ROLE_RANK: Record<TenantRole, number> = { viewer: 1, editor: 2, admin: 3 };

interface FlowState {
  /** provider id */
  readonly p: string;
  readonly state: string;
  readonly nonce: string;
  readonly verifier: string;
  /** where to send the browser afterwards: a same-origin path */
  readonly redirect: string;
  /** expiry, ms since the epoch */
  readonly exp: number;
}

/** A same-origin path to return to after sign-in; anything else (another origin, `//host`, `/\host`) is `/`. */
export function safeRedirectPath(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) return '/';
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/';
  // Control characters could split headers or be read as another URL by a lenient browser.
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return '/';
  return raw;
}

/**
 * The grants that a provider's claims map to. `claimValue` is the raw claim (a list, one string, or absent).
 * Exported for tests of the mapping rules.
 */
export function mapClaimsToRoles(
  claims: OidcProviderConfig['claims'],
  claimValue: unknown,
): { roles: TenantRoleGrant[]; operator: boolean; groups: string[] } {
  const groups = Array.isArray(claimValue)
    ? claimValue.filter((g): g is string => typeof g === 'string')
    : typeof claimValue === 'string'
      ? claimValue.split(/[\s,]+/).filter((g) => g.length > 0)
      : [];
  const best = new Map<string, TenantRole>();
  const grant = (g: TenantRoleGrant) => {
    const prev = best.get(g.tenant);
    if (prev === undefined || ROLE_RANK[g.role] > ROLE_RANK[prev]) best.set(g.tenant, g.role);
  };
  const pattern = claims.pattern ? new RegExp(claims.pattern) : undefined;
  let operator = false;
  for (const group of groups) {
    if (claims.operator_group !== undefined && group === claims.operator_group) operator = true;
    const mapped = Object.hasOwn(claims.mapping, group) ? claims.mapping[group] : undefined;
    if (mapped) for (const g of mapped) grant(g);
    const m = pattern?.exec(group);
    const tenant = m?.groups?.tenant;
    const role = m?.groups?.role;
    if (
      tenant !== undefined &&
      /^[a-z0-9][a-z0-9_-]{0,62}$/.test(tenant) &&
      (role === 'viewer' || role === 'editor' || role === 'admin')
    )
      grant({ tenant, role });
  }
  const roles = [...best]
    .map(([tenant, role]) => ({ tenant, role }))
    .sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  return { roles, operator, groups };
}

/** A claim by name, or by dotted path into nested objects (Keycloak's `realm_access.roles`). */
function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let v: unknown = claims;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

type OpenIdClient = typeof import('openid-client');
let openIdClient: Promise<OpenIdClient> | undefined;
/** Loaded on first use: processes without SSO (and the agent) never load it. */
function loadClient(): Promise<OpenIdClient> {
  openIdClient ??= import('openid-client');
  return openIdClient;
}

/** One configured provider: its discovered metadata (fetched on first use, retried after a failure). */
class OidcProvider {
  private discovered: Promise<Configuration> | undefined;
  private readonly secret: string;
  private readonly stateKey: Buffer;

  constructor(readonly config: OidcProviderConfig) {
    this.secret = config.client_secret ?? readSecret(config);
    this.stateKey = createHash('sha256').update('trainwatch oidc flow state\0').update(this.secret).digest();
  }

  get id(): string {
    return this.config.id;
  }

  configuration(): Promise<Configuration> {
    if (!this.discovered) {
      const attempt = (async () => {
        const client = await loadClient();
        try {
          return await client.discovery(
            new URL(this.config.issuer),
            this.config.client_id,
            this.secret,
            client.ClientSecretPost(this.secret),
            {
              execute: [
                // The ID token's signature is checked against the provider's JWKS, not only trusted because
                // it came over TLS from the token endpoint.
                client.enableNonRepudiationChecks,
                ...(this.config.allow_insecure_http ? [client.allowInsecureRequests] : []),
              ],
              timeout: 10,
            },
          );
        } catch (err) {
          throw twError(
            Errors.unavailable,
            `OpenID provider ${this.id}: discovery at ${this.config.issuer} failed: ${(err as Error).message}`,
          );
        }
      })();
      this.discovered = attempt;
      // A provider that was down at the first sign-in is asked again at the next one.
      attempt.catch(() => {
        if (this.discovered === attempt) this.discovered = undefined;
      });
    }
    return this.discovered;
  }

  redirectUri(req: FastifyRequest): string {
    if (this.config.redirect_uri) return this.config.redirect_uri;
    return `${req.protocol}://${req.host}${OIDC_ROUTE_PREFIX}/${this.id}/callback`;
  }

  seal(flow: FlowState): string {
    const body = Buffer.from(JSON.stringify(flow)).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  /** The flow state of a sealed cookie value, or a reason it cannot be used. */
  unseal(value: string | undefined): FlowState | string {
    if (!value)
      return 'the sign-in cookie is missing: start again from the login page (are cookies blocked?)';
    const dot = value.indexOf('.');
    const body = value.slice(0, dot);
    const mac = Buffer.from(value.slice(dot + 1));
    const expected = Buffer.from(this.mac(body));
    if (dot < 0 || mac.length !== expected.length || !timingSafeEqual(mac, expected))
      return 'the sign-in cookie is not valid for this provider: start again from the login page';
    let flow: FlowState;
    try {
      flow = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as FlowState;
    } catch {
      return 'the sign-in cookie is not valid: start again from the login page';
    }
    if (flow.p !== this.id) return 'the sign-in cookie belongs to another provider: start again';
    if (!(flow.exp > Date.now())) return 'the sign-in took longer than 10 minutes: start again';
    return flow;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.stateKey).update(body).digest('base64url');
  }
}

function readSecret(p: OidcProviderConfig): string {
  const file = p.client_secret_file!;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(
      `auth.oidc.providers[${p.id}].client_secret_file: cannot read ${file}: ${(err as Error).message}`,
    );
  }
}

/** The configured providers (`auth.oidc.providers`). */
export class OidcProviders {
  private readonly byId = new Map<string, OidcProvider>();

  constructor(providers: readonly OidcProviderConfig[]) {
    for (const p of providers) this.byId.set(p.id, new OidcProvider(p));
  }

  get size(): number {
    return this.byId.size;
  }

  list(): OidcProviderSummary[] {
    return [...this.byId.values()].map((p) => ({
      id: p.id,
      name: p.config.name,
      loginUrl: `${OIDC_ROUTE_PREFIX}/${encodeURIComponent(p.id)}/login`,
    }));
  }

  private provider(id: string): OidcProvider {
    const p = this.byId.get(id);
    if (!p)
      throw twError(
        Errors.notFound,
        `no OpenID provider ${JSON.stringify(id)}; configured: ${[...this.byId.keys()].join(', ') || 'none'}`,
      );
    return p;
  }

  /** Where to send the browser to sign in, and the sealed flow state for the `tw_oidc` cookie. */
  async begin(id: string, redirectPath: string, req: FastifyRequest): Promise<{ url: URL; cookie: string }> {
    const provider = this.provider(id);
    const config = await provider.configuration();
    const client = await loadClient();
    const verifier = client.randomPKCECodeVerifier();
    const flow: FlowState = {
      p: provider.id,
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier,
      redirect: safeRedirectPath(redirectPath),
      exp: Date.now() + FLOW_TTL_MS,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: provider.redirectUri(req),
      scope: provider.config.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    return { url, cookie: provider.seal(flow) };
  }

  /**
   * Finishes the flow at the callback: checks the state against the cookie's, redeems the code with the PKCE
   * verifier, validates the ID token (issuer, audience, expiry, nonce, signature) and maps its claims.
   * Throws 400 for a broken flow, 401 for a token that fails validation, 403 when no role is mapped.
   */
  async complete(
    id: string,
    query: Readonly<Record<string, string | undefined>>,
    sealedState: string | undefined,
    req: FastifyRequest,
  ): Promise<{ identity: OidcIdentity; redirect: string }> {
    const provider = this.provider(id);
    const flow = provider.unseal(sealedState);
    if (typeof flow === 'string') throw twError(Errors.badRequest, flow);
    if (query.error !== undefined)
      throw twError(
        Errors.unauthorized,
        `OpenID provider ${id} refused the sign-in: ${query.error}${query.error_description ? ` (${query.error_description})` : ''}`,
      );
    if (query.state !== flow.state)
      throw twError(
        Errors.badRequest,
        'the callback state does not match this browser’s sign-in: start again from the login page',
      );
    const config = await provider.configuration();
    const client = await loadClient();
    const current = new URL(provider.redirectUri(req));
    for (const [k, v] of Object.entries(query)) if (v !== undefined) current.searchParams.set(k, v);
    let claims: Record<string, unknown>;
    let accessToken: string;
    try {
      const tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
      claims = (tokens.claims() ?? {}) as Record<string, unknown>;
      accessToken = tokens.access_token;
    } catch (err) {
      if (err instanceof TrainwatchError) throw err;
      throw twError(
        Errors.unauthorized,
        `OpenID provider ${id}: sign-in refused: ${describeClientError(err)}`,
      );
    }
    const audience = provider.config.audience;
    if (audience !== undefined) {
      const aud = claims.aud;
      if (!(Array.isArray(aud) ? aud.includes(audience) : aud === audience))
        throw twError(
          Errors.unauthorized,
          `OpenID provider ${id}: the ID token's audience ${JSON.stringify(aud)} does not include ${audience} (auth.oidc.providers[${id}].audience)`,
        );
    }
    const sub = claims.sub as string;
    const c = provider.config.claims;
    let roleClaim = claimAt(claims, c.tenant_roles_claim);
    let from = 'ID token';
    if (roleClaim === undefined && config.serverMetadata().userinfo_endpoint) {
      // Many providers (Okta's org server, Keycloak without a mapper on the ID token) put groups in userinfo only.
      const info = (await client.fetchUserInfo(config, accessToken, sub)) as Record<string, unknown>;
      roleClaim = claimAt(info, c.tenant_roles_claim);
      from = 'ID token or userinfo';
    }
    const mapped = mapClaimsToRoles(c, roleClaim);
    if (mapped.roles.length === 0 && !mapped.operator) {
      const why =
        roleClaim === undefined
          ? `the ${from} has no claim ${JSON.stringify(c.tenant_roles_claim)} (auth.oidc.providers[${id}].claims.tenant_roles_claim); the provider must send it (a scope or a claim mapper)`
          : `the claim ${JSON.stringify(c.tenant_roles_claim)} holds ${mapped.groups.length === 0 ? 'no group' : mapped.groups.map((g) => JSON.stringify(g)).join(', ')}, none of which maps to a tenant role (auth.oidc.providers[${id}].claims.mapping)`;
      throw twError(Errors.forbidden, `no trainwatch role for this user: ${why}`);
    }
    const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
    const email = str(claims.email);
    const identity: OidcIdentity = {
      provider: id,
      externalId: `${id}|${sub}`,
      subject: sub,
      name: str(claimAt(claims, c.name_claim)) ?? email ?? sub,
      ...(email ? { email } : {}),
      roles: mapped.roles,
      operator: mapped.operator,
    };
    return { identity, redirect: flow.redirect };
  }
}

/** openid-client's errors say what failed (`unexpected JWT "aud" (audience) claim value`); keep that. */
function describeClientError(err: unknown): string {
  const e = err as Error & { code?: string; error?: string; error_description?: string; cause?: unknown };
  if (e.error) return `${e.error}${e.error_description ? `: ${e.error_description}` : ''}`;
  // openid-client wraps oauth4webapi's error, whose message names the claim or check that failed.
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  return cause && cause !== e.message ? `${e.message}: ${cause}` : (e.message ?? String(err));
}

/** The value of one cookie of the request (no cookie plugin needed for one read). */
function cookieOf(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function flowCookie(req: FastifyRequest, value: string, maxAgeSeconds: number): string {
  // Secure when the request came over TLS, like the session cookie. Lax: the provider's redirect back is a top-level GET navigation, which carries Lax cookies.
  return `${OIDC_STATE_COOKIE}=${value}; Path=${OIDC_ROUTE_PREFIX}/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${req.protocol === 'https' ? '; Secure' : ''}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A refused sign-in, for the audit log (the route itself is public, so the access hook records nothing). */
export interface OidcRefusal {
  readonly provider: string;
  readonly reason: string;
  readonly status: number;
  readonly ip: string;
}

export interface OidcRoutesOptions {
  readonly providers: OidcProviders;
  readonly signIn: OidcSignIn;
  readonly onRefused?: (refusal: OidcRefusal) => void;
}

/**
 * `GET /api/tw/v1/auth/oidc/:provider/login?redirect=/path` → 302 to the provider;
 * `GET /api/tw/v1/auth/oidc/:provider/callback` → the session cookie, 302 to the redirect.
 * A refused callback answers its status with the reason: as a small page for a browser, JSON otherwise.
 */
export function registerOidcRoutes(app: FastifyInstance, opts: OidcRoutesOptions): void {
  app.get<{ Params: { provider: string }; Querystring: { redirect?: string } }>(
    `${OIDC_ROUTE_PREFIX}/:provider/login`,
    { config: { permission: 'public' } },
    async (req, reply) => {
      const { url, cookie } = await opts.providers.begin(req.params.provider, req.query.redirect ?? '/', req);
      reply.header('set-cookie', flowCookie(req, cookie, FLOW_TTL_MS / 1000));
      reply.header('cache-control', 'no-store');
      return reply.redirect(url.href, 302);
    },
  );
  app.get<{ Params: { provider: string }; Querystring: Record<string, string | undefined> }>(
    `${OIDC_ROUTE_PREFIX}/:provider/callback`,
    // Public: the caller is who the provider says. Sign-ins are audited by `signIn`, refusals by `onRefused`.
    { config: { permission: 'public' } },
    async (req, reply) => {
      // The flow's secrets are single-use, whatever the outcome.
      reply.header('set-cookie', flowCookie(req, '', 0));
      reply.header('cache-control', 'no-store');
      try {
        const { identity, redirect } = await opts.providers.complete(
          req.params.provider,
          req.query,
          cookieOf(req, OIDC_STATE_COOKIE),
          req,
        );
        setAuditTarget(req, identity.externalId);
        await opts.signIn(identity, req, reply);
        req.log.info(
          { provider: identity.provider, user: identity.externalId, roles: identity.roles },
          'signed in with OpenID Connect',
        );
        return reply.redirect(redirect, 302);
      } catch (err) {
        if (!(err instanceof TrainwatchError)) throw err;
        req.log.info(
          { provider: req.params.provider, reason: err.message },
          'OpenID Connect sign-in refused',
        );
        opts.onRefused?.({
          provider: req.params.provider,
          reason: err.message,
          status: err.status,
          ip: req.ip,
        });
        if (!(req.headers.accept ?? '').includes('text/html')) throw err;
        return reply
          .code(err.status)
          .type('text/html; charset=utf-8')
          .send(
            `<!doctype html><html lang="en"><meta charset="utf-8"><title>Sign-in failed · trainwatch</title>` +
              `<h1>Sign-in failed</h1><p>${escapeHtml(err.message)}</p><p><a href="/login">Back to sign in</a></p></html>`,
          );
      }
    },
  );
}
