/**
 * Query-string parameters that several stages' HTTP routes read the same way (alerting's alert and delivery
 * lists, auth's audit log, the query stage's REST times), so each is parsed, and refused with the same 400
 * message, in one place.
 */
import { Errors, twError } from './errors.js';

/**
 * An optional time: milliseconds since the epoch (a decimal is rounded) or an RFC 3339 date; undefined when
 * absent or empty. Anything else is a 400 naming the parameter.
 */
export function optionalTimeParam(raw: string | undefined, name: string): number | undefined {
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

/**
 * An optional comma-separated list whose items must each be one of `allowed` (listed in the 400's message in
 * that order); undefined when absent or empty.
 */
export function enumListParam<T extends string>(
  raw: string | undefined,
  name: string,
  allowed: readonly T[],
): T[] | undefined {
  if (!raw) return undefined;
  const choices = `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`;
  return raw.split(',').map((s) => {
    if (!allowed.includes(s as T))
      throw twError(Errors.badRequest, `parameter ${name}=${JSON.stringify(s)} must be ${choices}`);
    return s as T;
  });
}
