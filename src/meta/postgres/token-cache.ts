/**
 * Token verification for `meta.kind: postgres` without a database round trip per request: an in-memory copy
 * of the `auth_tokens` table (ids, tenants, scopes and SHA-256 hashes of the secrets — never a secret), so
 * `verify` stays synchronous and takes microseconds, as with SQLite.
 *
 * Freshness, for tokens created or revoked by another process (`trainwatch token`, another server):
 * - the whole table is re-read every `refreshIntervalMs` (default 5 s);
 * - a verify of an id the copy does not hold (a token created since the last refresh) starts a refresh at
 *   once, at most one per `missRefreshMinIntervalMs` (default 1 s), so unknown-token floods cost at most one
 *   query a second. That request itself is refused (`unknown`); the token is accepted once the refresh lands.
 * So a new token is accepted within min(refreshIntervalMs, missRefreshMinIntervalMs after its first use) plus
 * one query, and a revoked token is refused within refreshIntervalMs plus one query.
 * If PostgreSQL cannot be reached, the last copy keeps serving (availability of ingest over revocation
 * latency) and each failure goes to `onError`; `staleForMs` says for how long, for readiness checks.
 *
 * `last_used_at_ms`: noted in memory at most once per `LAST_USED_WRITE_INTERVAL_MS` per token and written
 * in one batched statement with each refresh (GREATEST, so concurrent processes keep the newest use).
 *
 * The table is read whole: tokens number in the thousands at most (one per team, service or agent pool).
 */
import {
  checkStoredToken,
  LAST_USED_WRITE_INTERVAL_MS,
  parseToken,
  type TokenCheck,
  type TokenInfo,
  type TokenRow,
  type TokenSource,
  tokenFromRow,
} from '../tokens.js';
import type { PgMeta } from './pg-meta.js';

export interface PgTokenCacheOptions {
  /** How often the whole table is re-read (default 5000 ms): the bound on revocation latency. */
  readonly refreshIntervalMs?: number;
  /** Least time between refreshes started by verifying an unknown id (default 1000 ms). */
  readonly missRefreshMinIntervalMs?: number;
  /** Failures of background refreshes and `last_used_at_ms` writes (they never fail a verification). */
  readonly onError?: (err: Error) => void;
  /** Clock for the refresh bookkeeping (tests). */
  readonly now?: () => number;
}

interface CachedToken {
  readonly info: TokenInfo;
  readonly secretSha256: Buffer;
}

export class PgTokenCache implements TokenSource {
  private tokens = new Map<string, CachedToken>();
  /** When the last successful refresh started (its query saw the table as of then). */
  private refreshedAtMs = Number.NEGATIVE_INFINITY;
  private missRefreshAtMs = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Uses to write, by token id: the newest use time not yet written. */
  private readonly lastUsedPending = new Map<string, number>();
  /** The last use time noted (pending or written) per token, to write at most once per interval. */
  private readonly lastUsedNoted = new Map<string, number>();
  private readonly refreshIntervalMs: number;
  private readonly missRefreshMinIntervalMs: number;
  private readonly onError: (err: Error) => void;
  private readonly now: () => number;

  private constructor(
    private readonly db: PgMeta,
    opts: PgTokenCacheOptions,
  ) {
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 5000;
    this.missRefreshMinIntervalMs = opts.missRefreshMinIntervalMs ?? 1000;
    if (!(this.refreshIntervalMs > 0) || !(this.missRefreshMinIntervalMs >= 0))
      throw new Error(
        `PgTokenCache: refreshIntervalMs must be > 0 and missRefreshMinIntervalMs >= 0 (got ${this.refreshIntervalMs}, ${this.missRefreshMinIntervalMs})`,
      );
    this.onError = opts.onError ?? (() => {});
    this.now = opts.now ?? Date.now;
  }

