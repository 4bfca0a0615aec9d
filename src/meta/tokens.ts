/**
 * API tokens in the metadata store: who may write (`ingest`), read (`read`) or manage (`admin`) which
 * tenant's data. The tenant of every request comes from its token, never from the payload.
 *
 * A token reads `twk_<id>_<secret>`: `id` (16 hex digits) is the row's primary key and is safe to show and
 * log; `secret` (32 random bytes, base64url) is shown once at creation and stored only as its SHA-256.
 * A slow password hash (bcrypt, argon2) protects low-entropy passwords against dictionary attacks; a
 * 256-bit random secret has no dictionary, so one SHA-256 is as strong and keeps per-request checks at
 * microseconds (the same choice as GitHub's and Stripe's API keys).
 *
 * Verification reads SQLite on every call (a primary-key lookup, a few microseconds), so a token created or
 * revoked by `trainwatch token` in another process is honoured by a running server at once.
 *
 * A token may expire (`expires_at_ms`) and carry its own rate limit (`rate_limit_per_second`, enforced by the
 * authenticator per process). `last_used_at_ms` is noted in memory and written in batches (`flushLastUsed`,
 * on a timer and at close), at most once a minute per token: no write on the request path.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, MetaStore, Migration } from './meta-store.js';

export const TOKEN_SCOPES = ['ingest', 'read', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/**
 * Kept duplicate: twin of `PG_MIGRATIONS` 200–201 (postgres/migrations.ts). The DDL differs in its types and
 * a released migration is never edited, so each dialect keeps its own text.
 */
export const TOKEN_MIGRATIONS: readonly Migration[] = [
  {
    version: 200,
    description: 'auth: API tokens (hashed)',
    sql: `CREATE TABLE auth_tokens (
      id TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      scope TEXT NOT NULL CHECK (scope IN ('ingest', 'read', 'admin')),
      name TEXT NOT NULL DEFAULT '',
      secret_sha256 BLOB NOT NULL,
      created_at_ms INTEGER NOT NULL,
      revoked_at_ms INTEGER,
      last_used_at_ms INTEGER
    );
    CREATE INDEX auth_tokens_by_tenant ON auth_tokens (tenant, created_at_ms);`,
  },
  {
    version: 201,
    description: 'auth: token expiry and per-token rate limit',
    sql: `ALTER TABLE auth_tokens ADD COLUMN expires_at_ms INTEGER;
      ALTER TABLE auth_tokens ADD COLUMN rate_limit_per_second REAL;`,
  },
];

/** Tenant names as the configuration accepts them (also the `tenant` label's value). */
export const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const TOKEN_RE = /^twk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const MAX_NAME_LENGTH = 200;
/** `last_used_at_ms` is written at most this often per token, so verifying costs no write per request. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

export interface TokenInfo {
  readonly id: string;
  readonly tenant: string;
  readonly scope: TokenScope;
  readonly name: string;
  readonly createdAtMs: number;
  readonly revokedAtMs: number | null;
  readonly lastUsedAtMs: number | null;
  /** After this time the token is refused (`expired`); null: it does not expire. */
  readonly expiresAtMs: number | null;
  /** Requests per second this token may make (per process; beyond it 429); null: no limit of its own. */
  readonly rateLimitPerSecond: number | null;
}

/** What a new token is asked for. */
export interface NewToken {
  readonly tenant: string;
  readonly scope: TokenScope;
  readonly name?: string;
  readonly expiresAtMs?: number | null;
  readonly rateLimitPerSecond?: number | null;
}

export type TokenCheck =
  | { readonly ok: true; readonly token: TokenInfo }
  | {
      readonly ok: false;
      readonly reason: 'malformed' | 'unknown' | 'revoked' | 'expired';
      readonly id?: string;
    };

/** A row of `auth_tokens`, as both stores read it (BLOB/BYTEA arrive as Buffers). */
export interface TokenRow {
  id: string;
  tenant: string;
  scope: TokenScope;
  name: string;
  secret_sha256: Buffer;
  created_at_ms: number;
  revoked_at_ms: number | null;
  last_used_at_ms: number | null;
  expires_at_ms: number | null;
  rate_limit_per_second: number | null;
}

/**
 * A token's row as callers see it (no secret); shared by the SQLite and PostgreSQL stores. Same shape as other
 * row mappings (alerting's `notificationFromRow`), different columns.
 */
