/**
 * The part of Go's text/template that Prometheus alerting rules use in labels and annotations:
 * `{{ $labels.instance }}`, `{{ $value }}`, `{{ $value | humanize }}`, `{{ humanizePercentage $value }}`,
 * `{{ printf "%.2f" $value }}`, `{{ $externalURL }}`, `{{- ... -}}` trimming, with Prometheus's functions
 * (humanize, humanize1024, humanizePercentage, humanizeDuration, humanizeTimestamp, printf, toUpper,
 * toLower, title, reReplaceAll). Control actions (`if`, `range`, `with`) are reported as unsupported, so
 * `rules check` says so instead of failing at evaluation.
 *
 * Compiled once per rule; rendering is a walk over the compiled parts.
 */

export interface TemplateData {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly externalLabels?: Readonly<Record<string, string>>;
  readonly externalURL?: string;
}

type Operand =
  | { kind: 'string'; v: string }
  | { kind: 'number'; v: number }
  | { kind: 'var'; path: string[] };

interface Command {
  readonly fn: string | undefined;
  readonly args: Operand[];
}

type Part = { kind: 'text'; v: string } | { kind: 'action'; pipeline: Command[] };

export class TemplateError extends Error {}

const FUNCTIONS: Record<string, (...args: unknown[]) => unknown> = {
  humanize: (v) => humanize(Number(v)),
  humanize1024: (v) => humanize1024(Number(v)),
  humanizePercentage: (v) => `${goG(Number(v) * 100, 4)}%`,
  humanizeDuration: (v) => humanizeDuration(Number(v)),
  humanizeTimestamp: (v) =>
    new Date(Number(v) * 1000).toISOString().replace('T', ' ').replace('Z', ' +0000 UTC'),
  printf: (fmt, ...args) => sprintf(String(fmt), args),
  toUpper: (s) => String(s).toUpperCase(),
  toLower: (s) => String(s).toLowerCase(),
  title: (s) => String(s).replace(/\b\w/g, (c) => c.toUpperCase()),
  reReplaceAll: (re, repl, s) =>
    String(s).replace(new RegExp(String(re), 'g'), String(repl).replace(/\$(\d)/g, '$$$1')),
  stripPort: (s) => String(s).replace(/:\d+$/, ''),
};

export class Template {
  private readonly parts: Part[];

  /** Parses `text`; throws {@link TemplateError} with Go's message shape: `template: NAME:LINE: ...`. */
  constructor(
    readonly name: string,
    readonly text: string,
  ) {
    this.parts = parse(name, text);
  }

  render(data: TemplateData): string {
    let out = '';
    for (const p of this.parts)
      out += p.kind === 'text' ? p.v : stringify(this.evalPipeline(p.pipeline, data));
    return out;
  }

  private evalPipeline(pipeline: Command[], data: TemplateData): unknown {
    let prev: unknown;
    pipeline.forEach((cmd, i) => {
      const args = cmd.args.map((a) => operand(a, data));
      if (i > 0) args.push(prev);
      if (cmd.fn === undefined) prev = args[0];
      else prev = FUNCTIONS[cmd.fn]!(...args);
    });
    return prev;
  }
}

function stringify(v: unknown): string {
  if (typeof v === 'number') return goG(v, -1);
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'object')
    return `map[${Object.entries(v)
      .map(([k, x]) => `${k}:${x}`)
      .join(' ')}]`;
  return String(v);
}

function operand(o: Operand, data: TemplateData): unknown {
  if (o.kind !== 'var') return o.v;
  const [root, ...rest] = o.path;
  let v: unknown;
  switch (root) {
    case '$labels':
    case '.Labels':
      v = data.labels;
      break;
    case '$value':
    case '.Value':
      v = data.value;
      break;
    case '$externalLabels':
    case '.ExternalLabels':
      v = data.externalLabels ?? {};
      break;
    case '$externalURL':
    case '.ExternalURL':
      v = data.externalURL ?? '';
      break;
  }
  for (const key of rest) v = v && typeof v === 'object' ? ((v as Record<string, unknown>)[key] ?? '') : '';
  return v;
}

