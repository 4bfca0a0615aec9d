/**
 * enforceTenant: a table of tricky queries, and a property over random queries: after enforcement every
 * selector carries exactly one `tenant="x"` matcher, the rest of the query is unchanged, and the printed
 * query is stable through parse → print.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TrainwatchError } from '../../model/errors.js';
import { type Expr, walk } from './ast.js';
import { enforceTenant } from './inject.js';
import { parseExpr } from './parser.js';
import { exprToString } from './print.js';

function tenantMatchers(e: Expr): string[][] {
  const out: string[][] = [];
  walk(e, (n) => {
    if (n.type === 'VectorSelector')
      out.push(n.matchers.filter((m) => m.name === 'tenant').map((m) => m.toString()));
  });
  return out;
}

/** The query with every tenant matcher removed, printed: what must not change. */
function withoutTenant(q: string): string {
  const e = parseExpr(q);
  walk(e, (n) => {
    if (n.type === 'VectorSelector')
      (n as { matchers: unknown }).matchers = n.matchers.filter((m) => m.name !== 'tenant');
  });
  return exprToString(e);
}

function forbidden(q: string, tenant = 'a'): TrainwatchError {
  try {
    enforceTenant(q, tenant);
  } catch (err) {
    expect(err).toBeInstanceOf(TrainwatchError);
    return err as TrainwatchError;
  }
  throw new Error(`${q} was accepted`);
}