  /** Loads the table (failing if PostgreSQL cannot be read: a server must not start refusing every token). */
  static async open(db: PgMeta, opts: PgTokenCacheOptions = {}, signal?: AbortSignal): Promise<PgTokenCache> {
    const cache = new PgTokenCache(db, opts);
    await cache.load(signal);
    cache.timer = setInterval(() => {
      cache.refresh().catch(() => {}); // reported through onError
    }, cache.refreshIntervalMs);
    cache.timer.unref();
    return cache;
  }

  /** Checks a presented token against the in-memory copy. Constant-time in the secret. */
  verify(presented: string, nowMs = Date.now()): TokenCheck {
    const parsed = parseToken(presented);
    if (!parsed) return { ok: false, reason: 'malformed' };
    const { id } = parsed;
    const cached = this.tokens.get(id);
    if (!cached) {
      this.refreshOnMiss();
      return { ok: false, reason: 'unknown', id };
    }
    const check = checkStoredToken(id, parsed.secret, cached.secretSha256, cached.info, nowMs);
    if (!check.ok) return check;
    const noted = this.lastUsedNoted.get(id) ?? cached.info.lastUsedAtMs;
    if (noted === null || nowMs - noted >= LAST_USED_WRITE_INTERVAL_MS) {
      this.lastUsedNoted.set(id, nowMs);
      this.lastUsedPending.set(id, Math.max(nowMs, this.lastUsedPending.get(id) ?? 0));
    }
    return check;
  }

  /**
   * Writes pending `last_used_at_ms` values, then re-reads the table. Concurrent calls share one run.
   * Rejects (and reports to `onError`) when PostgreSQL fails; the previous copy stays in use.
   */
  refresh(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.inFlight ??= (async () => {
      try {
        // Bookkeeping first, but its failure must not keep revocations from being read.
        await this.writeLastUsed(signal).catch((err: Error) => this.onError(err));
        await this.load(signal);
      } catch (err) {
        this.onError(err as Error);
        throw err;
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  /** How long the copy has gone without a successful refresh (for readiness checks). */
  staleForMs(nowMs = this.now()): number {
    return nowMs - this.refreshedAtMs;
  }

  /** Stops refreshing and writes the pending `last_used_at_ms` values. Does not close `db`. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => {});
    this.closed = true;
    await this.writeLastUsed().catch((err: Error) => this.onError(err));
  }

  private refreshOnMiss(): void {
    const now = this.now();
    if (this.closed || this.inFlight || now - this.missRefreshAtMs < this.missRefreshMinIntervalMs) return;
    this.missRefreshAtMs = now;
    this.refresh().catch(() => {}); // reported through onError
  }

  private async load(signal?: AbortSignal): Promise<void> {
    const startedAtMs = this.now();
    const r = await this.db.query<TokenRow>('SELECT * FROM auth_tokens', [], signal);
    const next = new Map<string, CachedToken>();
    for (const row of r.rows) next.set(row.id, { info: tokenFromRow(row), secretSha256: row.secret_sha256 });
    this.tokens = next;
    this.refreshedAtMs = startedAtMs;
  }

  private async writeLastUsed(signal?: AbortSignal): Promise<void> {
    if (this.lastUsedPending.size === 0) return;
    const ids = [...this.lastUsedPending.keys()];
    const times = [...this.lastUsedPending.values()];
    this.lastUsedPending.clear();
    try {
      // GREATEST: several processes write it; the newest use wins whatever the order of the writes.
      await this.db.query(
        `UPDATE auth_tokens AS a SET last_used_at_ms = GREATEST(COALESCE(a.last_used_at_ms, 0), u.t)
         FROM unnest($1::text[], $2::bigint[]) AS u(id, t) WHERE a.id = u.id`,
        [ids, times],
        signal,
      );
    } catch (err) {
      // Keep them for the next attempt (newer uses noted meanwhile win).
      for (const [i, id] of ids.entries())
        this.lastUsedPending.set(id, Math.max(times[i]!, this.lastUsedPending.get(id) ?? 0));
      throw err;
    }
  }
}