const VARIABLES = new Set([
  '$labels',
  '$value',
  '$externalLabels',
  '$externalURL',
  '.Labels',
  '.Value',
  '.ExternalLabels',
  '.ExternalURL',
]);
const UNSUPPORTED = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'query',
  'first',
]);

function parse(name: string, text: string): Part[] {
  const parts: Part[] = [];
  let i = 0;
  let pendingTrim = false;
  const line = (pos: number) => text.slice(0, pos).split('\n').length;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    let chunk = open < 0 ? text.slice(i) : text.slice(i, open);
    if (pendingTrim) chunk = chunk.replace(/^\s+/, '');
    pendingTrim = false;
    if (open < 0) {
      if (chunk) parts.push({ kind: 'text', v: chunk });
      break;
    }
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`template: ${name}:${line(open)}: unclosed action`);
    let inner = text.slice(open + 2, close);
    if (inner.startsWith('- ') || inner === '-') {
      chunk = chunk.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    if (inner.endsWith(' -')) {
      pendingTrim = true;
      inner = inner.slice(0, -1);
    }
    if (chunk) parts.push({ kind: 'text', v: chunk });
    inner = inner.trim();
    if (inner.startsWith('/*')) {
      i = close + 2;
      continue;
    }
    if (inner === '') throw new TemplateError(`template: ${name}:${line(open)}: missing value for command`);
    parts.push({ kind: 'action', pipeline: parsePipeline(name, line(open), inner) });
    i = close + 2;
  }
  return parts;
}

function tokenize(name: string, ln: number, s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      i++;
    } else if (c === '"' || c === '`') {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === '\\' && c === '"' ? 2 : 1;
      if (j >= s.length) throw new TemplateError(`template: ${name}:${ln}: unterminated quoted string`);
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (c === '|' || c === '(' || c === ')') {
      out.push(c);
      i++;
    } else {
      let j = i;
      while (j < s.length && !' \t\n|()"'.includes(s[j]!)) j++;
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parsePipeline(name: string, ln: number, s: string): Command[] {
  const tokens = tokenize(name, ln, s);
  if (tokens.includes('(') || tokens.includes(')'))
    throw new TemplateError(
      `template: ${name}:${ln}: parenthesised pipelines are not supported by trainwatch`,
    );
  const commands: Command[] = [];
  let cur: string[] = [];
  const flush = () => {
    if (cur.length === 0) throw new TemplateError(`template: ${name}:${ln}: missing command`);
    const [head, ...rest] = cur;
    if (UNSUPPORTED.has(head!) || (head!.startsWith('$') && rest[0] === ':='))
      throw new TemplateError(
        `template: ${name}:${ln}: "${head}" is not supported by trainwatch's templates`,
      );
    if (FUNCTIONS[head!]) commands.push({ fn: head, args: rest.map((t) => toOperand(name, ln, t)) });
    else if (/^[a-zA-Z]\w*$/.test(head!))
      throw new TemplateError(`template: ${name}:${ln}: function "${head}" not defined`);
    else {
      if (rest.length > 0)
        throw new TemplateError(`template: ${name}:${ln}: can't give argument to non-function ${head}`);
      commands.push({ fn: undefined, args: [toOperand(name, ln, head!)] });
    }
    cur = [];
  };
  for (const t of tokens) {
    if (t === '|') flush();
    else cur.push(t);
  }
  flush();
  return commands;
}

function toOperand(name: string, ln: number, t: string): Operand {
  if (t.startsWith('"')) return { kind: 'string', v: JSON.parse(t) as string };
  if (t.startsWith('`')) return { kind: 'string', v: t.slice(1, -1) };
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t)) return { kind: 'number', v: Number(t) };
  const path = t.startsWith('.')
    ? ['.' + t.slice(1).split('.')[0]!, ...t.slice(1).split('.').slice(1)]
    : t.split('.');
  if (!VARIABLES.has(path[0]!))
    throw new TemplateError(`template: ${name}:${ln}: undefined variable "${path[0]}"`);
  return { kind: 'var', path };
}

