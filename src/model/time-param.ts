/**
 * A time given in a request parameter: milliseconds since the epoch or an RFC 3339 date, refused with a 400
 * naming the parameter. Written once for every stage's HTTP API (the query stage's REST and dashboard routes;
 * alerting/api.ts reads times the same way).
 */
import { Errors, twError } from './errors.js';

/** The time `raw` names in milliseconds since the epoch; undefined when it is absent or empty. */
export function parseTimeParam(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Math.round(Number(raw));
  const t = Date.parse(raw);
  if (Number.isNaN(t))
    throw twError(
      Errors.badRequest,
      `parameter ${name}=${JSON.stringify(raw)} is not a time: use milliseconds since the epoch or RFC 3339`,
    );
  return t;
}