export function tokenFromRow(row: TokenRow): TokenInfo {
  return {
    id: row.id,
    tenant: row.tenant,
    scope: row.scope,
    name: row.name,
    createdAtMs: row.created_at_ms,
    revokedAtMs: row.revoked_at_ms,
    lastUsedAtMs: row.last_used_at_ms,
    expiresAtMs: row.expires_at_ms ?? null,
    rateLimitPerSecond: row.rate_limit_per_second ?? null,
  };
}

/** What is stored of a token's secret. Shared by the SQLite and PostgreSQL stores. */
export function hashTokenSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Whether `secret` is the one whose hash is stored; constant-time in the secret. */
export function secretMatches(storedSha256: Uint8Array, secret: string): boolean {
  const presented = hashTokenSecret(secret);
  return storedSha256.length === presented.length && timingSafeEqual(storedSha256, presented);
}

/** Splits a presented `twk_<id>_<secret>` token; undefined when it is not of that form. */
export function parseToken(presented: string): { id: string; secret: string } | undefined {
  const m = TOKEN_RE.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Checks what a new token is asked for, throwing an error that names the bad field; returns its name. */
export function validateNewToken(opts: NewToken): string {
  if (!TENANT_RE.test(opts.tenant)) {
    throw new Error(
      `tenant ${JSON.stringify(opts.tenant)} is invalid: use 1-63 lowercase letters, digits, _ and -, starting with a letter or digit`,
    );
  }
  if (!TOKEN_SCOPES.includes(opts.scope))
    throw new Error(`scope ${JSON.stringify(opts.scope)} is invalid: use one of ${TOKEN_SCOPES.join(', ')}`);
  const name = opts.name ?? '';
  if (name.length > MAX_NAME_LENGTH) throw new Error(`name is longer than ${MAX_NAME_LENGTH} characters`);
  const rate = opts.rateLimitPerSecond;
  if (rate !== undefined && rate !== null && !(Number.isFinite(rate) && rate > 0 && rate <= 1e6))
    throw new Error(`rateLimitPerSecond ${rate} is invalid: use a number above 0 and at most 1000000`);
  const expires = opts.expiresAtMs;
  if (expires !== undefined && expires !== null && !Number.isFinite(expires))
    throw new Error('expiresAtMs must be a time in milliseconds');
  return name;
}

/** A fresh token: its id, its secret and the string shown to the user once. */
export function generateToken(): { id: string; secret: string; token: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `twk_${id}_${secret}` };
}

/** The columns a new token's row is written with, in the order of `newTokenRow`'s values. */
export const TOKEN_INSERT_COLUMNS =
  'id, tenant, scope, name, secret_sha256, created_at_ms, expires_at_ms, rate_limit_per_second';

/**
 * A new token, checked (an error names the bad field): the string shown to the user once, its id, and its
 * row's values in `TOKEN_INSERT_COLUMNS` order. Shared by both stores; only the INSERT's placeholders differ.
 */
export function newTokenRow(opts: NewToken, nowMs: number): { id: string; token: string; values: unknown[] } {
  const name = validateNewToken(opts);
  const { id, secret, token } = generateToken();
  const values = [
    id,
    opts.tenant,
    opts.scope,
    name,
    hashTokenSecret(secret),
    nowMs,
    opts.expiresAtMs ?? null,
    opts.rateLimitPerSecond ?? null,
  ];
  return { id, token, values };
}

/**
 * The verdict on token `id` presented with `secret`, given what is stored of it: the rule every store applies
 * (`TokenStore`, `PgTokenRepository`, `PgTokenCache`), in this order. Constant-time in the secret; a wrong
 * secret reads as an unknown token.
 */
export function checkStoredToken(
  id: string,
  secret: string,
  storedSha256: Uint8Array,
  info: TokenInfo,
  nowMs: number,
): TokenCheck {
  if (!secretMatches(storedSha256, secret)) return { ok: false, reason: 'unknown', id };
  if (info.revokedAtMs !== null) return { ok: false, reason: 'revoked', id };
  if (info.expiresAtMs !== null && nowMs >= info.expiresAtMs) return { ok: false, reason: 'expired', id };
  return { ok: true, token: info };
}

/**
 * Where the authenticator checks a presented token, synchronously (it runs on every request, on the event
 * loop that acknowledges writes): the SQLite `TokenStore` (a primary-key read of a local file), or, with
 * `meta.kind: postgres`, `PgTokenCache` (an in-memory copy of the token hashes, refreshed in the background).
 */
