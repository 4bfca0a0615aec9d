/**
 * Which tenant a dashboard request reads. Every read is scoped to the caller's tenant; a caller with the
 * `admin` scope may name another tenant (`tenant=<name>`) or every tenant (`tenant=*`), which the fleet
 * overview of a platform team needs.
 */
import type { FastifyReply } from 'fastify';
import type { Principal } from '../auth/index.js';
import { Errors, twError } from '../model/errors.js';

/** The tenant to read, or null for every tenant. */
export function readTenant(principal: Principal, raw: string | undefined): string | null {
  if (raw === undefined || raw === '' || raw === principal.tenant) return principal.tenant;
  if (!principal.scopes.has('admin')) {
    throw twError(
      Errors.forbidden,
      `tenant=${JSON.stringify(raw)}: reading another tenant needs the admin scope; these credentials read tenant ${JSON.stringify(principal.tenant)} only (drop the tenant parameter)`,
    );
  }
  return raw === '*' ? null : raw;
}

/**
 * Aborts when the client goes away before its answer was sent (Grafana cancels stale panels), so a query or a
 * remote read it started stops too.
 */
export function requestSignal(reply: FastifyReply): AbortSignal {
  const abort = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort(new Error('the client closed the request'));
  });
  return abort.signal;
}