describe('enforceTenant', () => {
  it.each([
    ['up', 'up{tenant="a"}'],
    ['{__name__="up"}', '{__name__="up", tenant="a"}'],
    ['rate(http_requests_total{job="x"}[5m])', 'rate(http_requests_total{job="x", tenant="a"}[5m])'],
    [
      'sum by (job) (rate(x[5m] offset 1h @ 1700000000))',
      'sum by (job) (rate(x{tenant="a"}[5m] offset 1h @ 1700000000))',
    ],
    [
      'max_over_time(deriv(rate(x[1m])[5m:1m])[10m:] offset 2m)',
      'max_over_time(deriv(rate(x{tenant="a"}[1m])[5m:1m])[10m:] offset 2m)',
    ],
    [
      'a * on(job) group_left(instance) b unless c',
      'a{tenant="a"} * on(job) group_left(instance) b{tenant="a"} unless c{tenant="a"}',
    ],
    ['x{tenant="a"}', 'x{tenant="a"}'],
    ['x{tenant=~".*", job="j"}', 'x{job="j", tenant="a"}'],
    ['x{tenant=~"a|b"}', 'x{tenant="a"}'],
    ['x{tenant!="b"}', 'x{tenant="a"}'],
    ['x{tenant!~"b.*"}', 'x{tenant="a"}'],
    ['x{tenant="a", tenant=~"a.*"}', 'x{tenant="a"}'],
    [
      'info(rate(x[5m]), {k8s_cluster_name=~".+"})',
      'info(rate(x{tenant="a"}[5m]), {k8s_cluster_name=~".+", tenant="a"})',
    ],
    ['label_replace(x, "tenant", "b", "", "")', 'label_replace(x{tenant="a"}, "tenant", "b", "", "")'],
    ['count_values("tenant", x)', 'count_values("tenant", x{tenant="a"})'],
    ['topk(3, x) and on() vector(1)', 'topk(3, x{tenant="a"}) and on() vector(1)'],
    ['absent(nonexistent)', 'absent(nonexistent{tenant="a"})'],
    ['scalar(x) * 2 + time()', 'scalar(x{tenant="a"}) * 2 + time()'],
    ['-x ^ 2', '-x{tenant="a"} ^ 2'],
    ['x @ end() offset -5m', 'x{tenant="a"} offset -5m @ end()'],
    ['{"my.metric", "some.label"="v"}', '{__name__="my.metric", "some.label"="v", tenant="a"}'],
    ['sum without () (x # comment\n)', 'sum without () (x{tenant="a"})'],
    ['1 + 2', '1 + 2'],
    ['vector(time())', 'vector(time())'],
  ])('%s → %s', (q, want) => {
    const out = enforceTenant(q, 'a');
    expect(out).toBe(want);
    for (const ms of tenantMatchers(parseExpr(out))) expect(ms).toEqual(['tenant="a"']);
  });

  it.each([
    'x{tenant="b"}',
    'x + y{tenant=~"b|c"}',
    'x{tenant!="a"}',
    'x{tenant!~"a"}',
    'x{tenant=""}',
    'sum(rate(x{tenant=~"b.*"}[5m]))',
    'max_over_time(x{tenant="b"}[5m:])',
    'info(x, {tenant="b"})',
    'x{tenant="a", tenant="b"}',
  ])('%s is forbidden for tenant a', (q) => {
    const err = forbidden(q);
    expect(err.kind.code).toBe('forbidden');
    expect(err.status).toBe(403);
    expect(err.message).toContain('tenant');
    expect(err.message).toContain('"a"');
  });

  it('quotes tenants that need it', () => {
    expect(enforceTenant('x', 'team "q"\\1')).toBe('x{tenant="team \\"q\\"\\\\1"}');
  });

  it('rejects what does not parse with badRequest', () => {
    const err = forbidden('sum(rate(x[5m])');
    expect(err.kind.code).toBe('bad_request');
    expect(err.message).toContain('unclosed left parenthesis');
  });

  // ---- property ----

  const TENANT_VALUES = ['x', 'y', 'x|y', '.*', 'y.*', 'x.*', ''];
  const matcher = fc.oneof(
    fc.constantFrom('job="j"', 'job=~"a|b"', 'instance!="i"', 'mode!~"idle|iowait"', '"utf8.label"="v"'),
    fc
      .tuple(fc.constantFrom('=', '!=', '=~', '!~'), fc.constantFrom(...TENANT_VALUES))
      .map(([op, v]) => `tenant${op}${JSON.stringify(v)}`),
  );
  const selector = fc
    .tuple(
      fc.constantFrom('up', 'node_cpu_seconds_total', 'train_loss', ''),
      fc.array(matcher, { maxLength: 3 }),
    )
    .map(([name, ms]) => {
      // A selector needs a non-empty matcher: a name, or job="j".
      const all = name === '' ? ['job="j"', ...ms] : ms;
      return all.length === 0 ? name : `${name}{${all.join(', ')}}`;
    });
  const modifier = fc.constantFrom('', ' offset 5m', ' @ 1700000000', ' offset -1m @ end()', ' @ start()');
  const matrix = fc
    .tuple(selector, fc.constantFrom('1m', '5m30s', '90s'), modifier)
    .map(([s, r, m]) => `${s}[${r}]${m}`);

  const { vector } = fc.letrec<{ vector: string }>((tie) => ({
    vector: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.tuple(selector, modifier).map(([s, m]) => s + m),
      matrix.map((m) => `rate(${m})`),
      fc
        .tuple(
          fc.constantFrom('sum', 'max', 'count'),
          fc.constantFrom('', ' by (job)', ' without (instance)'),
          tie('vector'),
        )
        .map(([op, g, v]) => `${op}${g} (${v})`),
      tie('vector').map((v) => `topk(2, ${v})`),
      fc
        .tuple(
          tie('vector'),
          fc.constantFrom(
            '+',
            '*',
            '/',
            'and',
            'or',
            'unless',
            '> bool',
            '- on(job)',
            '* ignoring(mode) group_left()',
          ),
          tie('vector'),
        )
        .map(([a, op, b]) => `${a} ${op} ${b}`),
      tie('vector').map((v) => `-${v}`),
      tie('vector').map((v) => `(${v})`),
      tie('vector').map((v) => `max_over_time((${v})[5m:1m])`),
      tie('vector').map((v) => `avg_over_time(abs(${v})[10m:] offset 1m)`),
      tie('vector').map((v) => `label_replace(${v}, "tenant", "z", "", "")`),
      tie('vector').map((v) => `${v} * scalar(${v})`),
      tie('vector').map((v) => `info(${v}, {version=~".+"})`),
      fc.constant('vector(1)'),
    ),
  }));

  it('every selector gets exactly tenant="x"; nothing else changes; printing is stable (property)', () => {
    fc.assert(
      fc.property(vector, (q) => {
        const original = parseExpr(q); // the generator only makes valid queries
        const rejects = tenantMatchers(original)
          .flat()
          .some((m) => {
            const [, op, v] = /^tenant(=~|!~|!=|=)(".*")$/.exec(m)!;
            const value = JSON.parse(v!) as string;
            const re = new RegExp(`^(?:${value})$`);
            return op === '='
              ? value !== 'x'
              : op === '!='
                ? value === 'x'
                : op === '=~'
                  ? !re.test('x')
                  : re.test('x');
          });
        let out: string;
        try {
          out = enforceTenant(q, 'x');
        } catch (err) {
          expect((err as TrainwatchError).kind?.code, `${q}: ${(err as Error).message}`).toBe('forbidden');
          expect(rejects, `${q} was refused`).toBe(true);
          return;
        }
        expect(rejects, `${q} was accepted`).toBe(false);
        const e = parseExpr(out);
        for (const ms of tenantMatchers(e)) expect(ms, out).toEqual(['tenant="x"']);
        expect(exprToString(e)).toBe(out);
        expect(withoutTenant(out)).toBe(withoutTenant(q));
      }),
      { numRuns: 400 },
    );
  });
});
