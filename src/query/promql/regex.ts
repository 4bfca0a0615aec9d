/**
 * PromQL regexes are Go RE2 syntax. Matchers and label_replace run them on RE2 itself (re2js: same syntax,
 * linear-time matching, see `LabelMatcher`). For code that needs a JavaScript RegExp of the same pattern,
 * this translates RE2 source into an equivalent JavaScript source (used with the `s` flag, as Prometheus 3 makes
 * `.` match newlines):
 * - inline flags `(?i)`, `(?i:...)`, `(?s)`, `(?-i)`: Node 20 has no inline modifiers, so case-insensitive
 *   parts are expanded (`a` → `[aA]`, `[a-c]` → `[a-cA-C]`);
 * - `\Q...\E` literals, `\A`, `\z`, POSIX classes `[[:alpha:]]`, named groups `(?P<n>...)`.
 * Anything JavaScript rejects afterwards is reported as an invalid regex, like RE2 would.
 */

import { RE2JS } from 're2js';

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

function escapeLiteral(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

function caseFold(ch: string): string {
  const lo = ch.toLowerCase();
  const up = ch.toUpperCase();
  if (lo === up || lo.length !== 1 || up.length !== 1) return escapeLiteral(ch);
  return `[${lo}${up}]`;
}

/** Translates RE2 source to JavaScript source; throws an Error naming the problem for invalid input. */
export function translateGoRegex(src: string): string {
  let out = '';
  let i = 0;
  // One frame per open group: the case-insensitivity in force when it opened, restored when it closes.
  const stack: boolean[] = [];
  let ci = false;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\\') {
      const e = src[i + 1];
      if (e === undefined) throw new Error('trailing backslash at end of expression');
      if (e === 'Q') {
        const endQ = src.indexOf('\\E', i + 2);
        const lit = src.slice(i + 2, endQ < 0 ? src.length : endQ);
        for (const ch of lit) out += ci ? caseFold(ch) : escapeLiteral(ch);
        i = endQ < 0 ? src.length : endQ + 2;
        continue;
      }
      if (e === 'A') {
        out += '^';
        i += 2;
        continue;
      }
      if (e === 'z') {
        out += '$';
        i += 2;
        continue;
      }
      if (e === 'C') throw new Error('invalid escape sequence: `\\C`');
      out += `\\${e}`;
      i += 2;
      continue;
    }
    if (c === '[') {
      const { js, end } = translateClass(src, i, ci);
      out += js;
      i = end;
      continue;
    }
    if (c === '(') {
      if (src[i + 1] === '?') {
        // Flags group, non-capturing group with flags, or named group.
        if (src[i + 2] === 'P' && src[i + 3] === '<') {
          stack.push(ci);
          out += '(?<';
          i += 4;
          continue;
        }
        if (src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') {
          stack.push(ci);
          out += '(?<';
          i += 3;
          continue;
        }
        const m = /^\(\?([imsU]*)(?:-([imsU]*))?(:|\))/.exec(src.slice(i));
        if (m) {
          let newCi: boolean = ci;
          if (m[1]!.includes('i')) newCi = true;
          if (m[2]?.includes('i')) newCi = false;
          if (m[3] === ')') {
            // (?i) applies to the rest of the enclosing group.
            ci = newCi;
            i += m[0].length;
            continue;
          }
          stack.push(ci);
          ci = newCi;
          out += '(?:';
          i += m[0].length;
          continue;
        }
        throw new Error(`invalid or unsupported Perl syntax: \`${src.slice(i, i + 3)}\``);
      }
      stack.push(ci);
      out += '(';
      i++;
      continue;
    }
    if (c === ')') {
      if (stack.length === 0) throw new Error(`unexpected ): \`${src}\``);
      ci = stack.pop()!;
      out += ')';
      i++;
      continue;
    }
    if (ci && /[a-zA-Z]/.test(c)) {
      out += caseFold(c);
      i++;
      continue;
    }
    out += c;
    i++;
  }
  if (stack.length > 0) throw new Error(`missing closing ): \`${src}\``);
  return out;
}

