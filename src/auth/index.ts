export {
  AccessControl,
  type AccessControlOptions,
  NO_ANONYMOUS,
  roleOfScopes,
  SESSION_RECHECK_MS,
  SessionCache,
  type SessionTimes,
  scopesOfRole,
  userPrincipal,
} from './access-control.js';
export { AuditLog, actorOf, outcomeOf } from './audit.js';
export {
  AnonymousAuthenticator,
  type Authenticator,
  cookieValue,
  credentialsOf,
  type Principal,
  type RequestCredentials,
  type Scope,
  SESSION_COOKIE,
} from './auth.js';
export { ensureFirstAdmin, FIRST_ADMIN_NAME } from './first-admin.js';
export { LoginLimiter, type LoginLimits, TokenRateLimiter } from './limits.js';
export { MtlsAuthenticator, type MtlsOptions, tenantOfCertificate } from './mtls.js';
export {
  mapClaimsToRoles,
  OIDC_ROUTE_PREFIX,
  type OidcIdentity,
  type OidcProviderSummary,
  OidcProviders,
  type OidcRefusal,
  type OidcSignIn,
  registerOidcRoutes,
  safeRedirectPath,
  type TenantRole,
  type TenantRoleGrant,
} from './oidc.js';
export { type OidcStoredUser, type OidcUserStore, upsertOidcUser } from './oidc-users.js';
export { type PeerCertificate, splitSubjectAltNames } from './peer-certificate.js';
export {
  type AccessControlHandle,
  type AuditedRequest,
  accessControlOf,
  type DeclaredRoute,
  installAccessControl,
  maybeRequestPrincipal,
  PERMISSIONS,
  type Permission,
  type RequestAuthenticator,
  requestPrincipal,
  scopeOfPermission,
  setAuditTarget,
  setRequestPrincipal,
} from './permissions.js';
export {
  type AuthApiDeps,
  issueSession,
  type OidcProviderLink,
  registerAuthApi,
  sessionCookie,
} from './routes.js';
export {
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
  WHAT,
} from './token-auth.js';
