/**
 * A PromQL grammar for the fuzz tests, driven by a seeded generator (one fast-check integer per query: cheap,
 * and a failing query is replayed from its seed). It writes mostly valid PromQL over the series of
 * `PROMQL_SERIES_END`'s data set (promql.test.ts), with hostile regular expressions, extreme durations and
 * literals, wrong arities, character-level damage, and nesting far past the parser's limit.
 */
import { FUNCTIONS } from '../../src/query/promql/index.js';
import { prng } from './fuzz-harness.js';

/** The end of the fuzz data set (ms); `@` modifiers point near it. */
export const PROMQL_SERIES_END = 1_700_000_000_000 + 3_600_000;
const END = PROMQL_SERIES_END;

// ---------------------------------------------------------------------------------------------------------
// The grammar, driven by a seeded generator (one fast-check integer per query: cheap, and replayable).

const NAMES = [
  'train_loss',
  'train_step_total',
  'gpu_util',
  'latency_bucket',
  'up',
  'weird',
  'absent_metric',
  'ALERTS',
];
const LABELS = ['job_id', 'rank', 'gpu', 'le', 'job', 'instance', '__name__', 'x', 'tenant'];
const VALUES = ['j1', 'j2', '0', '1', '', 'node', '+Inf', 'a:1', 'é', 'x"y', '\\\\n'];
const REGEXES = [
  '.*',
  '.+',
  'j.*',
  'j1|j2',
  '(.*.*)*X',
  '(a|aa)*b',
  '[',
  '(?i)UP',
  '(?=x)',
  '\\\\',
  '\\\\Q.*\\\\E',
  '[[:alpha:]]+',
  '(?P<n>x)',
  '',
];
/**
 * Regular expressions that are costly to compile (RE2 expands a counted repetition: `a{1000}` takes
 * milliseconds): drawn rarely, so that they are tested without taking the fuzz's time.
 */
