/**
 * Scores the streaming detectors on the scenario library: every scenario runs through the real detector engine
 * in-process (each job in an engine of its own, in simulated time, as bench/detectors.ts feeds the simulator),
 * and its firing alerts are matched against the scenario's ground truth.
 *
 *   npx tsx bench/detection/score.ts [--quick] [--per-kind N] [--split train|heldout] [--kinds a,b] [--out F]
 *                                    [--json F]   (every run's judged firings, for tuning on the train split)
 *   npm run bench -- --scenario detectors [--quick]      (also runs the simulator figures of bench/detectors.ts)
 *
 * Matching, per run:
 * - clean run: every firing is a false alarm;
 * - incident run: a firing before the onset is a false alarm; after the onset, an alert of the kind's
 *   `alerts` is a hit if it names the incident's place or no place, and a false alarm if it names another
 *   place; one of its `symptoms` is neither; anything else is a false alarm;
 * - alerts in {@link INFORMATIONAL_ALERTS} are ignored (they report facts, not incidents).
 *
 * Per kind: recall (runs with a hit), precision (hits ÷ (hits + false alarms) over its runs), false alarms per
 * job-hour (clean kinds), median and p90 delay from the onset to the first hit's firing, the same ÷ the
 * scenario's stated minimum, and how often a located incident's place was named by a hit. Totals weight every
 * kind equally. Train and held-out are reported apart: tune on train, never on held-out.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Alert } from '../../src/alerting/notifier.js';
import type { AlertChange } from '../../src/alerting/tracker.js';
import type { LabelSet } from '../../src/model/labels.js';
import { DetectorEngine, DetectorSettings, detectorsConfigSchema } from '../../src/processor/index.js';
import { ALL_KINDS, buildLibrary, type LibraryOptions } from './library.js';
import type { Category, Frame, GroundTruth, Place, Scenario, Split } from './types.js';
import { SPLITS } from './types.js';

const TENANT = 'default';

/** Alerts that state a fact rather than an incident: not scored. */
export const INFORMATIONAL_ALERTS: readonly string[] = ['AccuracyPlateau'];

/** One firing of an alert (an alert that fires, resolves and fires again counts twice). */
export interface Firing {
  readonly name: string;
  readonly labels: LabelSet;
  readonly atMs: number;
}

export type Verdict = 'hit' | 'symptom' | 'false_alarm';

export interface JudgedFiring extends Firing {
  readonly verdict: Verdict;
  /** Why a false alarm is one; for a hit, whether it names the place. */
  readonly why: string;
  readonly namesPlace: boolean;
}

/** The scenario's description without its frames (what a report needs). */
export interface ScenarioInfo {
  readonly id: string;
  readonly kind: string;
  readonly category: Category;
  readonly split: Split;
  readonly variant: string;
  readonly description: string;
  readonly truth: GroundTruth | undefined;
  readonly worldSize: number;
  readonly intervalMs: number;
  readonly startMs: number;
  /** Simulated job time, hours. */
  readonly jobHours: number;
}

export interface RunOutcome {
  readonly scenario: ScenarioInfo;
  readonly firings: JudgedFiring[];
  readonly detected: boolean;
  readonly delayMs: number | undefined;
  /** For located incidents: whether a hit named the place. */
  readonly culpritNamed: boolean | undefined;
  readonly falseAlarms: number;
  readonly samples: number;
}

/** Which detector output to score: the real engine, or a planted list (the scoring's own tests). */
export type Detect = (scenario: Scenario) => {
  firings: Firing[];
  samples: number;
  /** Event time of the last frame, when the frames were generated (a run may end before its planned end). */
  endMs?: number;
};

/** Runs the scenario's frames through a fresh detector engine with default settings. */
export const engineDetect: Detect = (scenario) => {
  const firings: Firing[] = [];
  const engine = new DetectorEngine(new DetectorSettings(detectorsConfigSchema.parse({})), {
    transition(alert: Alert, change: AlertChange) {
      if (change === 'firing')
        firings.push({ name: alert.name, labels: alert.labels, atMs: alert.firingAtMs! });
    },
  });
  let samples = 0;
  let endMs = scenario.params.startMs;
  for (const frame of scenario.frames() as Iterable<Frame>) {
    endMs = frame.tMs;
    engine.tick(frame.tMs, true);
    for (const b of frame.batches) {
      samples += b.sampleCount;
      engine.observe(TENANT, b);
    }
    if (frame.events.length > 0) engine.observeEvents(TENANT, frame.events);
  }
  return { firings, samples, endMs };
};

