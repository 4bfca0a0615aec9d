export {
  AnonymousAuthenticator,
  type Authenticator,
  credentialsOf,
  type Principal,
  type RequestCredentials,
  type Scope,
} from './auth.js';
export { MtlsAuthenticator, type MtlsOptions, tenantOfCertificate } from './mtls.js';
export { type PeerCertificate, splitSubjectAltNames } from './peer-certificate.js';
export {
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
} from './token-auth.js';
