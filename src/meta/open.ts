/**
 * Opening the metadata store a configuration names (`meta.kind`): SQLite in the data directory (embedded),
 * or PostgreSQL (`meta.postgres.url`, or the file `meta.postgres.url_file` names, e.g. a mounted secret).
 * Either way the schema is migrated at open, and callers get the same interfaces: a `JobRepository`
 * (`JobStore`) and a synchronous `TokenSource` for the authenticator. The PostgreSQL driver is loaded only
 * for `meta.kind: postgres`.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ACCESS_MIGRATIONS, AccessStore, sqliteRunner } from './access.js';
import { JobStore } from './jobs.js';
import { MetaStore } from './meta-store.js';
import { METRIC_METADATA_MIGRATIONS, MetricMetadataStore } from './metric-metadata.js';
import type { PgMeta } from './postgres/pg-meta.js';
import { type TokenAdmin, type TokenSource, TokenStore, tokenAdminOf } from './tokens.js';

/** The part of the configuration (`Config` from src/config) the metadata store reads. */
export interface MetaConfig {
  readonly data_dir: string;
  readonly meta: {
    readonly kind: 'sqlite' | 'postgres';
    readonly postgres: { readonly url?: string; readonly url_file?: string; readonly pool_size: number };
  };
  readonly jobs: { readonly silent_after_ms: number };
}

export interface OpenMetaOptions {
  /** SQLite file (default `<data_dir>/meta.db`). */
  readonly sqliteFile?: string;
  /** Shown in PostgreSQL's `pg_stat_activity` (default `trainwatch`), e.g. `trainwatch-processor`. */
  readonly applicationName?: string;
  /** PostgreSQL token cache: full re-read interval, the bound on revocation latency (default 5000 ms). */
  readonly tokenRefreshIntervalMs?: number;
  /** PostgreSQL token cache: least time between refreshes caused by unknown token ids (default 1000 ms). */
  readonly tokenMissRefreshMinIntervalMs?: number;
  /** Background failures (token refreshes, `last_used` writes, idle PostgreSQL connections). */
  readonly onError?: (err: Error) => void;
}

export interface OpenedMeta {
  readonly kind: 'sqlite' | 'postgres';
  /** Job metadata: the processor writes (`applyEvent`, `noteSamples`, `flush`), query and alerting read. */
  readonly jobs: JobStore;
  /** For `TokenAuthenticator`: `TokenStore` (SQLite) or `PgTokenCache` (PostgreSQL). */
  readonly tokens: TokenSource;
  /** Creating, listing and revoking tokens. */
  readonly tokenAdmin: TokenAdmin;
  /** Users, roles per tenant, sessions and the audit log. */
  readonly access: AccessStore;
  /** Metric metadata senders declared (the collector queues, `/api/v1/metadata` reads); flushed by a timer. */
  readonly metricMetadata: MetricMetadataStore;
  /** The SQLite store (for the concerns still on it only: alert store, …); undefined with PostgreSQL. */
  readonly sqlite: MetaStore | undefined;
  /** The PostgreSQL pool (for the other PostgreSQL repositories); undefined with SQLite. */
  readonly postgres: PgMeta | undefined;
  /** Stops the token refresh, writes pending `last_used` values, closes the store. Flush `jobs` first. */
  close(): Promise<void>;
}