/** Whether alert labels name a place: `match`, another place (`other`), or no place / not comparable (`none`). */
export function placeMatch(labels: LabelSet, place: Place): 'match' | 'other' | 'none' {
  const node = labels.node_id;
  if (labels.rank !== undefined) {
    if (place.rank !== undefined) return labels.rank === String(place.rank) ? 'match' : 'other';
    if (place.nodeId !== undefined && node !== undefined) return node === place.nodeId ? 'match' : 'other';
    return 'none';
  }
  if (labels.gpu !== undefined && node !== undefined) {
    if (place.nodeId === undefined) return 'none';
    if (node !== place.nodeId) return 'other';
    if (place.gpu === undefined || labels.gpu === String(place.gpu)) return 'match';
    return 'other';
  }
  if (node !== undefined && place.nodeId !== undefined) {
    if (node !== place.nodeId) return 'other';
    // The right node, but a rank-level truth wants the rank.
    return place.rank === undefined ? 'match' : 'none';
  }
  return 'none';
}

export function judge(scenario: ScenarioInfo, firings: readonly Firing[], samples: number): RunOutcome {
  const truth = scenario.truth;
  const judged: JudgedFiring[] = [];
  for (const f of firings) {
    if (INFORMATIONAL_ALERTS.includes(f.name)) continue;
    if (!truth) {
      judged.push({ ...f, verdict: 'false_alarm', why: 'clean run', namesPlace: false });
      continue;
    }
    if (f.atMs < truth.onsetMs) {
      judged.push({ ...f, verdict: 'false_alarm', why: 'before the onset', namesPlace: false });
      continue;
    }
    if (truth.alerts.includes(f.name)) {
      const m = truth.where === 'job' ? 'none' : placeMatch(f.labels, truth.where);
      if (m === 'other')
        judged.push({ ...f, verdict: 'false_alarm', why: 'names another place', namesPlace: false });
      else
        judged.push({
          ...f,
          verdict: 'hit',
          why: m === 'match' ? 'names the place' : 'no place',
          namesPlace: m === 'match',
        });
      continue;
    }
    if (truth.symptoms.includes(f.name)) {
      judged.push({ ...f, verdict: 'symptom', why: 'a symptom', namesPlace: false });
      continue;
    }
    judged.push({ ...f, verdict: 'false_alarm', why: 'not this incident’s alert', namesPlace: false });
  }
  const hits = judged.filter((j) => j.verdict === 'hit');
  const first = hits.reduce<JudgedFiring | undefined>(
    (a, b) => (a === undefined || b.atMs < a.atMs ? b : a),
    undefined,
  );
  return {
    scenario,
    firings: judged,
    detected: first !== undefined,
    delayMs: first && truth ? first.atMs - truth.onsetMs : undefined,
    culpritNamed: truth && truth.where !== 'job' ? hits.some((h) => h.namesPlace) : undefined,
    falseAlarms: judged.filter((j) => j.verdict === 'false_alarm').length,
    samples,
  };
}

export function infoOf(s: Scenario): ScenarioInfo {
  return {
    id: s.id,
    kind: s.kind,
    category: s.category,
    split: s.split,
    variant: s.variant,
    description: s.description,
    truth: s.truth,
    worldSize: s.params.worldSize,
    intervalMs: s.params.intervalMs,
    startMs: s.params.startMs,
    jobHours: s.params.durationMs / 3_600_000,
  };
}

export function runScenario(s: Scenario, detect: Detect = engineDetect): RunOutcome {
  const { firings, samples, endMs } = detect(s);
  const info = infoOf(s);
  // A run that ended early (a finish, an OOM, a crash) has fewer job-hours than planned: count what it ran.
  const ran = endMs === undefined ? info : { ...info, jobHours: (endMs - s.params.startMs) / 3_600_000 };
  return judge(ran, firings, samples);
}

// ---- aggregation ---------------------------------------------------------------------------------------

