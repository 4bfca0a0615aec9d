/**
 * Detector semantics as data (STYLE.md 10): a `.test` file loads series in the PromQL test language's
 * notation, feeds them to the detector engine in time order, and states which alerts must (or must not) be
 * pending or firing at given moments. One runner for every file in `testdata/detectors/`.
 *
 * ```
 * # An idle GPU of a job that keeps training.
 * config
 *   waste: {for: 90s}
 * load 15s
 *   gpu_utilization_ratio{job_id="j1",node_id="n1",gpu="0"} 0.95x20 0.05x8
 * event finish j1 at 20m          # job events: start | finish [status]
 * tick 15s                        # also run the wall-clock side (whole-job absence) every 15 s
 * expect alert GPUIdle{node_id="n1"} pending at 5m30s
 * expect alert GPUIdle{node_id="n1"} firing at 7m
 * expect alert GPUMemoryLeak{gpu="0"} firing at 5m value <= 900
 * expect alert TrainingStalled firing at 7m evidence gpus_busy   # its `evidence` annotation contains this
 * expect alert GPUIdle resolved at 21m
 * expect no alert TrainingStalled at 7m
 * expect no alert TrainingStalled        # never pending or firing
 * expect no alerts                       # nothing ever pending or firing
 * ```
 *
 * Points: `1 2 3`, `a+bxn` (n+1 values from a, step b), `a-bxn`, `axn` (a, n+1 times), `_` (no sample),
 * `_xn` (n missing), `NaN`, `Inf`, `-Inf`, `stale`. Times in `at` are offsets from the first sample (0).
 */
import { parse as parseYaml } from 'yaml';
import { type Alert, type AlertChange, parseSelector, type SelectorPair } from '../../alerting/contract.js';
import { SeriesBatchBuilder, STALE_NAN } from '../../model/batch.js';
import { parseDuration } from '../../model/duration.js';
import type { JobEvent } from '../../model/job.js';
import { LabelMatcher, type LabelSet, labelsKey } from '../../model/labels.js';
import { DetectorSettings, detectorsConfigSchema } from './config.js';
import { DetectorEngine } from './engine.js';

/** Sample times of test files start here (a real epoch time, so nothing mistakes them for "unset"). */
export const TEST_EPOCH_MS = Date.UTC(2025, 0, 1);
export const TEST_TENANT = 'default';

type Expectation =
  | {
      kind: 'state';
      line: number;
      name: string;
      matchers: LabelMatcher[];
      state: 'pending' | 'firing' | 'resolved';
      at: number;
      value?: { op: string; v: number };
      /** The alert's `evidence` annotation must contain this. */
      evidence?: string;
    }
  | { kind: 'none-at'; line: number; name: string; matchers: LabelMatcher[]; at: number }
  | { kind: 'never'; line: number; name: string; matchers: LabelMatcher[] }
  | { kind: 'no-alerts'; line: number };

export interface DetectorTestFile {
  readonly config: unknown;
  /** Points as (offset ms, value); `'stale'` is the staleness marker, kept out of plain arrays (NaN payloads). */
  readonly series: { labels: LabelSet; points: [number, number | 'stale'][] }[];
  readonly events: { at: number; event: JobEvent }[];
  readonly tickMs: number | undefined;
  readonly expectations: Expectation[];
}

export class TestFileError extends Error {}

function fail(line: number, msg: string): never {
  throw new TestFileError(`line ${line}: ${msg}`);
}

/** Parses `name{a="b", c=~"d"}` into a label set (for `load`) or matchers (for `expect`). */
function parseSeriesSelector(text: string, line: number): { name: string; pairs: SelectorPair[] } {
  try {
    return parseSelector(text);
  } catch (err) {
    fail(line, (err as Error).message);
  }
}