export interface TokenSource {
  verify(presented: string, nowMs?: number): TokenCheck;
}

/**
 * Managing tokens (`trainwatch token create|list|revoke`), asynchronous so that either store fits:
 * `PgTokenRepository` as it is, the SQLite `TokenStore` through `tokenAdminOf`.
 */
export interface TokenAdmin {
  create(opts: NewToken): Promise<{ token: string; info: TokenInfo }>;
  list(filter?: { tenant?: string; includeRevoked?: boolean }): Promise<TokenInfo[]>;
  revoke(id: string): Promise<TokenInfo | undefined>;
}

export function tokenAdminOf(store: TokenStore): TokenAdmin {
  return {
    create: async (opts) => store.create(opts),
    list: async (filter) => store.list(filter),
    revoke: async (id) => store.revoke(id),
  };
}

export class TokenStore implements TokenSource {
  private readonly db: Db;
  private readonly byId;
  /** The last use noted per token (pending or written), to note at most once per interval. */
  private readonly lastUsedNoted = new Map<string, number>();
  /** Uses not yet written, by token id. */
  private readonly lastUsedPending = new Map<string, number>();

  constructor(meta: MetaStore) {
    meta.migrate(TOKEN_MIGRATIONS);
    this.db = meta.db;
    this.byId = this.db.prepare<[string], TokenRow>('SELECT * FROM auth_tokens WHERE id = ?');
  }

  /** Creates a token and returns it in full: the only time its secret is available. */
  create(
    opts: NewToken,
    nowMs = Date.now(),
  ): {
    token: string;
    info: TokenInfo;
  } {
    const { id, token, values } = newTokenRow(opts, nowMs);
    this.db
      .prepare(`INSERT INTO auth_tokens (${TOKEN_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(...values);
    return { token, info: tokenFromRow(this.byId.get(id)!) };
  }

  list(filter: { tenant?: string; includeRevoked?: boolean } = {}): TokenInfo[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.tenant !== undefined) {
      where.push('tenant = ?');
      args.push(filter.tenant);
    }
    if (!filter.includeRevoked) where.push('revoked_at_ms IS NULL');
    const sql = `SELECT * FROM auth_tokens ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY tenant, created_at_ms, id`;
    return (this.db.prepare(sql).all(...args) as TokenRow[]).map(tokenFromRow);
  }

  get(id: string): TokenInfo | undefined {
    const row = this.byId.get(id);
    return row ? tokenFromRow(row) : undefined;
  }

  /** Revokes a token; revoking it again keeps the first revocation time. Undefined when there is no such id. */
  revoke(id: string, nowMs = Date.now()): TokenInfo | undefined {
    this.db
      .prepare('UPDATE auth_tokens SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL')
      .run(nowMs, id);
    return this.get(id);
  }

  /**
   * Checks a presented token. Constant-time in the secret; says why a token is refused. Kept duplicate of
   * `PgTokenRepository.verify` (postgres/tokens.ts) in shape: this one reads synchronously and only notes the
   * last use for a batched write; that one awaits its read and writes the use at once.
   */
  verify(presented: string, nowMs = Date.now()): TokenCheck {
    const parsed = parseToken(presented);
    if (!parsed) return { ok: false, reason: 'malformed' };
    const { id } = parsed;
    const row = this.byId.get(id);
    if (!row) return { ok: false, reason: 'unknown', id };
    const check = checkStoredToken(id, parsed.secret, row.secret_sha256, tokenFromRow(row), nowMs);
    if (!check.ok) return check;
    const noted = this.lastUsedNoted.get(id) ?? row.last_used_at_ms;
    if (noted === null || nowMs - noted >= LAST_USED_WRITE_INTERVAL_MS) {
      this.lastUsedNoted.set(id, nowMs);
      this.lastUsedPending.set(id, nowMs);
    }
    return check;
  }

  /** Writes the noted `last_used_at_ms` values in one transaction (never moving one back). */
  flushLastUsed(): void {
    if (this.lastUsedPending.size === 0) return;
    const pending = [...this.lastUsedPending];
    this.lastUsedPending.clear();
    const update = this.db.prepare(
      'UPDATE auth_tokens SET last_used_at_ms = ? WHERE id = ? AND (last_used_at_ms IS NULL OR last_used_at_ms < ?)',
    );
    this.db.transaction(() => {
      for (const [id, ms] of pending) update.run(ms, id, ms);
    })();
  }
}
