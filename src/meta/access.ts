/**
 * Users, their roles per tenant, login sessions and the audit log, in the metadata store: SQLite (embedded)
 * or PostgreSQL (scaled out). One repository runs the same SQL on both through a `SqlRunner` (placeholders
 * `?`, numbered for PostgreSQL); the migrations differ only in types and carry the same version numbers.
 *
 * - Passwords are hashed with argon2id (`@node-rs/argon2`, its OWASP-level defaults) and never logged.
 *   OIDC users have no password and an `external_id` (`<provider>|<sub>`).
 * - A session id is 32 random bytes shown only in the `tw_session` cookie; the store keeps its SHA-256
 *   (hex), so a read of the database yields no usable session. Each session has its own CSRF token.
 * - Audit events are appended and pruned by age (`auth.audit_retention`).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import type { Db, Migration } from './meta-store.js';
import { TENANT_RE } from './tokens.js';

export const ROLES = ['viewer', 'editor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Usernames: what the CLI, the API and OIDC mapping accept. */
export const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
export const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;

const TABLES_SQL = (t: { big: string; bool: string; serial: string }) => `
  CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    external_id TEXT UNIQUE,
    operator ${t.bool} NOT NULL DEFAULT 0,
    disabled ${t.bool} NOT NULL DEFAULT 0,
    created_at_ms ${t.big} NOT NULL,
    last_login_at_ms ${t.big}
  );
  CREATE TABLE auth_user_roles (
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    PRIMARY KEY (user_id, tenant)
  );
  CREATE INDEX auth_user_roles_by_tenant ON auth_user_roles (tenant);
  CREATE TABLE auth_sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    tenant TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at_ms ${t.big} NOT NULL,
    last_seen_at_ms ${t.big} NOT NULL
  );
  CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);
  CREATE TABLE audit_log (
    id ${t.serial},
    time_ms ${t.big} NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL
  );
  CREATE INDEX audit_log_by_time ON audit_log (time_ms);
  CREATE INDEX audit_log_by_tenant ON audit_log (tenant, time_ms);`;

/** SQLite: users, roles per tenant, sessions, audit log (token expiry and rate are `TOKEN_MIGRATIONS` 201). */
export const ACCESS_MIGRATIONS: readonly Migration[] = [
  {
    version: 210,
    description: 'auth: users, roles per tenant, sessions, audit log',
    sql: TABLES_SQL({ big: 'INTEGER', bool: 'INTEGER', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT' }),
  },
];

/** The same for PostgreSQL (part of `PG_MIGRATIONS`). */
export const ACCESS_PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 210,
    description: 'auth: users, roles per tenant, sessions, audit log',
    sql: TABLES_SQL({
      big: 'BIGINT',
      bool: 'INTEGER',
      serial: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
    }),
  },
];

/** Runs SQL with `?` placeholders on either backend. */
export interface SqlRunner {
  all<R>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  run(sql: string, params?: readonly unknown[]): Promise<void>;
}

export function sqliteRunner(db: Db): SqlRunner {
  return {
    all: async <R>(sql: string, params: readonly unknown[] = []) => db.prepare(sql).all(...params) as R[],
    run: async (sql, params = []) => {
      db.prepare(sql).run(...params);
    },
  };
}

export interface UserInfo {
  readonly id: string;
  readonly name: string;
  readonly disabled: boolean;
  readonly operator: boolean;
  /** Roles by tenant, sorted by tenant. */
  readonly roles: readonly { readonly tenant: string; readonly role: Role }[];
  readonly createdAtMs: number;
  readonly lastLoginAtMs: number | null;
  readonly hasPassword: boolean;
  readonly externalId: string | null;
}

export interface SessionRecord {
  readonly idSha256: string;
  readonly userId: string;
  readonly tenant: string;
  readonly csrfToken: string;
  readonly createdAtMs: number;
  readonly lastSeenAtMs: number;
}

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  readonly timeMs: number;
  /** The user name, `token:<id>`, `anonymous`, or the name a failed login gave. */
  readonly actor: string;
  readonly via: string;
  readonly tenant: string;
  readonly action: string;
  readonly target: string;
  readonly ip: string;
  readonly outcome: AuditOutcome;
}

