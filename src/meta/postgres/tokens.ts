/**
 * API tokens on PostgreSQL: the async counterpart of `TokenStore`, with the same token format, validation
 * and hashing (imported from `../tokens.ts`, so both backends accept exactly the same tokens).
 *
 * Verification reads the row on every call (a primary-key lookup), so a token revoked through any process
 * is refused by every process at once. `last_used_at_ms` is written at most once a minute per token and
 * process; a failure to write it is reported but does not refuse the token (it is bookkeeping).
 */
import {
  checkStoredToken,
  LAST_USED_WRITE_INTERVAL_MS,
  type NewToken,
  newTokenRow,
  parseToken,
  TOKEN_INSERT_COLUMNS,
  type TokenCheck,
  type TokenInfo,
  type TokenRow,
  tokenFromRow,
} from '../tokens.js';
import type { PgMeta } from './pg-meta.js';

export class PgTokenRepository {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly db: PgMeta,
    /** Failures of the `last_used_at_ms` writes (they never fail a verification). */
    private readonly onBackgroundError: (err: Error) => void = () => {},
  ) {}

  /** Creates a token and returns it in full: the only time its secret is available. */
  async create(opts: NewToken, nowMs = Date.now()): Promise<{ token: string; info: TokenInfo }> {
    const { token, values } = newTokenRow(opts, nowMs);
    const r = await this.db.query<TokenRow>(
      `INSERT INTO auth_tokens (${TOKEN_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      values,
    );
    return { token, info: tokenFromRow(r.rows[0]!) };
  }

  async list(filter: { tenant?: string; includeRevoked?: boolean } = {}): Promise<TokenInfo[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.tenant !== undefined) {
      params.push(filter.tenant);
      where.push(`tenant = $${params.length}`);
    }
    if (!filter.includeRevoked) where.push('revoked_at_ms IS NULL');
    const r = await this.db.query<TokenRow>(
      `SELECT * FROM auth_tokens ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY tenant, created_at_ms, id`,
      params,
    );
    return r.rows.map(tokenFromRow);
  }

  async get(id: string): Promise<TokenInfo | undefined> {
    const row = await this.row(id);
    return row ? tokenFromRow(row) : undefined;
  }

  /** Revokes a token; revoking it again keeps the first revocation time. Undefined when there is no such id. */
  async revoke(id: string, nowMs = Date.now()): Promise<TokenInfo | undefined> {
    await this.db.query('UPDATE auth_tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL', [
      nowMs,
      id,
    ]);
    return this.get(id);
  }

  /**
   * Checks a presented token. Constant-time in the secret; says why a token is refused. Kept duplicate of
   * `TokenStore.verify` (../tokens.ts) in shape: the verdict is shared (`checkStoredToken`); the read and the
   * last-use write are this dialect's.
   */
  async verify(presented: string, nowMs = Date.now(), signal?: AbortSignal): Promise<TokenCheck> {
    const parsed = parseToken(presented);
    if (!parsed) return { ok: false, reason: 'malformed' };
    const { id } = parsed;
    const row = await this.row(id, signal);
    if (!row) return { ok: false, reason: 'unknown', id };
    const check = checkStoredToken(id, parsed.secret, row.secret_sha256, tokenFromRow(row), nowMs);
    if (!check.ok) return check;
    const written = this.lastUsedWritten.get(id) ?? row.last_used_at_ms;
    if (written === null || nowMs - written >= LAST_USED_WRITE_INTERVAL_MS) {
      this.lastUsedWritten.set(id, nowMs);
      // GREATEST: several processes may write it; the newest use wins whatever the order of the writes.
      await this.db
        .query(
          'UPDATE auth_tokens SET last_used_at_ms = GREATEST(COALESCE(last_used_at_ms, 0), $1) WHERE id = $2',
          [nowMs, id],
        )
        .catch((err: Error) => this.onBackgroundError(err));
    }
    return check;
  }

  private async row(id: string, signal?: AbortSignal): Promise<TokenRow | undefined> {
    const r = await this.db.query<TokenRow>('SELECT * FROM auth_tokens WHERE id = $1', [id], signal);
    return r.rows[0];
  }
}
