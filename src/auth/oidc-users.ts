/**
 * The user behind an OpenID Connect sign-in: found by its external id `<provider>|<sub>` (stable across
 * renames at the provider), created at its first sign-in, and its roles and operator flag replaced by what the
 * provider's claims map to at every sign-in, so that a group change at the provider takes effect at the next
 * sign-in. SSO users have no password: they cannot sign in with the password form.
 */
import { Errors, twError } from '../model/errors.js';
import type { OidcIdentity, TenantRole, TenantRoleGrant } from './oidc.js';

/** The user as the store answers it (src/meta/access.ts `UserInfo`, the fields used here). */
export interface OidcStoredUser {
  readonly id: string;
  readonly name: string;
  readonly disabled: boolean;
  readonly operator: boolean;
  readonly roles: readonly TenantRoleGrant[];
  readonly externalId: string | null;
}

/** What this needs of the user store: the methods of src/meta/access.ts `AccessStore` it calls. */
export interface OidcUserStore<U extends OidcStoredUser = OidcStoredUser> {
  userByExternalId(externalId: string): Promise<U | undefined>;
  userByName(name: string): Promise<U | undefined>;
  createUser(opts: {
    name: string;
    externalId?: string;
    operator?: boolean;
    roles?: readonly { tenant: string; role: TenantRole }[];
  }): Promise<U>;
  setRole(userId: string, tenant: string, role: TenantRole): Promise<void>;
  removeRole(userId: string, tenant: string): Promise<void>;
  setOperator(userId: string, operator: boolean): Promise<void>;
  user(id: string): Promise<U | undefined>;
}

const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** A user name from what the provider calls the user, in the store's alphabet. */
function nameCandidate(raw: string): string {
  const cleaned = raw
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._@-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 100);
  return cleaned.length > 0 ? cleaned : 'user';
}

/**
 * A free user name for a new SSO user: its name at the provider, else `<name>@<provider>`, else with a
 * numeric suffix. A local user's name is never taken over (the external id, not the name, is the identity).
 */
async function freeName(store: OidcUserStore<OidcStoredUser>, identity: OidcIdentity): Promise<string> {
  const base = nameCandidate(identity.name);
  const candidates = [base, `${base}@${identity.provider}`];
  for (let i = 2; i < 100; i++) candidates.push(`${base}@${identity.provider}-${i}`);
  for (const c of candidates) if (USERNAME_RE.test(c) && !(await store.userByName(c))) return c;
  throw twError(Errors.conflict, `no free user name for ${identity.externalId}`);
}

/**
 * Creates or updates the user of `identity` with exactly its roles and operator flag (the session that
 * follows notes the sign-in time).
 * A disabled user is refused with 403 (an admin disabled it here; the provider cannot re-enable it).
 */
export async function upsertOidcUser<U extends OidcStoredUser>(
  store: OidcUserStore<U>,
  identity: OidcIdentity,
): Promise<U> {
  let user = await store.userByExternalId(identity.externalId);
  if (!user) {
    user = await store.createUser({
      name: await freeName(store, identity),
      externalId: identity.externalId,
      operator: identity.operator,
      roles: identity.roles,
    });
  } else {
    if (user.disabled)
      throw twError(
        Errors.forbidden,
        `user ${user.name} is disabled in trainwatch; ask an admin to enable it`,
      );
    const wanted = new Map(identity.roles.map((r) => [r.tenant, r.role]));
    for (const r of user.roles) if (!wanted.has(r.tenant)) await store.removeRole(user.id, r.tenant);
    for (const [tenant, role] of wanted)
      if (user.roles.find((r) => r.tenant === tenant)?.role !== role)
        await store.setRole(user.id, tenant, role);
    if (user.operator !== identity.operator) await store.setOperator(user.id, identity.operator);
    user = (await store.user(user.id))!;
  }
  return user;
}
