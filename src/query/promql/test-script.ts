/**
 * A runner for Prometheus's PromQL test scripts (promql/promqltest: `load`, `clear`, `eval instant`,
 * `eval range`, `expect ...`), so the upstream test files run against trainwatch's engine over any
 * {@link Storage}. Data is loaded through the storage's `Appender` for one tenant and queried back through
 * its `Querier`, so the same files test whichever storage engine is plugged in.
 *
 * Cases are classified before running. A case is skipped, never silently passed, when it needs what
 * trainwatch does not store: native-histogram samples (the query selects series that hold them, expects
 * histogram values, or uses the histogram trim operators) or per-sample start timestamps (`@st` series,
 * `start_timestamp()`). Every other case runs and must pass, experimental functions included.
 *
 * The scripts' text is parsed in test-script-parse.ts; this file loads the data and runs and checks the cases.
 */
import { readFileSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import { pino } from 'pino';
import { hashPartitionKey, seriesPartitionKey } from '../../bus/index.js';
import { SeriesBatchBuilder, STALE_NAN, splitBatch } from '../../model/batch.js';
import { type LabelMatcher, type LabelSet, matchesAll } from '../../model/labels.js';
import {
  defaultTsdbOptions,
  PortStorageReader,
  type Storage,
  serveStorageQueries,
  sumAppendStats,
  Tsdb,
} from '../../storage/index.js';
import { type Expr, walk } from './ast.js';
import { PromqlEngine } from './engine.js';
import { almostEqual } from './histogram.js';
import { labelKey, labelsString } from './labels-util.js';
import { parseExpr } from './parser.js';
import { tenantQueryable } from './tenant.js';
import {
  type Cmd,
  type EvalCmd,
  type Expect,
  parseTestScript,
  type SeriesDesc,
} from './test-script-parse.js';
import type { QueryResult } from './value.js';

const TENANT = 'promqltest';
const EPSILON = 1e-6;

export type SkipReason = 'native-histogram' | 'start-timestamps';

export interface CaseResult {
  readonly line: number;
  readonly query: string;
  readonly status: 'passed' | 'failed' | 'skipped';
  readonly skipReason?: SkipReason;
  readonly message?: string;
}

export interface FileResult {
  readonly file: string;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly skippedBy: Readonly<Record<SkipReason, number>>;
  readonly cases: readonly CaseResult[];
}

export interface RunOptions {
  /** Makes an empty storage; called at the start and after every `clear`. */
  readonly createStorage: () => Storage | Promise<Storage>;
  /** Engine settings; defaults to what Prometheus's test engine uses. */
  readonly engine?: PromqlEngine;
}

/**
 * trainwatch's TSDB kept in memory, accepting the scripts' data: samples from the epoch on, in any order
 * within a script, with retention measured from the epoch so nothing loaded is ever expired.
 */
export function memoryTsdb(): Promise<Storage> {
  return Tsdb.open({
    ...defaultTsdbOptions,
    dir: undefined,
    outOfOrderWindowMs: 100 * 365 * 86_400_000,
    fsync: false,
    logger: pino({ level: 'silent' }),
    now: () => 0,
  });
}

/**
 * {@link memoryTsdb} split into `shards` shards read through storage ports (storage/port), as the embedded
 * processor workers keep them: a series with a partition key (its job, node or instance) lives in the shard of
 * its bus partition, where a job-pinned selection looks for it; any other series is spread by its labels. So
 * the same scripts check that reading across shards (fan-out, merge, one-shard routing) answers as one shard.
 */
export async function shardedMemoryTsdb(shards: number, busPartitions = 8): Promise<Storage> {
  const stores = await Promise.all(Array.from({ length: shards }, () => memoryTsdb()));
  const channels = stores.map((store) => {
    const { port1, port2 } = new MessageChannel();
    serveStorageQueries(port1, store);
    return { port1, port2 };
  });
  const routing = { busPartitions, shards };
  const reader = new PortStorageReader(
    channels.map((c) => c.port2),
    routing,
  );
  const shardOf = (tenant: string, labels: LabelSet): number => {
    const key = seriesPartitionKey(tenant, labels);
    return key === undefined
      ? hashPartitionKey(labelKey(labels)) % shards
      : (hashPartitionKey(key) % busPartitions) % shards;
  };
  return {
    appender: {
      async append(tenant, batch) {
        const parts = splitBatch(batch, (labels) => shardOf(tenant, labels));
        const stats = await Promise.all(
          [...parts].map(([shard, b]) => stores[shard]!.appender.append(tenant, b)),
        );
        return sumAppendStats(stats);
      },
    },
    querier: (tenant, minT, maxT) => reader.querier(tenant, minT, maxT),
    checkpoint: async () => {},
    coveredPositions: () => new Map(),
    async close() {
      reader.close();
      for (const c of channels) c.port1.close();
      await Promise.all(stores.map((s) => s.close()));
    },
  };
}

/** Prometheus's test engine: delayed name removal and experimental functions on, 5 m lookback. */
export function testEngine(): PromqlEngine {
  return new PromqlEngine({ delayedNameRemoval: true, experimentalFunctions: true, timeoutMs: 60_000 });
}

// ---- running ----

/** What the loaded data holds that trainwatch's storage cannot: used to classify cases as skipped. */
interface Unstorable {
  histogramSeries: LabelSet[];
  startTimestampSeries: LabelSet[];
}

function selectorsOf(e: Expr): LabelMatcher[][] {
  const out: LabelMatcher[][] = [];
  walk(e, (n) => {
    if (n.type === 'VectorSelector') out.push([...n.matchers]);
  });
  return out;
}

function usesFunction(e: Expr, name: string): boolean {
  let found = false;
  walk(e, (n) => {
    if (n.type === 'Call' && n.func.name === name) found = true;
  });
  return found;
}

function classify(cmd: EvalCmd, unstorable: Unstorable): SkipReason | undefined {
  let expr: Expr;
  try {
    expr = parseExpr(cmd.query);
  } catch {
    return undefined; // parse errors are for the engine to report
  }
  const selectors = selectorsOf(expr);
  const touches = (series: LabelSet[]) => series.some((l) => selectors.some((m) => matchesAll(l, m)));
  let trim = false;
  walk(expr, (n) => {
    if (n.type === 'BinaryExpr' && (n.op === '</' || n.op === '>/')) trim = true;
  });
  if (trim || cmd.series.some((s) => s.histogramAt.some(Boolean)) || touches(unstorable.histogramSeries)) {
    return 'native-histogram';
  }
  if (usesFunction(expr, 'start_timestamp') || touches(unstorable.startTimestampSeries))
    return 'start-timestamps';
  return undefined;
}

/** The native histogram with custom buckets that `load_with_nhcb` derives from classic bucket series. */
function nhcbSeriesOf(series: SeriesDesc[]): LabelSet[] {
  const out: LabelSet[] = [];
  for (const s of series) {
    const name = s.labels.__name__ ?? '';
    const base = name.replace(/_(bucket|count|sum)$/, '');
    if (base === name) continue;
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.labels)) if (k !== 'le') labels[k] = v;
    labels.__name__ = base;
    out.push(labels);
  }
  return out;
}

