/**
 * The metadata store on PostgreSQL (`meta.kind: postgres`), for the scaled-out deployment where several
 * trainwatch processes share one metadata store. `PgMeta` owns the connection pool and the schema; the
 * repositories beside it (jobs, tokens, alerts, silences, outbox, partition state) run their statements
 * through it. Everything is asynchronous and may fail with an error that names the server and the problem.
 *
 * Migrations: the same idea as `MetaStore.migrate` (a `schema_migrations` table; each migration in its own
 * transaction), plus a transaction-scoped advisory lock, because here several processes may start at once
 * against one database: each migration's transaction first takes `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`
 * and re-reads whether the version was applied, so exactly one process applies it and the others, blocked
 * on the lock until that commit, then see it applied and skip it. The lock is released with the transaction,
 * so a process that dies mid-migration leaves neither the lock nor a half-applied migration behind
 * (PostgreSQL DDL is transactional).
 */
import pg from 'pg';
import { pgError } from './errors.js';
import { PG_MIGRATIONS, type PgMigration } from './migrations.js';

/** Advisory lock key for migrations: an arbitrary constant, the same in every trainwatch process. */
export const MIGRATION_LOCK_KEY = '7355608201001';

export interface PgMetaOptions {
  /** `postgres://user:password@host:port/database` (libpq URL; `?sslmode=...` as node-postgres reads it). */
  readonly url: string;
  /** Most connections this process opens (default 10). */
  readonly poolSize?: number;
  /** Server-side limit on every statement but migrations (default 10 s): no query holds a connection forever. */
  readonly statementTimeoutMs?: number;
  /** How long to wait for a new connection (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Shown in `pg_stat_activity` (default `trainwatch`): which process holds which connection. */
  readonly applicationName?: string;
  /**
   * Errors of idle pooled connections (the server restarted, an administrator terminated the backend).
   * The pool drops such a connection and opens a new one when next needed; this only reports it.
   */
  readonly onIdleError?: (err: Error) => void;
}

/** What repositories run statements on: the pool, or one transaction's connection. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * BIGINT columns hold millisecond timestamps, offsets and identity ids, all below 2^53: read them as
 * numbers (node-postgres returns strings by default, since an int8 may exceed a double's exact range).
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** Connection settings shared by the pool and the dedicated sessions (leader election). */
export function clientConfig(opts: PgMetaOptions): pg.ClientConfig {
  return {
    connectionString: opts.url,
    application_name: opts.applicationName ?? 'trainwatch',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    statement_timeout: opts.statementTimeoutMs ?? 10_000,
    keepAlive: true,
    types,
  };
}

export class PgMeta implements Queryable {
  readonly pool: pg.Pool;
  readonly url: string;
  private readonly options: PgMetaOptions;

