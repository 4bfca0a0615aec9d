/**
 * Series identity: a metric name plus labels, following Prometheus conventions.
 *
 * At the edges of the system (APIs, configs, tests) a label set is a plain object whose keys are label
 * names; the metric name is the `__name__` label. Hot paths (ingest decode, storage append) never build
 * these objects per sample: they intern a series once and carry a numeric ref afterwards.
 */
import { createRequire } from 'node:module';
// Type only: the RE2 engine is loaded at the first regex that needs it (lazyRe2), so what imports labels for
// names alone (the agent) does not load it.
import type { RE2JS as Re2Engine } from 're2js';

export type LabelSet = Readonly<Record<string, string>>;

export const METRIC_NAME_LABEL = '__name__';

/** Well-known labels of DESIGN.md. `job` is deliberately absent: Prometheus reserves it for the scrape job. */
export const WellKnownLabel = {
  tenant: 'tenant',
  jobId: 'job_id',
  nodeId: 'node_id',
  rank: 'rank',
  localRank: 'local_rank',
  gpu: 'gpu',
  gpuUuid: 'gpu_uuid',
  cluster: 'cluster',
  region: 'region',
} as const;

const METRIC_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function isValidMetricName(name: string): boolean {
  return METRIC_NAME_RE.test(name);
}

export function isValidLabelName(name: string): boolean {
  return LABEL_NAME_RE.test(name);
}

/**
 * Turns a user's metric key into a valid metric name: `train/loss` → `train_loss`,
 * `eval/top-1 acc` → `eval_top_1_acc`, `1st` → `_1st`. Runs of invalid characters collapse to one `_`.
 * The caller keeps the original key in job metadata so the UI can show what the user wrote.
 */
export function sanitizeMetricName(key: string): string {
  let name = key.replace(/[^a-zA-Z0-9_:]+/g, '_');
  if (name === '') return '_';
  if (/^[0-9]/.test(name)) name = `_${name}`;
  return name;
}

/** Same as {@link sanitizeMetricName} for label names, which may not contain `:`. */
export function sanitizeLabelName(key: string): string {
  let name = key.replace(/[^a-zA-Z0-9_]+/g, '_');
  if (name === '') return '_';
  if (/^[0-9]/.test(name)) name = `_${name}`;
  return name;
}

/**
 * A canonical, unambiguous string for a label set: names sorted, values JSON-quoted.
 * Used where a string key is acceptable (metadata, tests); never per sample on a hot path.
 */
export function labelsKey(labels: LabelSet): string {
  const names = Object.keys(labels).sort();
  let key = '';
  for (const name of names) key += `${name}=${JSON.stringify(labels[name])},`;
  return key;
}

/** Renders `name{a="1",b="2"}` as PromQL and Prometheus error messages show series. */
export function formatSeries(labels: LabelSet): string {
  const name = labels[METRIC_NAME_LABEL] ?? '';
  const rest = Object.keys(labels)
    .filter((n) => n !== METRIC_NAME_LABEL)
    .sort()
    .map((n) => `${n}=${JSON.stringify(labels[n])}`);
  return rest.length === 0 ? name || '{}' : `${name}{${rest.join(', ')}}`;
}

export type MatchType = '=' | '!=' | '=~' | '!~';

/** Characters that make a pattern more than a literal in RE2 syntax. */
const RE2_META = /[\\.+*?()|[\]{}^$]/;

/**
 * An RE2 pattern matching exactly `values` (an alternation of escaped literals). Values without
 * metacharacters, such as metric names, give a pattern on the literal-set fast path.
 */
export function regexOfLiterals(values: readonly string[]): string {
  return values.map((v) => v.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`)).join('|');
}

/**
 * How a regex matcher tests a value. Common PromQL shapes have a fast path: a literal, an alternation of
 * literals (`a|b|c`, as Grafana's multi-value variables write them), prefixes (`job-1.*`, `gpu_.*|train_.*`)
 * and `.*` / `.+`. Everything else runs on RE2 (re2js), whose matching time is linear in the value's length
 * whatever the pattern: a backtracking engine (JavaScript's RegExp) takes exponential time on patterns such as
 * `(.*.*)*X`, and one query would stall the server.
 */
type ValueTest = (v: string) => boolean;

/** The fast path for `pattern`, or undefined when it needs the regex engine. */
function fastRegexTest(pattern: string): ValueTest | undefined {
  if (pattern === '.*') return () => true;
  if (pattern === '.+') return (v) => v.length > 0;
  const literals = new Set<string>();
  const prefixes: string[] = [];
  for (const alt of pattern.split('|')) {
    if (!RE2_META.test(alt)) literals.add(alt);
    else if (alt.endsWith('.*') && !RE2_META.test(alt.slice(0, -2))) prefixes.push(alt.slice(0, -2));
    else return undefined;
  }
  if (prefixes.length === 0) return (v) => literals.has(v);
  if (literals.size === 0 && prefixes.length === 1) {
    const p = prefixes[0]!;
    return (v) => v.startsWith(p);
  }
  return (v) => {
    if (literals.size > 0 && literals.has(v)) return true;
    for (let i = 0; i < prefixes.length; i++) if (v.startsWith(prefixes[i]!)) return true;
    return false;
  };
}

let re2: typeof Re2Engine | undefined;
function lazyRe2(): typeof Re2Engine {
  re2 ??= (createRequire(import.meta.url)('re2js') as { RE2JS: typeof Re2Engine }).RE2JS;
  return re2;
}

/** Compiles an RE2 pattern, anchored at both ends and with `.` matching newlines, as Prometheus does. */
function compileRegexTest(pattern: string): ValueTest {
  const RE2JS = lazyRe2();
  const re = RE2JS.compile(pattern, RE2JS.DOTALL);
  return (v) => re.matches(v);
}

/**
 * A label matcher as in PromQL. A regex value is RE2 syntax (Go's regexp, as Prometheus takes it), kept as
 * written so that printing the matcher or sending it to another TSDB gives back the user's pattern. Regexes
 * are fully anchored, as PromQL anchors them, and match in linear time.
 */
export class LabelMatcher {
  private readonly test: ValueTest | undefined;
  /** A regex matcher that runs on the regex engine (no fast path): each value tested costs a scan of it. */
  readonly usesRegexEngine: boolean = false;

  constructor(
    readonly type: MatchType,
    readonly name: string,
    readonly value: string,
  ) {
    // A fast-path pattern (literals and `lit.*` alternatives) is always valid RE2: nothing to validate.
    if (type === '=~' || type === '!~') {
      try {
        const fast = fastRegexTest(value);
        this.test = fast ?? compileRegexTest(value);
        this.usesRegexEngine = fast === undefined;
      } catch (err) {
        throw new Error(
          `invalid regular expression in matcher ${name}${type}${JSON.stringify(value)}: ${(err as Error).message}`,
        );
      }
    }
  }

  /** A missing label matches as the empty string, as in Prometheus. */
  matches(labelValue: string | undefined): boolean {
    const v = labelValue ?? '';
    switch (this.type) {
      case '=':
        return v === this.value;
      case '!=':
        return v !== this.value;
      case '=~':
        return this.test!(v);
      case '!~':
        return !this.test!(v);
    }
  }

  toString(): string {
    return `${this.name}${this.type}${JSON.stringify(this.value)}`;
  }
}

export function matchesAll(labels: LabelSet, matchers: readonly LabelMatcher[]): boolean {
  for (const m of matchers) if (!m.matches(labels[m.name])) return false;
  return true;
}
