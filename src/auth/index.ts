export {
  AnonymousAuthenticator,
  type Authenticator,
  credentialsOf,
  type Principal,
  type RequestCredentials,
  type Scope,
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
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
} from './token-auth.js';