export interface KindScore {
  readonly kind: string;
  readonly category: Category;
  readonly split: Split;
  readonly runs: number;
  readonly detected: number;
  readonly recall: number;
  readonly hits: number;
  readonly falseAlarms: number;
  /** hits ÷ (hits + false alarms); NaN when neither. */
  readonly precision: number;
  readonly jobHours: number;
  readonly falseAlarmsPerJobHour: number;
  readonly delayP50Ms: number;
  readonly delayP90Ms: number;
  readonly ratioP50: number;
  readonly ratioP90: number;
  /** Located runs, and how many had the place named. */
  readonly located: number;
  readonly culpritNamed: number;
  readonly minDelayMs: number;
  /** Alert names of the false alarms, with counts. */
  readonly falseAlarmNames: Record<string, number>;
  /** Runs with at least one false alarm. */
  readonly runsWithFalseAlarms: number;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function scoreKinds(outcomes: readonly RunOutcome[]): KindScore[] {
  const groups = new Map<string, RunOutcome[]>();
  for (const o of outcomes) {
    const key = `${o.scenario.split}\u0000${o.scenario.kind}`;
    const g = groups.get(key) ?? [];
    g.push(o);
    groups.set(key, g);
  }
  const out: KindScore[] = [];
  for (const runs of groups.values()) {
    const s0 = runs[0]!.scenario;
    const hits = runs.reduce((a, r) => a + r.firings.filter((f) => f.verdict === 'hit').length, 0);
    const fa = runs.reduce((a, r) => a + r.falseAlarms, 0);
    const jobHours = runs.reduce((a, r) => a + r.scenario.jobHours, 0);
    const delays = runs.filter((r) => r.delayMs !== undefined).map((r) => r.delayMs!);
    const ratios = runs
      .filter((r) => r.delayMs !== undefined && r.scenario.truth)
      .map((r) => r.delayMs! / Math.max(1, r.scenario.truth!.minDelayMs));
    const located = runs.filter((r) => r.culpritNamed !== undefined);
    const names: Record<string, number> = {};
    for (const r of runs)
      for (const f of r.firings) if (f.verdict === 'false_alarm') names[f.name] = (names[f.name] ?? 0) + 1;
    const incident = s0.category === 'incident';
    out.push({
      kind: s0.kind,
      category: s0.category,
      split: s0.split,
      runs: runs.length,
      detected: runs.filter((r) => r.detected).length,
      recall: incident ? runs.filter((r) => r.detected).length / runs.length : Number.NaN,
      hits,
      falseAlarms: fa,
      precision: hits + fa === 0 ? Number.NaN : hits / (hits + fa),
      jobHours,
      falseAlarmsPerJobHour: fa / jobHours,
      delayP50Ms: quantile(delays, 0.5),
      delayP90Ms: quantile(delays, 0.9),
      ratioP50: quantile(ratios, 0.5),
      ratioP90: quantile(ratios, 0.9),
      located: located.length,
      culpritNamed: located.filter((r) => r.culpritNamed).length,
      minDelayMs: quantile(
        runs.filter((r) => r.scenario.truth).map((r) => r.scenario.truth!.minDelayMs),
        0.5,
      ),
      falseAlarmNames: names,
      runsWithFalseAlarms: runs.filter((r) => r.falseAlarms > 0).length,
    });
  }
  const order = new Map(ALL_KINDS.map((k, i) => [k.name, i]));
  return out.sort(
    (a, b) => a.split.localeCompare(b.split) * 1000 + (order.get(a.kind)! - order.get(b.kind)!),
  );
}

export interface SplitTotals {
  readonly split: Split;
  readonly incidentKinds: number;
  readonly cleanKinds: number;
  readonly runs: number;
  /** Equal weight per kind. */
  readonly recall: number;
  readonly precision: number;
  readonly culprit: number;
  readonly ratioP50: number;
  /** Share of detections within 2× the minimum delay (equal weight per kind). */
  readonly within2x: number;
  /** Mean over clean kinds of false alarms per job-hour. */
  readonly cleanFalseAlarmsPerJobHour: number;
  readonly cleanFalseAlarms: number;
  readonly cleanRuns: number;
  readonly cleanRunsWithFalseAlarms: number;
  readonly cleanJobHours: number;
  readonly samples: number;
}

const mean = (xs: readonly number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x));
  return v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length;
};

