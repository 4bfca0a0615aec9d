/**
 * The first admin: when user login is on (`auth.users: true`) and the store has no user yet, trainwatch
 * creates user `admin`, a cluster operator and admin of the first tenant, so a fresh install can be signed
 * into. Its password is TRAINWATCH_ADMIN_PASSWORD when set, else a random one written once to standard
 * output (not to the structured log, which is often shipped elsewhere). Several processes starting at once
 * against one PostgreSQL store create it once: the user name is unique.
 */
import type { Logger } from 'pino';
import { type AccessStore, generatePassword, type UserInfo } from '../meta/index.js';
import type { AuditLog } from './audit.js';

export const FIRST_ADMIN_NAME = 'admin';

export async function ensureFirstAdmin(opts: {
  store: AccessStore;
  tenant: string;
  logger: Logger;
  audit?: AuditLog;
  /** TRAINWATCH_ADMIN_PASSWORD. */
  password?: string | undefined;
  /** Where a generated password is written (default: standard output). */
  print?: (line: string) => void;
}): Promise<UserInfo | undefined> {
  if ((await opts.store.countUsers()) > 0) return undefined;
  const given = opts.password !== undefined && opts.password !== '';
  const password = given ? opts.password! : generatePassword();
  let user: UserInfo;
  try {
    user = await opts.store.createUser({
      name: FIRST_ADMIN_NAME,
      password,
      operator: true,
      roles: [{ tenant: opts.tenant, role: 'admin' }],
    });
  } catch (err) {
    // Another process created it first.
    if (/already exists/.test((err as Error).message)) return undefined;
    throw new Error(`creating the first admin failed: ${(err as Error).message}`, { cause: err });
  }
  opts.audit?.record({
    actor: 'trainwatch',
    via: 'first start',
    tenant: opts.tenant,
    action: 'user.create',
    target: user.name,
    ip: '',
    outcome: 'success',
  });
  if (given) {
    opts.logger.warn(
      { user: user.name, tenant: opts.tenant },
      'created the first admin %s (operator; password from TRAINWATCH_ADMIN_PASSWORD)',
      user.name,
    );
  } else {
    (opts.print ?? ((line) => process.stdout.write(line)))(
      `\ntrainwatch: created the first admin. Sign in as "${user.name}" with password: ${password}\n` +
        '(shown only this once; change it with: trainwatch user passwd admin)\n\n',
    );
    opts.logger.warn(
      { user: user.name, tenant: opts.tenant },
      'created the first admin %s (operator); its password was printed to standard output once',
      user.name,
    );
  }
  return user;
}