async function load(
  storage: Storage,
  cmd: Extract<Cmd, { type: 'load' }>,
  unstorable: Unstorable,
): Promise<void> {
  const b = new SeriesBatchBuilder();
  for (const s of cmd.series) {
    if (s.startTimestamps) {
      unstorable.startTimestampSeries.push(s.labels);
      continue;
    }
    if (s.histogramAt.some(Boolean)) unstorable.histogramSeries.push(s.labels);
    let started = false;
    for (let k = 0; k < s.values.length; k++) {
      const v = s.values[k];
      if (v === undefined) continue;
      if (!started) {
        b.addSeries(s.labels);
        started = true;
      }
      b.add(k * cmd.intervalMs, s.staleAt[k] ? STALE_NAN : v);
    }
  }
  if (cmd.withNhcb) unstorable.histogramSeries.push(...nhcbSeriesOf(cmd.series));
  if (b.seriesCount > 0) await storage.appender.append(TENANT, b.build());
}

function fmtValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function sameValue(exp: number, act: number): boolean {
  return almostEqual(exp, act, EPSILON);
}

/** Compares a result with the expectations; returns a failure message or undefined. */
function check(cmd: EvalCmd, result: QueryResult | undefined, error: Error | undefined): string | undefined {
  const fails = cmd.expects.filter((e) => e.kind === 'fail');
  if (fails.length > 0) {
    if (!error) return 'expected the query to fail, but it succeeded';
    for (const f of fails) {
      if (!f.match) continue;
      const ok =
        f.match.type === 'msg'
          ? error.message === f.match.text
          : new RegExp(f.match.text).test(error.message);
      if (!ok)
        return `expected error ${f.match.type} ${JSON.stringify(f.match.text)}, got ${JSON.stringify(error.message)}`;
    }
    return undefined;
  }
  if (error) return `unexpected error: ${error.message}`;
  const r = result!;
  for (const kind of ['warn', 'info'] as const) {
    const got = kind === 'warn' ? r.warnings : r.infos;
    const exps = cmd.expects.filter((e) => e.kind === kind);
    if (cmd.expects.some((e) => e.kind === `no_${kind}`) && got.length > 0)
      return `expected no ${kind} annotations, got ${JSON.stringify(got)}`;
    if (exps.length === 0) continue;
    if (got.length === 0) return `expected ${kind} annotations, got none`;
    const matches = (e: Expect, a: string) =>
      !e.match || (e.match.type === 'msg' ? a === e.match.text : new RegExp(e.match.text).test(a));
    for (const e of exps) {
      if (!got.some((a) => matches(e, a)))
        return `no ${kind} annotation matches ${JSON.stringify(e.match?.text)}: got ${JSON.stringify(got)}`;
    }
    for (const a of got) {
      if (!exps.some((e) => matches(e, a))) return `unexpected ${kind} annotation ${JSON.stringify(a)}`;
    }
  }
  const v = r.value;
  const str = cmd.expects.find((e) => e.kind === 'string');
  if (str) {
    if (v.resultType !== 'string') return `expected a string result, got ${v.resultType}`;
    return v.v === str.stringValue
      ? undefined
      : `expected string ${JSON.stringify(str.stringValue)}, got ${JSON.stringify(v.v)}`;
  }
  if (cmd.scalar !== undefined) {
    if (v.resultType !== 'scalar') return `expected a scalar result, got ${v.resultType}`;
    return sameValue(cmd.scalar, v.v)
      ? undefined
      : `expected scalar ${fmtValue(cmd.scalar)}, got ${fmtValue(v.v)}`;
  }
  const rangeExpect = cmd.expects.find((e) => e.kind === 'range');
  if (!cmd.instant || rangeExpect) {
    if (v.resultType !== 'matrix') return `expected a matrix result, got ${v.resultType}`;
    const start = rangeExpect ? rangeExpect.range!.from : cmd.start;
    const step = rangeExpect ? rangeExpect.range!.step : cmd.step;
    const actual = new Map(v.series.map((s) => [labelKey(s.labels), s]));
    if (actual.size !== v.series.length) return 'result has two series with the same labels';
    for (const exp of cmd.series) {
      const key = labelKey(exp.labels);
      const act = actual.get(key);
      const points: [number, number][] = [];
      exp.values.forEach((val, k) => {
        if (val !== undefined) points.push([start + k * step, val]);
      });
      if (!act) {
        if (points.length === 0) continue;
        return `expected series ${labelsString(exp.labels)} not in the result: got ${v.series.map((s) => labelsString(s.labels)).join(', ')}`;
      }
      actual.delete(key);
      if (act.timestamps.length !== points.length)
        return `series ${labelsString(exp.labels)}: expected ${points.length} points ${JSON.stringify(points.map((p) => [p[0], fmtValue(p[1])]))}, got ${act.timestamps.length} ${JSON.stringify([...act.timestamps].map((t, k) => [t, fmtValue(act.values[k]!)]))}`;
      for (let k = 0; k < points.length; k++) {
        const [t, val] = points[k]!;
        if (act.timestamps[k] !== t || !sameValue(val, act.values[k]!))
          return `series ${labelsString(exp.labels)}: expected ${fmtValue(val)} at ${t}, got ${fmtValue(act.values[k]!)} at ${act.timestamps[k]}`;
      }
    }
    if (actual.size > 0)
      return `unexpected series in the result: ${[...actual.values()].map((s) => labelsString(s.labels)).join(', ')}`;
    return undefined;
  }
  if (v.resultType !== 'vector') return `expected a vector result, got ${v.resultType}`;
  const actual = v.samples;
  const ordered = cmd.expects.some((e) => e.kind === 'ordered');
  const expected = cmd.series.filter((s) => s.values.length > 0 && s.values[0] !== undefined);
  if (expected.length !== actual.length)
    return `expected ${expected.length} samples, got ${actual.length}: ${actual.map((s) => `${labelsString(s.labels)} ${fmtValue(s.v)}`).join(', ')}`;
  const byKey = new Map(actual.map((s, k) => [labelKey(s.labels), k]));
  for (let k = 0; k < expected.length; k++) {
    const exp = expected[k]!;
    const idx = byKey.get(labelKey(exp.labels));
    if (idx === undefined)
      return `expected ${labelsString(exp.labels)} not in the result: got ${actual.map((s) => labelsString(s.labels)).join(', ')}`;
    if (ordered && idx !== k) return `expected ${labelsString(exp.labels)} at position ${k}, found at ${idx}`;
    if (!sameValue(exp.values[0]!, actual[idx]!.v))
      return `${labelsString(exp.labels)}: expected ${fmtValue(exp.values[0]!)}, got ${fmtValue(actual[idx]!.v)}`;
  }
  return undefined;
}