export function totals(
  split: Split,
  kinds: readonly KindScore[],
  outcomes: readonly RunOutcome[],
): SplitTotals {
  const ks = kinds.filter((k) => k.split === split);
  const inc = ks.filter((k) => k.category === 'incident');
  const clean = ks.filter((k) => k.category === 'clean');
  const os = outcomes.filter((o) => o.scenario.split === split);
  const within = inc.map((k) => {
    const rs = os.filter((o) => o.scenario.kind === k.kind && o.delayMs !== undefined && o.scenario.truth);
    return rs.length === 0
      ? Number.NaN
      : rs.filter((o) => o.delayMs! <= 2 * o.scenario.truth!.minDelayMs).length / rs.length;
  });
  return {
    split,
    incidentKinds: inc.length,
    cleanKinds: clean.length,
    runs: os.length,
    recall: mean(inc.map((k) => k.recall)),
    precision: mean(inc.map((k) => k.precision)),
    culprit: mean(inc.filter((k) => k.located > 0).map((k) => k.culpritNamed / k.located)),
    ratioP50: quantile(
      inc.map((k) => k.ratioP50).filter((x) => !Number.isNaN(x)),
      0.5,
    ),
    within2x: mean(within),
    cleanFalseAlarmsPerJobHour: mean(clean.map((k) => k.falseAlarmsPerJobHour)),
    cleanFalseAlarms: clean.reduce((a, k) => a + k.falseAlarms, 0),
    cleanRuns: clean.reduce((a, k) => a + k.runs, 0),
    cleanRunsWithFalseAlarms: clean.reduce((a, k) => a + k.runsWithFalseAlarms, 0),
    cleanJobHours: clean.reduce((a, k) => a + k.jobHours, 0),
    samples: os.reduce((a, o) => a + o.samples, 0),
  };
}

// ---- report ---------------------------------------------------------------------------------------------

const pct = (x: number) => (Number.isNaN(x) ? '—' : `${Math.round(x * 100)}%`);
function dur(ms: number): string {
  if (Number.isNaN(ms)) return '—';
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${(s / 60).toFixed(s < 600 ? 1 : 0)} min`;
}
const ratio = (x: number) => (Number.isNaN(x) ? '—' : `${x.toFixed(1)}×`);

export interface DetectionReport {
  readonly outcomes: RunOutcome[];
  readonly kinds: KindScore[];
  readonly totals: SplitTotals[];
  readonly wallMs: number;
}

export function scoreLibrary(
  opts: LibraryOptions,
  detect: Detect = engineDetect,
  progress?: (done: number, total: number, id: string) => void,
): DetectionReport {
  const began = performance.now();
  const scenarios = buildLibrary(opts);
  const outcomes: RunOutcome[] = [];
  for (const s of scenarios) {
    outcomes.push(runScenario(s, detect));
    progress?.(outcomes.length, scenarios.length, s.id);
  }
  const kinds = scoreKinds(outcomes);
  const splits = SPLITS.filter((sp) => outcomes.some((o) => o.scenario.split === sp));
  return {
    outcomes,
    kinds,
    totals: splits.map((sp) => totals(sp, kinds, outcomes)),
    wallMs: performance.now() - began,
  };
}

export function renderDetectionMarkdown(r: DetectionReport, command: string): string {
  const lines: string[] = [
    '# Detection on the scenario library',
    '',
    `Command: \`${command}\` — ${new Date().toISOString().slice(0, 10)}. ${r.outcomes.length} runs, ${r.totals
      .reduce((a, t) => a + t.samples, 0)
      .toLocaleString(
        'en-US',
      )} samples through the detector engine (default settings) in ${(r.wallMs / 1000).toFixed(0)} s.`,
    '',
    'Every kind weighs the same in the totals. Recall: runs with a hit. Precision: hits ÷ (hits + false alarms) on',
    "the kind's runs. Delay: onset → the first hit *firing*; ÷ min: divided by the minimum the signal allows",
    '(stated per scenario, bench/detection/README.md). Culprit: located incidents whose rank/GPU/node a hit named.',
    'Train is what detector changes may be tuned on; **held-out must never be tuned on**.',
    '',
    '## Totals',
    '',
    '| split | runs | recall | precision | culprit named | delay ÷ min (median of kinds) | detections within 2× min | false alarms on clean runs | per job-hour | clean runs with a false alarm |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.totals.map(
      (t) =>
        `| ${t.split} | ${t.runs} | ${pct(t.recall)} | ${pct(t.precision)} | ${pct(t.culprit)} | ${ratio(t.ratioP50)} | ${pct(t.within2x)} | ${t.cleanFalseAlarms} in ${t.cleanJobHours.toFixed(1)} job-h | ${t.cleanFalseAlarmsPerJobHour.toFixed(2)} | ${t.cleanRunsWithFalseAlarms} of ${t.cleanRuns} |`,
    ),
    '',
  ];
  for (const split of SPLITS) {
    const ks = r.kinds.filter((k) => k.split === split);
    if (ks.length === 0) continue;
    lines.push(
      `## ${split}: incidents`,
      '',
      '| kind | runs | recall | precision | delay p50 | p90 | min (median) | p50 ÷ min | p90 ÷ min | culprit named | false alarms |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...ks
        .filter((k) => k.category === 'incident')
        .map(
          (k) =>
            `| ${k.kind} | ${k.runs} | ${pct(k.recall)} | ${pct(k.precision)} | ${dur(k.delayP50Ms)} | ${dur(k.delayP90Ms)} | ${dur(k.minDelayMs)} | ${ratio(k.ratioP50)} | ${ratio(k.ratioP90)} | ${k.located ? `${k.culpritNamed}/${k.located}` : 'job'} | ${fmtNames(k.falseAlarmNames)} |`,
        ),
      '',
      `## ${split}: clean behaviours`,
      '',
      '| kind | runs | runs with a false alarm | job-hours | false alarms | per job-hour | alerts |',
      '|---|---|---|---|---|---|---|',
      ...ks
        .filter((k) => k.category === 'clean')
        .map(
          (k) =>
            `| ${k.kind} | ${k.runs} | ${k.runsWithFalseAlarms} | ${k.jobHours.toFixed(1)} | ${k.falseAlarms} | ${k.falseAlarmsPerJobHour.toFixed(2)} | ${fmtNames(k.falseAlarmNames)} |`,
        ),
      '',
    );
  }
  lines.push('## Missed incidents', '');
  const missed = r.outcomes.filter((o) => o.scenario.truth && !o.detected);
  if (missed.length === 0) lines.push('None.', '');
  else
    for (const o of missed)
      lines.push(
        `- \`${o.scenario.id}\` (${o.scenario.worldSize} ranks, ${o.scenario.intervalMs / 1000} s): ${o.scenario.description}; fired: ${fmtNames(countNames(o.firings))}`,
      );
  lines.push('');
  return lines.join('\n');
}