/** The PostgreSQL URL from `meta.postgres.url`, or the first line-trimmed content of `meta.postgres.url_file`. */
export function postgresUrlOf(pgConfig: MetaConfig['meta']['postgres']): string {
  if (pgConfig.url) return pgConfig.url;
  const file = pgConfig.url_file;
  if (!file)
    throw new Error('meta.postgres.url or meta.postgres.url_file is required with meta.kind: postgres');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`meta.postgres.url_file: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const url = text.trim();
  if (url === '') throw new Error(`meta.postgres.url_file: ${file} is empty`);
  return url;
}

function sqliteFileOf(config: MetaConfig, opts: OpenMetaOptions): string {
  if (opts.sqliteFile) return opts.sqliteFile;
  const dir = path.resolve(config.data_dir);
  mkdirSync(dir, { recursive: true });
  return path.join(dir, 'meta.db');
}

async function openPostgres(config: MetaConfig, opts: OpenMetaOptions) {
  const pgModule = await import('./postgres/index.js');
  const db = await pgModule.PgMeta.open({
    url: postgresUrlOf(config.meta.postgres),
    poolSize: config.meta.postgres.pool_size,
    applicationName: opts.applicationName,
    onIdleError: opts.onError,
  });
  return { pgModule, db };
}

/** Opens (and migrates) the store `config.meta.kind` names. */
export async function openMeta(config: MetaConfig, opts: OpenMetaOptions = {}): Promise<OpenedMeta> {
  const silentAfterMs = config.jobs.silent_after_ms;
  if (config.meta.kind === 'sqlite') {
    const meta = new MetaStore(sqliteFileOf(config, opts));
    try {
      const tokens = new TokenStore(meta);
      meta.migrate(ACCESS_MIGRATIONS);
      meta.migrate(METRIC_METADATA_MIGRATIONS);
      const metricMetadata = new MetricMetadataStore(sqliteRunner(meta.db), opts.onError);
      metricMetadata.start();
      // Tokens' last-used times are noted per request and written here, in batches.
      const flush = () => {
        try {
          tokens.flushLastUsed();
        } catch (err) {
          opts.onError?.(err as Error);
        }
      };
      const timer = setInterval(flush, LAST_USED_FLUSH_INTERVAL_MS);
      timer.unref();
      return {
        kind: 'sqlite',
        jobs: new JobStore(meta, silentAfterMs),
        tokens,
        tokenAdmin: tokenAdminOf(tokens),
        access: new AccessStore(sqliteRunner(meta.db)),
        metricMetadata,
        sqlite: meta,
        postgres: undefined,
        close: async () => {
          clearInterval(timer);
          flush();
          await metricMetadata.close().catch((err: Error) => opts.onError?.(err));
          meta.close();
        },
      };
    } catch (err) {
      meta.close();
      throw err;
    }
  }
  const { pgModule, db } = await openPostgres(config, opts);
  try {
    const tokens = await pgModule.PgTokenCache.open(db, {
      refreshIntervalMs: opts.tokenRefreshIntervalMs,
      missRefreshMinIntervalMs: opts.tokenMissRefreshMinIntervalMs,
      onError: opts.onError,
    });
    const metricMetadata = new MetricMetadataStore(pgModule.pgRunner(db), opts.onError);
    metricMetadata.start();
    return {
      kind: 'postgres',
      jobs: new JobStore(new pgModule.PgJobRepository(db, silentAfterMs)),
      tokens,
      tokenAdmin: new pgModule.PgTokenRepository(db, opts.onError),
      access: new AccessStore(pgModule.pgRunner(db)),
      metricMetadata,
      sqlite: undefined,
      postgres: db,
      close: async () => {
        await metricMetadata.close().catch((err: Error) => opts.onError?.(err));
        await tokens.close();
        await db.close();
      },
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** How often the SQLite token store writes the noted last-used times. */
const LAST_USED_FLUSH_INTERVAL_MS = 30_000;

/** Just user management (the `trainwatch user` CLI): the access repository, no background work. */
export async function openAccessAdmin(
  config: MetaConfig,
  opts: OpenMetaOptions = {},
): Promise<{ access: AccessStore; close(): Promise<void> }> {
  if (config.meta.kind === 'sqlite') {
    const meta = new MetaStore(sqliteFileOf(config, opts));
    try {
      new TokenStore(meta);
      meta.migrate(ACCESS_MIGRATIONS);
      return { access: new AccessStore(sqliteRunner(meta.db)), close: async () => meta.close() };
    } catch (err) {
      meta.close();
      throw err;
    }
  }
  const { pgModule, db } = await openPostgres(config, { applicationName: 'trainwatch-cli', ...opts });
  return { access: new AccessStore(pgModule.pgRunner(db)), close: () => db.close() };
}

/**
 * Just token management (the `trainwatch token` CLI): no token cache, no background work. `close()` when done.
 */
export async function openTokenAdmin(
  config: MetaConfig,
  opts: OpenMetaOptions = {},
): Promise<TokenAdmin & { close(): Promise<void> }> {
  if (config.meta.kind === 'sqlite') {
    const meta = new MetaStore(sqliteFileOf(config, opts));
    try {
      return { ...tokenAdminOf(new TokenStore(meta)), close: async () => meta.close() };
    } catch (err) {
      meta.close();
      throw err;
    }
  }
  const { pgModule, db } = await openPostgres(config, { applicationName: 'trainwatch-cli', ...opts });
  const repo = new pgModule.PgTokenRepository(db, opts.onError);
  return {
    create: (o) => repo.create(o),
    list: (f) => repo.list(f),
    revoke: (id) => repo.revoke(id),
    close: () => db.close(),
  };
}