/** Runs one test script. Never throws for a failing case: failures are reported in the result. */
export async function runTestScript(file: string, text: string, opts: RunOptions): Promise<FileResult> {
  const engine = opts.engine ?? testEngine();
  const cmds = parseTestScript(text);
  let storage = await opts.createStorage();
  let unstorable: Unstorable = { histogramSeries: [], startTimestampSeries: [] };
  const cases: CaseResult[] = [];
  const skippedBy: Record<SkipReason, number> = {
    'native-histogram': 0,
    'start-timestamps': 0,
  };
  try {
    for (const cmd of cmds) {
      if (cmd.type === 'clear') {
        await storage.close();
        storage = await opts.createStorage();
        unstorable = { histogramSeries: [], startTimestampSeries: [] };
        continue;
      }
      if (cmd.type === 'load') {
        await load(storage, cmd, unstorable);
        continue;
      }
      const reason = classify(cmd, unstorable);
      if (reason) {
        skippedBy[reason]++;
        cases.push({ line: cmd.line, query: cmd.query, status: 'skipped', skipReason: reason });
        continue;
      }
      const source = tenantQueryable(storage, TENANT);
      let result: QueryResult | undefined;
      let error: Error | undefined;
      try {
        result = cmd.instant
          ? await engine.instantQuery(source, cmd.query, cmd.at)
          : await engine.rangeQuery(source, cmd.query, cmd.start, cmd.end, cmd.step);
      } catch (err) {
        error = err as Error;
      }
      let message: string | undefined;
      try {
        message = check(cmd, result, error);
      } catch (err) {
        message = `checking the result failed: ${(err as Error).message}`;
      }
      cases.push({
        line: cmd.line,
        query: cmd.query,
        status: message ? 'failed' : 'passed',
        ...(message ? { message } : {}),
      });
    }
  } finally {
    await storage.close();
  }
  const count = (s: CaseResult['status']) => cases.filter((c) => c.status === s).length;
  return {
    file,
    passed: count('passed'),
    failed: count('failed'),
    skipped: count('skipped'),
    skippedBy,
    cases,
  };
}

export async function runTestFile(file: string, opts: RunOptions): Promise<FileResult> {
  return runTestScript(file, readFileSync(file, 'utf8'), opts);
}