function countNames(fs: readonly JudgedFiring[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of fs) out[f.name] = (out[f.name] ?? 0) + 1;
  return out;
}

function fmtNames(names: Record<string, number>): string {
  const e = Object.entries(names).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? '—' : e.map(([n, c]) => `${n} ×${c}`).join(', ');
}

/** The full and quick sizes of the benchmark. */
export const DETECTION_SIZES = {
  full: { perKind: 3 } satisfies LibraryOptions,
  quick: { perKind: 1, maxWorldSize: 32 } satisfies LibraryOptions,
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'per-kind': { type: 'string' },
      split: { type: 'string' },
      kinds: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const base = values.quick ? DETECTION_SIZES.quick : DETECTION_SIZES.full;
  const opts: LibraryOptions = {
    ...base,
    perKind: values['per-kind'] ? Number(values['per-kind']) : base.perKind,
    splits: values.split ? [values.split as Split] : undefined,
    kinds: values.kinds?.split(','),
  };
  const report = scoreLibrary(opts, engineDetect, (done, total, id) =>
    process.stderr.write(`\r${done}/${total} ${id.padEnd(60)}`),
  );
  process.stderr.write('\n');
  const md = renderDetectionMarkdown(
    report,
    `npx tsx bench/detection/score.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
  );
  const out =
    values.out ??
    path.join(import.meta.dirname, '..', 'results', `${new Date().toISOString().slice(0, 10)}-detection.md`);
  writeFileSync(out, md);
  if (values.json)
    writeFileSync(
      values.json,
      JSON.stringify(
        report.outcomes.map((o) => ({
          ...o.scenario,
          detected: o.detected,
          delayMs: o.delayMs,
          culpritNamed: o.culpritNamed,
          firings: o.firings.map((f) => ({
            name: f.name,
            /** Seconds after the run's start (the truth's onset is in `truth.onsetMs`). */
            atS: (f.atMs - o.scenario.startMs) / 1000,
            verdict: f.verdict,
            why: f.why,
            labels: f.labels,
          })),
        })),
        null,
        1,
      ),
    );
  process.stdout.write(`${md}\nwritten to ${out}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
