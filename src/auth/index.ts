export {
  AnonymousAuthenticator,
  type Authenticator,
  type Principal,
  type RequestCredentials,
  type Scope,
} from './auth.js';