const COSTLY_REGEXES = ['a{1000}', 'a{1001,}', '(a{100}){10}'];
const DURATIONS = [
  '1ms',
  '1s',
  '15s',
  '1m',
  '5m',
  '1h',
  '90m',
  '1d',
  '30d',
  '1y',
  '0s',
  '1h30m',
  '2w',
  '100000d',
];
const NUMBERS = [
  '1',
  '0',
  '-1',
  '0.5',
  '1e308',
  '-1e308',
  '1e-320',
  'NaN',
  'Inf',
  '-Inf',
  '0x1F',
  '1_000',
  '3.14e+2',
  '.5',
  '5.',
  '9007199254740993',
];
const BINARY = [
  '+',
  '-',
  '*',
  '/',
  '%',
  '^',
  '==',
  '!=',
  '>',
  '<',
  '>=',
  '<=',
  'and',
  'or',
  'unless',
  'atan2',
];
const AGGREGATIONS = ['sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'group'];
const PARAM_AGGREGATIONS = ['topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio'];
const FUNCTION_NAMES = [...FUNCTIONS.keys(), 'no_such_function', 'rate_'];
const NOISE = '(){}[]",=~!+-*/%^<>@:.,0123456789 abcxyz_\\\'`\n\t#';

export class QueryGenerator {
  constructor(private readonly random: () => number) {}

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private duration(): string {
    return this.chance(0.8)
      ? this.pick(DURATIONS)
      : `${this.int(100_000)}${this.pick(['ms', 's', 'm', 'h', 'd', 'w', 'y'])}`;
  }

  private str(): string {
    const v = this.pick(VALUES);
    return this.pick([`"${v.replaceAll('"', '\\"')}"`, `'${v}'`, `\`${v}\``]);
  }

  private matcher(): string {
    const op = this.pick(['=', '!=', '=~', '!~']);
    const regex = this.chance(0.005) ? this.pick(COSTLY_REGEXES) : this.pick(REGEXES);
    const value = op.endsWith('~') ? `"${regex}"` : this.str();
    return `${this.pick(LABELS)}${op}${value}`;
  }

  private selector(): string {
    const matchers = Array.from({ length: this.int(3) }, () => this.matcher());
    const name = this.chance(0.85) ? this.pick(NAMES) : '';
    let s = name === '' || matchers.length > 0 || this.chance(0.3) ? `${name}{${matchers.join(',')}}` : name;
    if (s === '{}') s = this.chance(0.5) ? '{}' : `{__name__=~"${this.pick(REGEXES)}"}`;
    return s + this.modifiers();
  }

  private modifiers(): string {
    let m = '';
    if (this.chance(0.15)) m += ` offset ${this.chance(0.2) ? '-' : ''}${this.duration()}`;
    if (this.chance(0.08))
      m += ` @ ${this.pick([String(END / 1000), 'start()', 'end()', '0', '-1e10', '1e20'])}`;
    return m;
  }

  private range(inner: string): string {
    if (this.chance(0.5)) return `${inner}[${this.duration()}]`;
    return `(${inner})[${this.duration()}:${this.chance(0.2) ? '' : this.duration()}]${this.modifiers()}`;
  }

  expr(depth: number): string {
    if (depth <= 0) {
      const k = this.int(10);
      if (k < 6) return this.selector();
      if (k < 8) return this.pick(NUMBERS);
      if (k < 9) return this.str();
      return `time()`;
    }
    const k = this.int(12);
    const sub = () => this.expr(depth - 1 - this.int(2));
    switch (k) {
      case 0:
      case 1:
        return this.selector();
      case 2:
        return this.range(this.chance(0.6) ? this.selector() : sub());
      case 3:
      case 4: {
        const name = this.pick(FUNCTION_NAMES);
        const def = FUNCTIONS.get(name);
        // Mostly the right arity and argument kinds; sometimes anything.
        const args =
          def && this.chance(0.8)
            ? def.argTypes.map((t) => this.argOf(t, depth))
            : Array.from({ length: this.int(4) }, sub);
        return `${name}(${args.join(', ')})`;
      }
      case 5: {
        const grouping = this.chance(0.5)
          ? ` ${this.pick(['by', 'without'])} (${Array.from({ length: this.int(3) }, () => this.pick(LABELS)).join(', ')})`
          : '';
        if (this.chance(0.3)) {
          const param = this.pick([...NUMBERS, this.str(), sub()]);
          return `${this.pick(PARAM_AGGREGATIONS)}${grouping}(${param}, ${sub()})`;
        }
        return `${this.pick(AGGREGATIONS)}${grouping}(${sub()})`;
      }
      case 6:
      case 7: {
        const op = this.pick(BINARY);
        let mod = '';
        if (this.chance(0.2)) mod += ' bool';
        if (this.chance(0.3)) {
          mod += ` ${this.pick(['on', 'ignoring'])}(${Array.from({ length: this.int(3) }, () => this.pick(LABELS)).join(',')})`;
          if (this.chance(0.4))
            mod += ` ${this.pick(['group_left', 'group_right'])}(${this.chance(0.5) ? this.pick(LABELS) : ''})`;
        }
        return `${sub()} ${op}${mod} ${sub()}`;
      }
      case 8:
        return `-${sub()}`;
      case 9:
        return `(${sub()})`;
      case 10:
        return this.range(sub());
      default:
        return this.pick(NUMBERS);
    }
  }

  private argOf(type: string, depth: number): string {
    switch (type) {
      case 'scalar':
        return this.chance(0.7) ? this.pick(NUMBERS) : `scalar(${this.expr(depth - 2)})`;
      case 'string':
        return this.str();
      case 'matrix':
        return this.range(this.chance(0.7) ? this.selector() : this.expr(depth - 2));
      default:
        return this.expr(depth - 2);
    }
  }

  /** A generated query, mutated character by character now and then, or a deep nesting. */
  query(): string {
    const roll = this.random();
    let q = this.expr(1 + this.int(5));
    if (roll < 0.2) {
      for (let i = 1 + this.int(3); i > 0; i--) {
        const at = this.int(q.length + 1);
        const k = this.int(3);
        if (k === 0) q = q.slice(0, at) + NOISE[this.int(NOISE.length)]! + q.slice(at);
        else if (k === 1) q = q.slice(0, at) + q.slice(at + 1 + this.int(4));
        else q = q.slice(0, at) + q.slice(at, at + 1 + this.int(8)).repeat(2 + this.int(50)) + q.slice(at);
      }
    }
    return q;
  }

  /** Nesting past the parser's depth limit: parentheses, unary minus, calls, aggregations, long chains. */
  deep(): string {
    // Past the parser's depth limit (1000) by up to 20×; the parse is linear in the length, so longer only costs time.
    const n = this.pick([100, 1000, 5000, 20_000]);
    switch (this.int(6)) {
      case 0:
        return `${'('.repeat(n)}1${')'.repeat(n)}`;
      case 1:
        return `${'-'.repeat(n)}1`;
      case 2:
        return `${'abs('.repeat(n)}up${')'.repeat(n)}`;
      case 3:
        return Array.from({ length: n }, () => 'up').join(' + ');
      case 4:
        return `${'sum('.repeat(n)}up${')'.repeat(n)}`;
      default:
        return `up${'[5m:1m]'.repeat(Math.min(n, 20))}`;
    }
  }
}

export function queryOf(seed: number): string {
  return new QueryGenerator(prng(seed)).query();
}

export function deepQueryOf(seed: number): string {
  return new QueryGenerator(prng(seed)).deep();
}
