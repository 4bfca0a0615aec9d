/**
 * Reading one query-string parameter the same way on every route of the query stage: a parameter given once,
 * a comma list, a bounded integer, a finite number, each refused with the same 400 error naming the parameter.
 * Separate from dashboard-params.ts (the dashboard's own parameters: metrics, ranges, grids) so that the
 * job list, node and heatmap-grouping modules read parameters without importing the dashboard's.
 */
import { Errors, twError } from '../model/errors.js';

/** A parsed query string as Fastify gives it: a repeated parameter is an array. */
export type Query = Record<string, string | string[] | undefined>;

/** The parameter's one value; a parameter given more than once is refused. */
export function single(raw: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(raw)) {
    if (raw.length > 1)
      throw twError(Errors.badRequest, `parameter ${name} given ${raw.length} times; give it once`);
    return raw[0];
  }
  return raw;
}

/** Every value of a repeatable, comma-separated parameter; empty items are dropped. */
export function many(raw: string | string[] | undefined): string[] {
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).flatMap((r) => r.split(',')).filter((r) => r !== '');
}

/** An integer in [min, max]; undefined when absent or empty. */
export function intParam(q: Query, name: string, min: number, max: number): number | undefined {
  const raw = single(q[name], name);
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw twError(
      Errors.badRequest,
      `parameter ${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`,
    );
  return n;
}

/** A finite number; undefined when absent or empty. */
export function numParam(q: Query, name: string): number | undefined {
  const raw = single(q[name], name);
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n))
    throw twError(Errors.badRequest, `parameter ${name}=${JSON.stringify(raw)} must be a number`);
  return n;
}
