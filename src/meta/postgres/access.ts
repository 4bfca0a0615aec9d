/**
 * The access repository (users, roles, sessions, audit; `../access.ts`) on PostgreSQL: the same SQL, its `?`
 * placeholders numbered as PostgreSQL wants them. The repository's SQL has no `?` inside string literals.
 */
import type { SqlRunner } from '../access.js';
import type { Queryable } from './pg-meta.js';

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export function pgRunner(db: Queryable): SqlRunner {
  return {
    all: async <R>(sql: string, params: readonly unknown[] = []) =>
      (await db.query(numbered(sql), params)).rows as R[],
    run: async (sql, params = []) => {
      await db.query(numbered(sql), params);
    },
  };
}