function parseNumber(s: string, line: number): number {
  if (s === 'NaN') return Number.NaN;
  if (s === 'Inf' || s === '+Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  const n = Number(s);
  if (s === '' || Number.isNaN(n)) fail(line, `${JSON.stringify(s)} is not a number`);
  return n;
}

/** Expands the points notation into values; `undefined` is a missing sample, `'stale'` the staleness marker. */
export function expandPoints(text: string, line: number): (number | 'stale' | undefined)[] {
  const out: (number | 'stale' | undefined)[] = [];
  for (const tok of text.trim().split(/\s+/)) {
    if (tok === '') continue;
    if (tok === 'stale') {
      out.push('stale');
      continue;
    }
    if (tok === '_') {
      out.push(undefined);
      continue;
    }
    const blank = /^_x(\d+)$/.exec(tok);
    if (blank) {
      for (let i = 0; i < Number(blank[1]); i++) out.push(undefined);
      continue;
    }
    const rep = /^(.+?)(?:([+-])([0-9.]+(?:e[0-9]+)?))?x(\d+)$/.exec(tok);
    if (rep) {
      const start = parseNumber(rep[1]!, line);
      const step = rep[3] === undefined ? 0 : (rep[2] === '-' ? -1 : 1) * Number(rep[3]);
      for (let i = 0; i <= Number(rep[4]); i++) out.push(start + i * step);
      continue;
    }
    out.push(parseNumber(tok, line));
  }
  return out;
}

function matchers(pairs: SelectorPair[]): LabelMatcher[] {
  return pairs.map((p) => new LabelMatcher(p.op, p.name, p.value));
}

export function parseDetectorTest(text: string): DetectorTestFile {
  const lines = text.split('\n');
  const series = new Map<string, { labels: LabelSet; points: [number, number | 'stale'][] }>();
  const events: { at: number; event: JobEvent }[] = [];
  const expectations: Expectation[] = [];
  let config: unknown = {};
  let tickMs: number | undefined;
  let i = 0;
  const indented = (l: string) => /^\s+\S/.test(l);
  while (i < lines.length) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    const line = raw.replace(/\s+#.*$/, '').trimEnd();
    i++;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    if (indented(line)) fail(lineNo, `unexpected indented line ${JSON.stringify(line.trim())}`);
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === 'config') {
      const block: string[] = [];
      while (i < lines.length && (indented(lines[i]!) || lines[i]!.trim() === '')) block.push(lines[i++]!);
      try {
        config = parseYaml(dedent(block)) ?? {};
      } catch (err) {
        fail(lineNo, `config block is not valid YAML: ${(err as Error).message}`);
      }
    } else if (cmd === 'load') {
      const intervalMs = parseDuration(args[0] ?? fail(lineNo, 'load needs an interval, e.g. load 15s'));
      while (i < lines.length && (indented(lines[i]!) || lines[i]!.trim() === '')) {
        const l = lines[i]!.replace(/\s+#.*$/, '').trim();
        const n = i + 1;
        i++;
        if (l === '' || l.startsWith('#')) continue;
        const split = l.lastIndexOf('}');
        const sel = split >= 0 ? l.slice(0, split + 1) : l.split(/\s+/)[0]!;
        const pointsText = l.slice(sel.length);
        const { name, pairs } = parseSeriesSelector(sel, n);
        if (!name) fail(n, 'a loaded series needs a metric name');
        const labels: Record<string, string> = { __name__: name };
        for (const p of pairs) {
          if (p.op !== '=') fail(n, 'loaded series take label="value" pairs only');
          labels[p.name] = p.value;
        }
        const key = labelsKey(labels);
        const s = series.get(key) ?? { labels, points: [] };
        expandPoints(pointsText, n).forEach((v, k) => {
          if (v !== undefined) s.points.push([k * intervalMs, v]);
        });
        series.set(key, s);
      }
    } else if (cmd === 'event') {
      // event <start|finish> <job_id> at <time> [status]
      const [kind, jobId, atWord, at, status] = args;
      if ((kind !== 'start' && kind !== 'finish') || !jobId || atWord !== 'at' || !at)
        fail(lineNo, 'expected: event start|finish <job_id> at <time> [completed|failed]');
      const atMs = parseDuration(at);
      events.push({
        at: atMs,
        event: {
          kind,
          jobId,
          timeMs: TEST_EPOCH_MS + atMs,
          ...(status ? { status: status as 'completed' | 'failed' } : {}),
        },
      });
    } else if (cmd === 'tick') {
      tickMs = parseDuration(args[0] ?? fail(lineNo, 'tick needs an interval'));
    } else if (cmd === 'expect') {
      expectations.push(parseExpect(args.join(' '), lineNo));
    } else {
      fail(lineNo, `unknown command ${JSON.stringify(cmd)} (config, load, event, tick, expect)`);
    }
  }
  return { config, series: [...series.values()], events, tickMs, expectations };
}

function parseExpect(text: string, line: number): Expectation {
  if (text === 'no alerts') return { kind: 'no-alerts', line };
  let m = /^no alert (\S+?(?:\{.*\})?)(?: at (\S+))?$/.exec(text);
  if (m) {
    const { name, pairs } = parseSeriesSelector(m[1]!, line);
    if (m[2] === undefined) return { kind: 'never', line, name, matchers: matchers(pairs) };
    return { kind: 'none-at', line, name, matchers: matchers(pairs), at: parseDuration(m[2]) };
  }
  m =
    /^alert (\S+?(?:\{.*\})?) (pending|firing|resolved) at (\S+)(?: value (<=|>=|<|>|==) (\S+))?(?: evidence (\S+))?$/.exec(
      text,
    );
  if (m) {
    const { name, pairs } = parseSeriesSelector(m[1]!, line);
    return {
      kind: 'state',
      line,
      name,
      matchers: matchers(pairs),
      state: m[2] as 'pending' | 'firing' | 'resolved',
      at: parseDuration(m[3]!),
      ...(m[4] ? { value: { op: m[4], v: Number(m[5]) } } : {}),
      ...(m[6] ? { evidence: m[6] } : {}),
    };
  }
  fail(
    line,
    `cannot parse expectation ${JSON.stringify(text)}: expected "alert NAME{...} pending|firing|resolved at T [value OP N] [evidence TEXT]", "no alert NAME{...} [at T]" or "no alerts"`,
  );
}

function dedent(block: string[]): string {
  const nonEmpty = block.filter((l) => l.trim() !== '');
  const indent = Math.min(...nonEmpty.map((l) => /^\s*/.exec(l)![0].length));
  return block.map((l) => l.slice(indent)).join('\n');
}

interface Change {
  readonly t: number;
  /** `value`: only the value changed (the state did not). */
  readonly change: AlertChange | 'value';
  readonly alert: Alert;
}

export interface DetectorTestResult {
  readonly failures: string[];
  /** Every change, for failure messages: `t=7m firing GPUIdle{...}`. */
  readonly timeline: string[];
}

/** Runs a parsed test file and checks its expectations. */
export function runDetectorTest(file: DetectorTestFile): DetectorTestResult {
  const settings = new DetectorSettings(detectorsConfigSchema.parse(file.config ?? {}));
  const changes = new Map<string, Change[]>();
  const engine = new DetectorEngine(settings, {
    transition(alert, change) {
      const list = changes.get(alert.fingerprint) ?? [];
      list.push({
        t:
          (change === 'resolved' || change === 'dropped'
            ? alert.resolvedAtMs!
            : change === 'firing'
              ? alert.firingAtMs!
              : alert.activeAtMs) - TEST_EPOCH_MS,
        change,
        alert,
      });
      changes.set(alert.fingerprint, list);
    },
    value(alert, atMs) {
      changes.get(alert.fingerprint)?.push({ t: atMs - TEST_EPOCH_MS, change: 'value', alert });
    },
  });
  const times = new Set<number>();
  for (const s of file.series) for (const [t] of s.points) times.add(t);
  for (const e of file.events) times.add(e.at);
  let end = Math.max(0, ...times);
  for (const x of file.expectations) if ('at' in x) end = Math.max(end, x.at);
  if (file.tickMs) for (let t = 0; t <= end; t += file.tickMs) times.add(t);
  const cursor = file.series.map(() => 0);
  const sorted = file.series.map((s) => [...s.points].sort((a, b) => a[0] - b[0]));
  for (const t of [...times].sort((a, b) => a - b)) {
    const b = new SeriesBatchBuilder();
    sorted.forEach((points, k) => {
      let started = false;
      while (cursor[k]! < points.length && points[cursor[k]!]![0] === t) {
        if (!started) {
          b.addSeries(file.series[k]!.labels);
          started = true;
        }
        const v = points[cursor[k]!]![1];
        b.add(TEST_EPOCH_MS + t, v === 'stale' ? STALE_NAN : v);
        cursor[k]!++;
      }
    });
    const batch = b.build();
    // The wall clock moves first, then what arrives at that moment is processed (as in the processor).
    if (file.tickMs && t % file.tickMs === 0) engine.tick(TEST_EPOCH_MS + t, true);
    if (batch.sampleCount > 0) engine.observe(TEST_TENANT, batch);
    const evs = file.events.filter((e) => e.at === t).map((e) => e.event);
    if (evs.length) engine.observeEvents(TEST_TENANT, evs);
  }

  const stateAt = (list: Change[], at: number): 'pending' | 'firing' | 'inactive' => {
    let st: 'pending' | 'firing' | 'inactive' = 'inactive';
    for (const c of list) {
      if (c.t > at) break;
      if (c.change === 'value') continue;
      st = c.change === 'pending' ? 'pending' : c.change === 'firing' ? 'firing' : 'inactive';
    }
    return st;
  };
  const valueAt = (list: Change[], at: number): number | undefined => {
    let v: number | undefined;
    for (const c of list) if (c.t <= at) v = c.alert.value;
    return v;
  };
  const evidenceAt = (list: Change[], at: number): string | undefined => {
    let e: string | undefined;
    for (const c of list) if (c.t <= at && c.change !== 'value') e = c.alert.annotations.evidence;
    return e;
  };
  const selected = (name: string, ms: LabelMatcher[]) =>
    [...changes.values()].filter(
      (list) => list[0]!.alert.name === name && ms.every((m) => m.matches(list[0]!.alert.labels[m.name])),
    );
  const failures: string[] = [];
  for (const x of file.expectations) {
    switch (x.kind) {
      case 'no-alerts':
        if (changes.size > 0) failures.push(`line ${x.line}: expected no alerts, got ${changes.size}`);
        break;
      case 'never':
        if (selected(x.name, x.matchers).length > 0)
          failures.push(`line ${x.line}: expected no alert ${x.name} at any time, but one was raised`);
        break;
      case 'none-at': {
        const bad = selected(x.name, x.matchers).filter((l) => stateAt(l, x.at) !== 'inactive');
        if (bad.length > 0)
          failures.push(
            `line ${x.line}: expected no alert ${x.name} at ${fmt(x.at)}, but ${bad.length} active`,
          );
        break;
      }
      case 'state': {
        const lists = selected(x.name, x.matchers);
        const ok = lists.some((l) => {
          const st = stateAt(l, x.at);
          if (x.state === 'resolved')
            return st === 'inactive' && l.some((c) => c.t <= x.at && c.change === 'resolved');
          if (st !== x.state) return false;
          if (x.evidence !== undefined && !(evidenceAt(l, x.at) ?? '').includes(x.evidence)) return false;
          if (!x.value) return true;
          const v = valueAt(l, x.at);
          return v !== undefined && compareOp(v, x.value.op, x.value.v);
        });
        if (!ok) {
          const seen =
            lists
              .map((l) => `${stateAt(l, x.at)} (value ${valueAt(l, x.at)}, evidence ${evidenceAt(l, x.at)})`)
              .join(', ') || 'none';
          failures.push(
            `line ${x.line}: expected alert ${x.name} ${x.state} at ${fmt(x.at)}${x.value ? ` with value ${x.value.op} ${x.value.v}` : ''}${x.evidence ? ` with evidence ${x.evidence}` : ''}; matching alerts there: ${seen}`,
          );
        }
        break;
      }
    }
  }
  const timeline: string[] = [];
  for (const list of changes.values())
    for (const c of list)
      if (c.change !== 'value')
        timeline.push(
          `t=${fmt(c.t)} ${c.change} ${c.alert.name}${JSON.stringify(c.alert.labels)} value=${c.alert.value}`,
        );
  return { failures, timeline };
}

function compareOp(a: number, op: string, b: number): boolean {
  switch (op) {
    case '<=':
      return a <= b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '>':
      return a > b;
    default:
      return a === b;
  }
}

function fmt(ms: number): string {
  const s = ms / 1000;
  return s % 60 === 0 ? `${s / 60}m` : `${s}s`;
}
