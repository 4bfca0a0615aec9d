/**
 * Label-matcher regexes over 100K label values: trainwatch's `LabelMatcher` (fast paths for literals,
 * alternations and prefixes; RE2 via re2js otherwise) against JavaScript's backtracking RegExp, for ordinary
 * PromQL matchers and for the adversarial `(.*.*)*X`. Prints a table (ms per 100K values, median of runs).
 *
 *   npx tsx bench/regex-matchers.ts [--values 100000] [--runs 5]
 *
 * The backtracking RegExp is not run over 100K values for the adversarial pattern (it would take hours): it
 * is timed on single values of growing length, which shows the exponential growth.
 */
import { parseArgs } from 'node:util';
import { RE2JS } from 're2js';
import { LabelMatcher } from '../src/model/labels.js';

const { values: args } = parseArgs({
  options: { values: { type: 'string', default: '100000' }, runs: { type: 'string', default: '5' } },
});
const N = Number(args.values);
const RUNS = Number(args.runs);

const jobIds: string[] = [];
const names: string[] = [];
const families = ['gpu_util', 'gpu_mem_used', 'train_loss', 'train_step', 'node_cpu', 'eval_acc', 'net_rx'];
for (let i = 0; i < N; i++) {
  jobIds.push(`job-${i}`);
  names.push(`${families[i % families.length]}_${i}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(values: readonly string[], test: (v: string) => boolean): { ms: number; hits: number } {
  const times: number[] = [];
  let hits = 0;
  for (let r = 0; r < RUNS; r++) {
    hits = 0;
    const t0 = performance.now();
    for (const v of values) if (test(v)) hits++;
    times.push(performance.now() - t0);
  }
  return { ms: median(times), hits };
}

const cases: { label: string; pattern: string; values: readonly string[] }[] = [
  { label: 'job_id=~"job-1.*"', pattern: 'job-1.*', values: jobIds },
  { label: '__name__=~"gpu_.*|train_.*"', pattern: 'gpu_.*|train_.*', values: names },
  { label: 'job_id=~"job-(1|2)[0-9]*"', pattern: 'job-(1|2)[0-9]*', values: jobIds },
  { label: '__name__=~"(?i)GPU_.*"', pattern: '(?i)GPU_.*', values: names },
  { label: '{__name__=~"(.*.*)*X"}', pattern: '(.*.*)*X', values: names },
];

const rows: string[][] = [];
for (const c of cases) {
  const matcher = new LabelMatcher('=~', 'x', c.pattern);
  const re2 = RE2JS.compile(c.pattern, RE2JS.DOTALL);
  const lm = time(c.values, (v) => matcher.matches(v));
  const r2 = time(c.values, (v) => re2.matches(v));
  let js = '—';
  if (!c.pattern.includes('(?i)') && !c.pattern.includes('*)*')) {
    const re = new RegExp(`^(?:${c.pattern})$`, 's');
    const t = time(c.values, (v) => re.test(v));
    if (t.hits !== lm.hits) throw new Error(`${c.label}: RegExp ${t.hits} hits, LabelMatcher ${lm.hits}`);
    js = t.ms.toFixed(1);
  }
  if (r2.hits !== lm.hits) throw new Error(`${c.label}: re2js ${r2.hits} hits, LabelMatcher ${lm.hits}`);
  rows.push([c.label, lm.ms.toFixed(1), r2.ms.toFixed(1), js, String(lm.hits)]);
}

console.log(`${N} label values, median of ${RUNS} runs, ms per pass over all values\n`);
console.log('| matcher | LabelMatcher | re2js alone | JS RegExp | matches |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| \`${r[0]}\` | ${r.slice(1).join(' | ')} |`);

// The adversarial pattern on one value of growing length with the backtracking engine.
console.log('\n`(.*.*)*X` on one value of n characters (no X), JS RegExp vs LabelMatcher, ms:\n');
console.log('| n | JS RegExp | LabelMatcher |');
console.log('| ---: | ---: | ---: |');
const bad = /^(?:(.*.*)*X)$/s;
const lmBad = new LabelMatcher('=~', 'x', '(.*.*)*X');
for (const n of [12, 14, 16, 18, 20]) {
  const v = 'a'.repeat(n);
  const t0 = performance.now();
  bad.test(v);
  const js = performance.now() - t0;
  const t1 = performance.now();
  lmBad.matches(v);
  const lm = performance.now() - t1;
  console.log(`| ${n} | ${js.toFixed(2)} | ${lm.toFixed(3)} |`);
  if (js > 3000) break;
}
