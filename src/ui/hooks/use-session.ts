import { createContext, useContext } from 'react';
import type { Me } from '../lib/session';

/**
 * The signed-in caller, for every page: the app shell asks `/auth/me` once at start and after a sign-in,
 * a tenant switch or a sign-out. `me` null: nobody is signed in (or the server has no sessions).
 */
export interface Session {
  readonly me: Me | null;
  /** Asks `/auth/me` again (after a tenant switch, or a change to one's own roles). */
  refresh(): Promise<void>;
  /** Signs out: the cookie is cleared and the login page opens. */
  signOut(): Promise<void>;
}

export const SessionContext = createContext<Session>({
  me: null,
  refresh: async () => {},
  signOut: async () => {},
});

export function useSession(): Session {
  return useContext(SessionContext);
}
