/**
 * The metadata store (DESIGN.md): jobs now; users, tokens, rules, silences and alert history as those roles
 * land. Embedded default: SQLite through better-sqlite3 in `<data-dir>/meta.db` (WAL mode). Each concern owns
 * its tables and registers its migrations here, so the schema version is one number for the whole file.
 */
import Database from 'better-sqlite3';

export type Db = Database.Database;

export interface Migration {
  /** Unique, increasing across the whole store. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export class MetaStore {
  readonly db: Db;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash; power loss may lose the last transactions,
    // which the processor rebuilds by replaying the bus.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL)',
    );
  }

  /** Applies the migrations that have not run yet, each in its own transaction. */
  migrate(migrations: readonly Migration[]): void {
    const applied = new Set(
      (this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    const record = this.db.prepare('INSERT INTO schema_migrations (version, description) VALUES (?, ?)');
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        record.run(m.version, m.description);
      })();
    }
  }

  close(): void {
    this.db.close();
  }
}
