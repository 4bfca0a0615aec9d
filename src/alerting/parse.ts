/**
 * Small parsers shared by alerting configuration, the CLI and the detector test files: durations in the
 * configuration, label matchers (`severity="critical"`, `{a="b", c=~"d"}`) and series selectors.
 */
import { z } from 'zod';
import { parseDuration } from '../model/duration.js';
import { LabelMatcher, type MatchType } from '../model/labels.js';

/** A duration as Prometheus writes it (`90s`, `5m`) or a number of milliseconds. */
export const durationMs = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export interface SelectorPair {
  readonly name: string;
  readonly op: MatchType;
  readonly value: string;
}

/** Parses `name{a="b", c=~"d"}`, `{a="b"}` or `name`; throws an Error that says what it could not read. */
export function parseSelector(text: string): { name: string; pairs: SelectorPair[] } {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?$/s.exec(text.trim());
  if (!m) throw new Error(`cannot parse ${JSON.stringify(text)}: expected name{label="value", ...}`);
  const pairs: SelectorPair[] = [];
  let rest = (m[2] ?? '').trim();
  while (rest.length > 0) {
    const pm = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,\s*)?/.exec(rest);
    if (!pm) throw new Error(`cannot parse labels at ${JSON.stringify(rest)}`);
    pairs.push({ name: pm[1]!, op: pm[2] as MatchType, value: JSON.parse(`"${pm[3]!}"`) as string });
    rest = rest.slice(pm[0].length);
  }
  return { name: m[1] ?? '', pairs };
}

/** One Alertmanager-style matcher: `severity="critical"`, `alertname=~"GPU.*"`, `job_id!=x`. */
export function parseMatcher(s: string): LabelMatcher {
  const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/.exec(s);
  if (!m)
    throw new Error(
      `${JSON.stringify(s)} is not a matcher: expected name="value", name=~"regex", name!="value"`,
    );
  let value = m[3]!;
  if (value.startsWith('"')) {
    try {
      value = JSON.parse(value) as string;
    } catch {
      throw new Error(`${JSON.stringify(s)}: the value is not a valid quoted string`);
    }
  }
  return new LabelMatcher(m[2] as MatchType, m[1]!, value);
}

/** `{a="b", c=~"d"}` or a single matcher; the empty string is no matcher. */
export function parseMatcherList(text: string): LabelMatcher[] {
  const t = text.trim();
  if (t === '') return [];
  if (t.startsWith('{')) return parseSelector(t).pairs.map((p) => new LabelMatcher(p.op, p.name, p.value));
  return [parseMatcher(t)];
}

/** A matcher string in configuration, validated and compiled. */
export const matcherString = z.string().transform((s, ctx) => {
  try {
    return parseMatcher(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