  constructor(opts: PgMetaOptions) {
    this.options = opts;
    this.url = opts.url;
    this.pool = new pg.Pool({ ...clientConfig(opts), max: opts.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // Without a listener an idle connection's error would be an unhandled 'error' event and end the process.
    this.pool.on('error', (err) => opts.onIdleError?.(pgError(err, this.url, 'idle connection')));
  }

  /** Connects (failing with a clear message when the server cannot be reached) and applies the migrations. */
  static async open(
    opts: PgMetaOptions,
    migrations: readonly PgMigration[] = PG_MIGRATIONS,
  ): Promise<PgMeta> {
    const meta = new PgMeta(opts);
    try {
      await meta.migrate(migrations);
      return meta;
    } catch (err) {
      await meta.close();
      throw err;
    }
  }

  /**
   * Runs one statement on a pooled connection. With a `signal`, aborting cancels the statement on the server
   * (`pg_cancel_backend`) and the promise rejects with the signal's reason.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: readonly unknown[] = [],
    signal?: AbortSignal,
  ): Promise<pg.QueryResult<R>> {
    if (!signal) {
      try {
        return await this.pool.query<R>(sql, params as unknown[]);
      } catch (err) {
        throw pgError(err, this.url, 'query');
      }
    }
    return this.transactionless(signal, (c) => c.query<R>(sql, params));
  }

  /**
   * Runs `fn` in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. A
   * connection whose transaction failed is discarded rather than reused (its state is unknown).
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const client = await this.connect();
    const tx = wrap(client, this.url);
    const stopCancel = signal ? this.cancelOnAbort(client, signal) : () => {};
    try {
      await tx.query('BEGIN');
      const result = await fn(tx);
      await tx.query('COMMIT');
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      signal?.throwIfAborted();
      throw err;
    } finally {
      stopCancel();
    }
  }

  /**
   * Applies the migrations this database has not run yet, each in its own transaction under the migration
   * lock (see the file comment). Safe to call from any number of processes at once. Returns the versions
   * this call applied.
   */
  async migrate(migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<number[]> {
    const sorted = [...migrations].sort((a, b) => a.version - b.version);
    for (let i = 1; i < sorted.length; i++)
      if (sorted[i]!.version === sorted[i - 1]!.version)
        throw new Error(`two PostgreSQL migrations have version ${sorted[i]!.version}`);
    // The bookkeeping table itself, under the lock too: concurrent CREATE TABLE IF NOT EXISTS can fail.
    await this.underMigrationLock(async (tx) => {
      await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)`);
    });
    const known = await this.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(known.rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of sorted) {
      if (done.has(m.version)) continue;
      const ran = await this.underMigrationLock(async (tx) => {
        const seen = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
        if (seen.rowCount) return false; // another process applied it while we waited for the lock
        try {
          await tx.query(m.sql);
        } catch (err) {
          throw new Error(
            `PostgreSQL migration ${m.version} (${m.description}) failed: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        await tx.query(
          'INSERT INTO schema_migrations (version, description, applied_at_ms) VALUES ($1, $2, $3)',
          [m.version, m.description, Date.now()],
        );
        return true;
      });
      if (ran) applied.push(m.version);
    }
    return applied;
  }

  /** Versions recorded in `schema_migrations`, ascending. */
  async appliedVersions(): Promise<number[]> {
    const r = await this.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    return r.rows.map((x) => x.version);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private underMigrationLock<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.transaction(async (tx) => {
      // No statement timeout here: waiting for another process's migration, or building an index on a big
      // table, may take longer than any ordinary statement.
      await tx.query('SET LOCAL statement_timeout = 0');
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      return fn(tx);
    });
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw pgError(err, this.url, 'connect');
    }
  }

  private async transactionless<T>(signal: AbortSignal, fn: (c: Queryable) => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    const client = await this.connect();
    const stopCancel = this.cancelOnAbort(client, signal);
    try {
      const result = await fn(wrap(client, this.url));
      client.release();
      return result;
    } catch (err) {
      client.release(true);
      signal.throwIfAborted();
      throw err;
    } finally {
      stopCancel();
    }
  }

  /**
   * On abort, asks the server to cancel whatever `client` is running, from a separate short-lived connection
   * (the pool may be exhausted, and the busy connection cannot carry the request). Returns the unsubscriber.
   */
  private cancelOnAbort(client: pg.PoolClient, signal: AbortSignal): () => void {
    const pid = (client as unknown as { processID?: number }).processID;
    const onAbort = () => {
      if (pid === undefined) return;
      const canceller = new pg.Client(clientConfig(this.options));
      canceller.on('error', () => {});
      canceller
        .connect()
        .then(() => canceller.query('SELECT pg_cancel_backend($1)', [pid]))
        .catch(() => {}) // best effort: the statement timeout still bounds the statement
        .finally(() => canceller.end().catch(() => {}));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }
}

function wrap(client: pg.PoolClient, url: string): Queryable {
  return {
    async query<R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []) {
      try {
        return await client.query<R>(sql, params as unknown[]);
      } catch (err) {
        throw pgError(err, url, 'query');
      }
    },
  };
}