/** Go's `%g` with `prec` significant digits (-1: shortest), as Prometheus prints values. */
export function goG(v: number, prec: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  if (v === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(v)));
  const p = prec < 0 ? 21 : prec;
  if (exp < -4 || exp >= (prec < 0 ? 21 : p)) {
    const s = prec < 0 ? v.toExponential() : v.toExponential(Math.max(0, p - 1));
    const [m, e] = s.split('e');
    const mant = m!.includes('.') ? m!.replace(/\.?0+$/, '') : m!;
    const en = Number(e);
    return `${mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  if (prec < 0) return String(v);
  const s = v.toPrecision(p);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

const SI_BIG = ['', 'k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
const SI_SMALL = ['', 'm', 'u', 'n', 'p', 'f', 'a', 'z', 'y'];

export function humanize(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return goG(v, 4);
  if (Math.abs(v) >= 1) {
    let i = 0;
    while (Math.abs(v) >= 1000 && i < SI_BIG.length - 1) {
      v /= 1000;
      i++;
    }
    return `${goG(v, 4)}${SI_BIG[i]}`;
  }
  let i = 0;
  while (Math.abs(v) < 1 && i < SI_SMALL.length - 1) {
    v *= 1000;
    i++;
  }
  return `${goG(v, 4)}${SI_SMALL[i]}`;
}

export function humanize1024(v: number): string {
  if (Math.abs(v) <= 1 || !Number.isFinite(v)) return goG(v, 4);
  const units = ['', 'ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'Zi', 'Yi'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${goG(v, 4)}${units[i]}`;
}

export function humanizeDuration(v: number): string {
  if (!Number.isFinite(v)) return goG(v, 4);
  if (v === 0) return '0s';
  if (Math.abs(v) >= 1) {
    const sign = v < 0 ? '-' : '';
    let s = Math.abs(v);
    const days = Math.floor(s / 86400);
    const hours = Math.floor((s % 86400) / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    s = s % 60;
    if (days) return `${sign}${days}d ${hours}h ${minutes}m ${goG(s, 4)}s`;
    if (hours) return `${sign}${hours}h ${minutes}m ${goG(s, 4)}s`;
    if (minutes) return `${sign}${minutes}m ${goG(s, 4)}s`;
    return `${sign}${goG(s, 4)}s`;
  }
  let i = 0;
  const units = ['s', 'ms', 'us', 'ns', 'ps'];
  while (Math.abs(v) < 1 && i < units.length - 1) {
    v *= 1000;
    i++;
  }
  return `${goG(v, 4)}${units[i]}`;
}

/** printf with the verbs rules use: %s %v %d %f %.Nf %g %e %q %%. */
export function sprintf(fmt: string, args: unknown[]): string {
  let k = 0;
  return fmt.replace(
    /%(-?\d*)(?:\.(\d+))?([sdfgevq%])/g,
    (_m, width: string, precision: string | undefined, verb: string) => {
      if (verb === '%') return '%';
      const a = args[k++];
      let out: string;
      switch (verb) {
        case 'd':
          out = String(Math.trunc(Number(a)));
          break;
        case 'f':
          out = Number(a).toFixed(precision === undefined ? 6 : Number(precision));
          break;
        case 'e':
          out = goG(Number(a), precision === undefined ? 7 : Number(precision) + 1);
          break;
        case 'g':
          out = goG(Number(a), precision === undefined ? -1 : Number(precision));
          break;
        case 'q':
          out = JSON.stringify(String(a));
          break;
        default:
          out = typeof a === 'number' ? goG(a, -1) : String(a ?? '');
      }
      const w = Number(width);
      if (w > 0 && out.length < w) out = out.padStart(w);
      if (w < 0 && out.length < -w) out = out.padEnd(-w);
      return out;
    },
  );
}