function translateClass(src: string, start: number, ci: boolean): { js: string; end: number } {
  let i = start + 1;
  let out = '[';
  if (src[i] === '^') {
    out += '^';
    i++;
  }
  const extra: string[] = [];
  let first = true;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ']' && !first) {
      if (ci) out += extra.join('');
      return { js: `${out}]`, end: i + 1 };
    }
    first = false;
    if (c === '[' && src[i + 1] === ':') {
      const close = src.indexOf(':]', i + 2);
      if (close > 0) {
        let name = src.slice(i + 2, close);
        const negate = name.startsWith('^');
        if (negate) name = name.slice(1);
        const cls = POSIX_CLASSES[name];
        if (!cls) throw new Error(`invalid character class range: \`[:${name}:]\``);
        if (negate) throw new Error('negated POSIX classes are not supported');
        out += cls;
        i = close + 2;
        continue;
      }
    }
    if (c === '\\') {
      const e = src[i + 1];
      if (e === undefined) throw new Error('missing closing ]');
      out += `\\${e}`;
      i += 2;
      continue;
    }
    if (c === '[') {
      out += '\\[';
      i++;
      continue;
    }
    // A range a-z, or a single character.
    if (src[i + 1] === '-' && src[i + 2] !== undefined && src[i + 2] !== ']') {
      const lo = c;
      const hi = src[i + 2]!;
      out += `${lo}-${hi === '\\' ? src.slice(i + 2, i + 4) : hi}`;
      if (ci) {
        if (/[a-z]/.test(lo) && /[a-z]/.test(hi)) extra.push(`${lo.toUpperCase()}-${hi.toUpperCase()}`);
        else if (/[A-Z]/.test(lo) && /[A-Z]/.test(hi)) extra.push(`${lo.toLowerCase()}-${hi.toLowerCase()}`);
      }
      i += hi === '\\' ? 4 : 3;
      continue;
    }
    out += c;
    if (ci && /[a-zA-Z]/.test(c)) extra.push(c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());
    i++;
  }
  throw new Error(`missing closing ]: \`${src.slice(start)}\``);
}

/**
 * Checks an RE2 pattern with RE2 itself (re2js), so a bad pattern is a parse error with RE2's message rather
 * than a failure inside storage; returns the pattern unchanged, which is what `LabelMatcher` takes.
 */
export function compileGoRegex(src: string): string {
  RE2JS.compile(src, RE2JS.DOTALL);
  return src;
}

/** An anchored RE2 regex with capture groups, for label_replace: linear-time matching, as in Prometheus. */
export function compileAnchoredRe2(src: string): RE2JS {
  return RE2JS.compile(src, RE2JS.DOTALL);
}

/**
 * The whole-value match of `re` against `value` as a RegExpExecArray-like array (group 0 first, unmatched
 * groups undefined, named groups in `groups`), for {@link expandTemplate}; null when it does not match.
 */
export function execAnchoredRe2(re: RE2JS, value: string): RegExpExecArray | null {
  const m = re.matcher(value);
  if (!m.matches()) return null;
  const out: string[] = [];
  for (let i = 0; i <= m.groupCount(); i++) out.push(m.group(i) ?? (undefined as unknown as string));
  const named = re.namedGroups();
  const groups: Record<string, string> = {};
  for (const [name, index] of Object.entries(named)) groups[name] = m.group(index) ?? '';
  return Object.assign(out, { index: 0, input: value, groups }) as RegExpExecArray;
}

/**
 * Go's regexp.Expand for label_replace: `$1`, `${1}`, `$name`, `${name}`, `$$`. A name is the longest run of
 * letters, digits and underscores, so `$1x` names group "1x" (empty when absent), as in Go.
 */
export function expandTemplate(template: string, match: RegExpExecArray): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c !== '$') {
      out += c;
      continue;
    }
    const next = template[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    let name: string;
    let end: number;
    if (next === '{') {
      const close = template.indexOf('}', i + 2);
      if (close < 0) {
        out += c;
        continue;
      }
      name = template.slice(i + 2, close);
      end = close;
      if (!/^[a-zA-Z0-9_]+$/.test(name)) {
        out += c;
        continue;
      }
    } else {
      const m = /^[a-zA-Z0-9_]+/.exec(template.slice(i + 1));
      if (!m) {
        out += c;
        continue;
      }
      name = m[0];
      end = i + m[0].length;
    }
    if (/^[0-9]+$/.test(name)) {
      const n = Number(name);
      out += n < match.length ? (match[n] ?? '') : '';
    } else {
      out += match.groups?.[name] ?? '';
    }
    i = end;
  }
  return out;
}
