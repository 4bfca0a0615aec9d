/**
 * Tenant enforcement for whole PromQL queries forwarded to a remote TSDB (prom-label-proxy's job): every
 * vector and matrix selector — inside subqueries, function arguments (info()'s data-label selector too),
 * binary operands, aggregations, with `offset`/`@` — gets exactly one `tenant="<tenant>"` matcher, so the
 * forwarded query can only read that tenant's series.
 *
 * A matcher of the query on `tenant`:
 * - that accepts the caller's tenant (`tenant="a"`, `tenant=~"a|b"`, `tenant=~".*"`, `tenant!="b"` for tenant
 *   a) is replaced by the equality: within tenant a it selects the same series, and it can never widen the
 *   selection (prom-label-proxy's replace behaviour);
 * - that rejects the caller's tenant (`tenant="b"`, `tenant=~"b.*"`, `tenant!="a"` for tenant a) names only
 *   other tenants' data: the query is refused with a 403 (`Errors.forbidden`) naming the matcher, rather than
 *   silently answering something else than what was asked (prom-label-proxy's conflict error).
 * Matching is decided with the matcher's own semantics (anchored RE2, translated), on the caller's tenant.
 */
import { Errors, twError } from '../../model/errors.js';
import { LabelMatcher, WellKnownLabel } from '../../model/labels.js';
import { type Expr, type VectorSelector, walk } from './ast.js';
import { ParseError } from './errors.js';
import { parseExpr } from './parser.js';
import { exprToString } from './print.js';

const TENANT = WellKnownLabel.tenant;

/**
 * Parses `query`, enforces `tenant` on every selector and prints the result. Rejects with `Errors.badRequest`
 * when the query does not parse and `Errors.forbidden` when it names another tenant.
 */
export function enforceTenant(query: string, tenant: string): string {
  let expr: Expr;
  try {
    expr = parseExpr(query);
  } catch (err) {
    if (err instanceof ParseError) throw twError(Errors.badRequest, `invalid PromQL query: ${err.message}`);
    throw err;
  }
  enforceTenantExpr(expr, tenant);
  return exprToString(expr);
}

/** Rewrites the selectors of a freshly parsed tree in place (see the file comment). */
export function enforceTenantExpr(expr: Expr, tenant: string): void {
  const own = new LabelMatcher('=', TENANT, tenant);
  walk(expr, (node) => {
    if (node.type !== 'VectorSelector') return;
    const vs = node as VectorSelector & { matchers: readonly LabelMatcher[] };
    const kept: LabelMatcher[] = [];
    for (const m of vs.matchers) {
      if (m.name !== TENANT) {
        kept.push(m);
        continue;
      }
      if (!m.matches(tenant))
        throw twError(
          Errors.forbidden,
          `query selects another tenant's data with ${TENANT}${m.type}${JSON.stringify(m.value)}: queries of tenant ${JSON.stringify(tenant)} may only read ${TENANT}=${JSON.stringify(tenant)}`,
        );
    }
    kept.push(own);
    vs.matchers = kept;
  });
}
