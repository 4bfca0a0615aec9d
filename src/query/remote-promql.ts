/**
 * PromQL on a remote TSDB (`storage.kind: remote`): the query role forwards `/api/v1/query` and
 * `/api/v1/query_range` to the TSDB's own Prometheus HTTP API, so VictoriaMetrics, Mimir or a managed
 * Prometheus evaluate next to their data instead of trainwatch pulling raw samples over the network.
 *
 * Tenant isolation is enforced on the query text, as prom-label-proxy does: the query is parsed with
 * trainwatch's parser (so a parse error reads exactly as in the embedded mode), every selector gets
 * `tenant="<caller's tenant>"` (promql/inject.ts: a matcher naming another tenant is refused with 403), and the
 * rewritten query is printed and sent. Nothing the caller writes reaches the TSDB unrewritten: the query is the
 * printed tree, and every other parameter is passed only from an allow-list. Answers have the `tenant` label
 * removed, as the embedded mode hides it (promql/tenant.ts), so results are identical in both modes.
 */
import { Errors, twError } from '../model/errors.js';
import { WellKnownLabel } from '../model/labels.js';
import { enforceTenantExpr, exprToString, parseExpr } from './promql/index.js';

/** Parameters of the Prometheus query API passed on to the TSDB (the query itself is rewritten). */
const PASSED_PARAMS = ['time', 'start', 'end', 'step', 'timeout', 'lookback_delta', 'limit'] as const;

export interface RemotePromqlOptions {
  /** The TSDB's Prometheus API root: `<queryUrl>/api/v1/query` (VictoriaMetrics `http://vm:8428`). */
  readonly queryUrl: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The longest a forwarded query may take (also sent as its `timeout`). */
  readonly timeoutMs: number;
}

/** The TSDB's answer, to send back as is: its status and its JSON body with the tenant label removed. */
export interface ForwardedAnswer {
  readonly status: number;
  readonly body: unknown;
}

export class RemotePromql {
  private readonly base: string;

  constructor(private readonly opts: RemotePromqlOptions) {
    this.base = opts.queryUrl.replace(/\/+$/, '');
  }

  /**
   * Forwards one query of `tenant`. Throws the parser's PromqlError for a query that does not parse, a 403
   * TrainwatchError for one that names another tenant, and `unavailable` when the TSDB cannot be reached.
   */
  async forward(
    endpoint: 'query' | 'query_range',
    query: string,
    params: ReadonlyMap<string, string>,
    tenant: string,
    signal: AbortSignal,
  ): Promise<ForwardedAnswer> {
    const expr = parseExpr(query);
    enforceTenantExpr(expr, tenant);
    const form = new URLSearchParams();
    form.set('query', exprToString(expr));
    for (const name of PASSED_PARAMS) {
      const v = params.get(name);
      if (v !== undefined && v !== '') form.set(name, v);
    }
    const timeoutSeconds = Math.max(1, Math.floor(this.opts.timeoutMs / 1000));
    if (!form.has('timeout')) form.set('timeout', `${timeoutSeconds}s`);
    const deadline = AbortSignal.timeout(this.opts.timeoutMs + 1000);
    let res: Response;
    try {
      res = await fetch(`${this.base}/api/v1/${endpoint}`, {
        method: 'POST',
        headers: { ...this.opts.headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        signal: AbortSignal.any([signal, deadline]),
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw twError(
        Errors.unavailable,
        `remote TSDB unreachable at ${this.base}: ${(err as Error).message}`,
        1,
      );
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw twError(
        Errors.unavailable,
        `remote TSDB at ${this.base} answered ${res.status} without JSON: ${text.slice(0, 200)}`,
        1,
      );
    }
    stripTenant(body);
    return { status: res.status, body };
  }
}

/** Removes the `tenant` label from every series of a query answer (vector or matrix), in place. */
function stripTenant(body: unknown): void {
  const data = (body as { data?: { result?: unknown } } | undefined)?.data;
  const result = data?.result;
  if (!Array.isArray(result)) return;
  for (const r of result) {
    const metric = (r as { metric?: Record<string, string> }).metric;
    if (metric) delete metric[WellKnownLabel.tenant];
  }
}