export interface AuditFilter {
  /** Only this tenant's events (a tenant admin); undefined: every tenant (an operator). */
  readonly tenant?: string;
  readonly sinceMs?: number;
  readonly untilMs?: number;
  readonly actor?: string;
  readonly action?: string;
  readonly limit: number;
}

interface UserRow {
  id: string;
  name: string;
  password_hash: string | null;
  external_id: string | null;
  operator: number;
  disabled: number;
  created_at_ms: number;
  last_login_at_ms: number | null;
}

interface SessionRow {
  id_sha256: string;
  user_id: string;
  tenant: string;
  csrf_token: string;
  created_at_ms: number;
  last_seen_at_ms: number;
}

interface AuditRow {
  time_ms: number;
  actor: string;
  via: string;
  tenant: string;
  action: string;
  target: string;
  ip: string;
  outcome: AuditOutcome;
}

/** The hash a session id is stored under. */
export function sessionIdHash(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function validateUsername(name: unknown): string {
  if (typeof name !== 'string' || !USERNAME_RE.test(name))
    throw new Error(
      `user name ${JSON.stringify(name)} is invalid: use 1-128 letters, digits, ., _, @ and -, starting with a letter or digit`,
    );
  return name;
}

export function validatePassword(password: unknown): string {
  if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH)
    throw new Error(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH)
    throw new Error(`password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

export function validateRole(role: unknown): Role {
  if (!ROLES.includes(role as Role))
    throw new Error(`role ${JSON.stringify(role)} is invalid: use one of ${ROLES.join(', ')}`);
  return role as Role;
}

export function validateTenant(tenant: unknown): string {
  if (typeof tenant !== 'string' || !TENANT_RE.test(tenant))
    throw new Error(
      `tenant ${JSON.stringify(tenant)} is invalid: use 1-63 lowercase letters, digits, _ and -, starting with a letter or digit`,
    );
  return tenant;
}

/** A random password for the first admin (and `user create` without one): 24 base64url characters. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Verified against when a login names no known user, so that an unknown name costs the same argon2 time as a
 * wrong password (no user enumeration by timing).
 */
let dummyHash: Promise<string> | undefined;

export class AccessStore {
  constructor(private readonly sql: SqlRunner) {}

  // ---- users ----------------------------------------------------------------------------------------------

  async countUsers(): Promise<number> {
    const [row] = await this.sql.all<{ n: number | string }>('SELECT count(*) AS n FROM auth_users');
    return Number(row?.n ?? 0);
  }

  /** Creates a user; throws (naming the field) on invalid input or a taken name. */
  async createUser(
    opts: {
      name: string;
      password?: string;
      externalId?: string;
      operator?: boolean;
      roles?: readonly { tenant: string; role: Role }[];
    },
    nowMs = Date.now(),
  ): Promise<UserInfo> {
    const name = validateUsername(opts.name);
    const passwordHash =
      opts.password === undefined ? null : await argon2Hash(validatePassword(opts.password));
    for (const r of opts.roles ?? []) {
      validateTenant(r.tenant);
      validateRole(r.role);
    }
    if (await this.userRow('name', name)) throw new Error(`user ${name} already exists`);
    const id = randomUUID();
    await this.sql.run(
      'INSERT INTO auth_users (id, name, password_hash, external_id, operator, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)',
      [id, name, passwordHash, opts.externalId ?? null, opts.operator ? 1 : 0, nowMs],
    );
    for (const r of opts.roles ?? []) await this.setRole(id, r.tenant, r.role);
    return (await this.user(id))!;
  }

  async user(id: string): Promise<UserInfo | undefined> {
    const row = await this.userRow('id', id);
    return row ? this.infoOf(row) : undefined;
  }

  async userByName(name: string): Promise<UserInfo | undefined> {
    const row = await this.userRow('name', name);
    return row ? this.infoOf(row) : undefined;
  }

  async userByExternalId(externalId: string): Promise<UserInfo | undefined> {
    const row = await this.userRow('external_id', externalId);
    return row ? this.infoOf(row) : undefined;
  }

  /** Every user, or those with a role in `tenant`, by name. */
  async listUsers(filter: { tenant?: string } = {}): Promise<UserInfo[]> {
    const rows =
      filter.tenant === undefined
        ? await this.sql.all<UserRow>('SELECT * FROM auth_users ORDER BY name')
        : await this.sql.all<UserRow>(
            'SELECT u.* FROM auth_users u JOIN auth_user_roles r ON r.user_id = u.id WHERE r.tenant = ? ORDER BY u.name',
            [filter.tenant],
          );
    return Promise.all(rows.map((r) => this.infoOf(r)));
  }

  async setRole(userId: string, tenant: string, role: Role): Promise<void> {
    await this.sql.run(
      `INSERT INTO auth_user_roles (user_id, tenant, role) VALUES (?, ?, ?)
       ON CONFLICT (user_id, tenant) DO UPDATE SET role = excluded.role`,
      [userId, validateTenant(tenant), validateRole(role)],
    );
  }

  /** Removes a user's role in a tenant, and the user's sessions in that tenant. */
  async removeRole(userId: string, tenant: string): Promise<void> {
    await this.sql.run('DELETE FROM auth_user_roles WHERE user_id = ? AND tenant = ?', [userId, tenant]);
    await this.sql.run('DELETE FROM auth_sessions WHERE user_id = ? AND tenant = ?', [userId, tenant]);
  }

  /** Sets a new password and ends the user's sessions (they were opened with the old one). */
  async setPassword(userId: string, password: string): Promise<void> {
    const h = await argon2Hash(validatePassword(password));
    await this.sql.run('UPDATE auth_users SET password_hash = ? WHERE id = ?', [h, userId]);
    await this.deleteUserSessions(userId);
  }

  /** Disables (ending its sessions) or re-enables a user. */
  async setDisabled(userId: string, disabled: boolean): Promise<void> {
    await this.sql.run('UPDATE auth_users SET disabled = ? WHERE id = ?', [disabled ? 1 : 0, userId]);
    if (disabled) await this.deleteUserSessions(userId);
  }

  async setOperator(userId: string, operator: boolean): Promise<void> {
    await this.sql.run('UPDATE auth_users SET operator = ? WHERE id = ?', [operator ? 1 : 0, userId]);
  }

  /**
   * The user a name and password identify: undefined for an unknown name, a wrong password, a user without a
   * password (OIDC) — the same answer and about the same time for each. A disabled user is returned (the
   * caller refuses it, after the password proved who asks).
   */
  async checkPassword(name: string, password: string): Promise<UserInfo | undefined> {
    const row = USERNAME_RE.test(name) ? await this.userRow('name', name) : undefined;
    if (!row || row.password_hash === null || password.length > MAX_PASSWORD_LENGTH) {
      dummyHash ??= argon2Hash(generatePassword());
      await argon2Verify(await dummyHash, password.slice(0, MAX_PASSWORD_LENGTH)).catch(() => false);
      return undefined;
    }
    const ok = await argon2Verify(row.password_hash, password).catch(() => false);
    return ok ? this.infoOf(row) : undefined;
  }

  async noteLogin(userId: string, nowMs = Date.now()): Promise<void> {
    await this.sql.run('UPDATE auth_users SET last_login_at_ms = ? WHERE id = ?', [nowMs, userId]);
  }

  private async userRow(column: 'id' | 'name' | 'external_id', value: string): Promise<UserRow | undefined> {
    const [row] = await this.sql.all<UserRow>(`SELECT * FROM auth_users WHERE ${column} = ?`, [value]);
    return row;
  }

  private async infoOf(row: UserRow): Promise<UserInfo> {
    const roles = await this.sql.all<{ tenant: string; role: Role }>(
      'SELECT tenant, role FROM auth_user_roles WHERE user_id = ? ORDER BY tenant',
      [row.id],
    );
    return {
      id: row.id,
      name: row.name,
      disabled: Number(row.disabled) === 1,
      operator: Number(row.operator) === 1,
      roles: roles.map((r) => ({ tenant: r.tenant, role: r.role })),
      createdAtMs: Number(row.created_at_ms),
      lastLoginAtMs: row.last_login_at_ms === null ? null : Number(row.last_login_at_ms),
      hasPassword: row.password_hash !== null,
      externalId: row.external_id,
    };
  }

  // ---- sessions -------------------------------------------------------------------------------------------

  /** Opens a session; returns its id (for the cookie only) and its record. */
  async createSession(
    userId: string,
    tenant: string,
    nowMs = Date.now(),
  ): Promise<{ id: string; session: SessionRecord }> {
    const id = randomBytes(32).toString('base64url');
    const session: SessionRecord = {
      idSha256: sessionIdHash(id),
      userId,
      tenant,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAtMs: nowMs,
      lastSeenAtMs: nowMs,
    };
    await this.sql.run(
      'INSERT INTO auth_sessions (id_sha256, user_id, tenant, csrf_token, created_at_ms, last_seen_at_ms) VALUES (?, ?, ?, ?, ?, ?)',
      [session.idSha256, userId, tenant, session.csrfToken, nowMs, nowMs],
    );
    return { id, session };
  }

  async session(idSha256: string): Promise<SessionRecord | undefined> {
    const [row] = await this.sql.all<SessionRow>('SELECT * FROM auth_sessions WHERE id_sha256 = ?', [
      idSha256,
    ]);
    return row
      ? {
          idSha256: row.id_sha256,
          userId: row.user_id,
          tenant: row.tenant,
          csrfToken: row.csrf_token,
          createdAtMs: Number(row.created_at_ms),
          lastSeenAtMs: Number(row.last_seen_at_ms),
        }
      : undefined;
  }

  async setSessionTenant(idSha256: string, tenant: string): Promise<void> {
    await this.sql.run('UPDATE auth_sessions SET tenant = ? WHERE id_sha256 = ?', [tenant, idSha256]);
  }

  /** Writes sessions' last-seen times in one statement each (batched by the caller), never moving one back. */
  async touchSessions(seen: ReadonlyMap<string, number>): Promise<void> {
    for (const [idSha256, ms] of seen)
      await this.sql.run(
        'UPDATE auth_sessions SET last_seen_at_ms = ? WHERE id_sha256 = ? AND last_seen_at_ms < ?',
        [ms, idSha256, ms],
      );
  }

  async deleteSession(idSha256: string): Promise<void> {
    await this.sql.run('DELETE FROM auth_sessions WHERE id_sha256 = ?', [idSha256]);
  }

  async deleteUserSessions(userId: string): Promise<void> {
    await this.sql.run('DELETE FROM auth_sessions WHERE user_id = ?', [userId]);
  }

  /** Deletes sessions idle longer than `idleMs` or older than `maxAgeMs`. */
  async pruneSessions(nowMs: number, idleMs: number, maxAgeMs: number): Promise<void> {
    await this.sql.run('DELETE FROM auth_sessions WHERE last_seen_at_ms < ? OR created_at_ms < ?', [
      nowMs - idleMs,
      nowMs - maxAgeMs,
    ]);
  }

  // ---- audit ----------------------------------------------------------------------------------------------

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    for (const e of events)
      await this.sql.run(
        'INSERT INTO audit_log (time_ms, actor, via, tenant, action, target, ip, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        [e.timeMs, e.actor, e.via, e.tenant, e.action, e.target, e.ip, e.outcome],
      );
  }

  /** Newest first. */
  async audit(filter: AuditFilter): Promise<AuditEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      where.push(clause);
      params.push(value);
    };
    if (filter.tenant !== undefined) add('tenant = ?', filter.tenant);
    if (filter.sinceMs !== undefined) add('time_ms >= ?', filter.sinceMs);
    if (filter.untilMs !== undefined) add('time_ms <= ?', filter.untilMs);
    if (filter.actor !== undefined) add('actor = ?', filter.actor);
    if (filter.action !== undefined) add('action = ?', filter.action);
    params.push(filter.limit);
    const rows = await this.sql.all<AuditRow>(
      `SELECT time_ms, actor, via, tenant, action, target, ip, outcome FROM audit_log
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time_ms DESC, id DESC LIMIT ?`,
      params,
    );
    return rows.map((r) => ({
      timeMs: Number(r.time_ms),
      actor: r.actor,
      via: r.via,
      tenant: r.tenant,
      action: r.action,
      target: r.target,
      ip: r.ip,
      outcome: r.outcome,
    }));
  }

  /** Deletes audit events older than `beforeMs` (`auth.audit_retention`). */
  async pruneAudit(beforeMs: number): Promise<void> {
    await this.sql.run('DELETE FROM audit_log WHERE time_ms < ?', [beforeMs]);
  }
}
