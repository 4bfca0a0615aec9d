export {
  AnonymousAuthenticator,
  type Authenticator,
  credentialsOf,
  type Principal,
  type RequestCredentials,
  type Scope,
} from './auth.js';
export {
  type AnonymousPolicy,
  anonymousPolicyFor,
  isLoopbackHost,
  scopesOf,
  TokenAuthenticator,
  type TokenVerifier,
} from './token-auth.js';
