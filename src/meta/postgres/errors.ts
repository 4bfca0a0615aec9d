/**
 * Turns node-postgres and socket errors into messages that say what was wrong and where (host, port,
 * database, user), with the password never shown. The original error stays as `cause`.
 */

/** Where a PostgreSQL URL points, for messages: `user@host:port/database`, without the password. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    const host = u.hostname || 'localhost';
    const port = u.port || '5432';
    const db = u.pathname.replace(/^\//, '') || decodeURIComponent(u.username) || 'postgres';
    return `${user}${host}:${port}/${db}`;
  } catch {
    return 'the configured PostgreSQL URL (unparsable)';
  }
}

interface PgLikeError {
  code?: string;
  message?: string;
  address?: string;
  port?: number;
}

/** Server-side SQLSTATE codes worth a plain explanation. */
const SQLSTATE: Record<string, string> = {
  '28P01': 'authentication failed (wrong password)',
  '28000': 'authentication rejected (pg_hba.conf has no entry allowing this user, host and database)',
  '3D000': 'the database does not exist',
  '57014': 'the statement was cancelled (statement timeout or cancellation)',
  '57P01': 'the server terminated the connection (administrator command)',
  '57P03': 'the server is starting up or shutting down',
  '53300': 'the server has too many connections',
};

/** An Error whose message names the target and the problem, e.g. `PostgreSQL at u@h:5432/db: connection refused`. */
export function pgError(err: unknown, url: string, doing: string): Error {
  const e = (err ?? {}) as PgLikeError;
  const target = describeTarget(url);
  let what: string;
  switch (e.code) {
    case 'ECONNREFUSED':
      what = 'connection refused (is the server running and listening on that host and port?)';
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      what = 'host name not found';
      break;
    case 'ETIMEDOUT':
      what = 'connection timed out';
      break;
    case 'ECONNRESET':
      what = 'connection reset by the server';
      break;
    default:
      what = (e.code && SQLSTATE[e.code]) ?? e.message ?? String(err);
      if (e.code && SQLSTATE[e.code] && e.message) what = `${what}: ${e.message}`;
  }
  if (!e.code && /timeout expired|Connection terminated due to connection timeout/i.test(e.message ?? ''))
    what = 'connection timed out';
  const out = new Error(`PostgreSQL at ${target}: ${doing}: ${what}`, { cause: err });
  (out as Error & { code?: string }).code = e.code;
  return out;
}
