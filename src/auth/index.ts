export {
  AnonymousAuthenticator,
  type Authenticator,
  credentialsOf,
  type PeerCertificate,
  type Principal,
  type RequestCredentials,
  type Scope,
  splitSubjectAltNames,
} from './auth.js';
export { MtlsAuthenticator, type MtlsOptions, tenantOfCertificate } from './mtls.js';
export {
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
} from './token-auth.js';
