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
export {
  mapClaimsToRoles,
  OIDC_ROUTE_PREFIX,
  type OidcIdentity,
  type OidcProviderSummary,
  OidcProviders,
  type OidcSignIn,
  registerOidcRoutes,
  safeRedirectPath,
  type TenantRole,
  type TenantRoleGrant,
} from './oidc.js';
export { type OidcStoredUser, type OidcUserStore, upsertOidcUser } from './oidc-users.js';
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
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
  WHAT,
} from './token-auth.js';
