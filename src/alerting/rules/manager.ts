/**
 * Evaluates Prometheus alerting and recording rules on trainwatch's PromQL engine, group by group at each
 * group's interval, once per tenant (a tenant's rules see only its series, as every query does). Alerting
 * rules feed the same alert lifecycle as the detectors (an {@link AlertTracker} reporting to the hub), on the
 * wall clock: pending while `for` has not elapsed, firing, resolved after `keep_firing_for`. Recording rules
 * append their results to storage.
 *
 * Where the PromQL runs: on the server's query worker pool when it has one ({@link RuleQueryEvaluator}, wired in
 * server/modules.ts), so that a heavy rule costs the event loop that acknowledges writes nothing but the
 * storage reads it asks for; only the result handling (alert state transitions, templates, notifications,
 * recorded samples' appends) runs on this thread. Without a pool (`query.workers: 0`, tests) the engine runs
 * here ({@link localRuleEvaluator}). Either way the semantics are the same: one instant query per rule and
 * tenant at the group's evaluation time, rules in order within a group.
 *
 * Restarts: the open rule alerts are reloaded from the alert store and the tracker resumes them with their
 * original start times (Prometheus's "for" state restoration), so a restart neither resets `for` nor
 * re-notifies.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { SeriesBatchBuilder } from '../../model/batch.js';
import type { LabelSet } from '../../model/labels.js';
import { type InstantSample, PromqlEngine, ruleVector, tenantQueryable } from '../../query/promql/index.js';
import type { Storage } from '../../storage/index.js';
import { fingerprint, formatValue } from '../alert.js';
import type { RuleGroupsSource } from '../api.js';
import type { AlertHub } from '../hub.js';
import { AlertTracker, type AlertTrackerSnapshot } from '../tracker.js';
import { promFloatString } from './format.js';
import { parseRuleFile, type RuleDef, type RuleGroupDef } from './rule-file.js';

/**
 * Evaluates one rule's expression for one tenant at one instant. Resolves with the result as an instant
 * vector (a scalar is one sample without labels); rejects with an Error whose message is what the rule's
 * `lastError` shows (a parse error, a limit, a timeout, a range-vector result). Implemented by the query
 * worker pool (`QueryPool.evaluateRule`) and, in this thread, by {@link localRuleEvaluator}.
 */
export interface RuleQueryEvaluator {
  evaluate(tenant: string, expr: string, at: number): Promise<readonly InstantSample[]>;
}

/**
 * Rules evaluated on this thread's event loop. The engine never gives the event loop a turn *within* a rule's
 * evaluation, because ingest running in between would let one selector of the expression see a sample that
 * another did not (`x != x` would then fire on data without a single NaN, as it did under load); the manager
 * yields between rules instead. The cost: a heavy rule holds ingest up for its whole evaluation, which is why
 * the server evaluates rules on its query workers instead (where the engine reads a selector that occurs twice
 * once, so both sides agree however storage moves on between selects).
 */
export function localRuleEvaluator(storage: Pick<Storage, 'querier'>): RuleQueryEvaluator {
  const engine = new PromqlEngine({ yieldEveryMs: Number.POSITIVE_INFINITY });
  return {
    async evaluate(tenant, expr, at) {
      return ruleVector((await engine.instantQuery(tenantQueryable(storage, tenant), expr, at)).value);
    },
  };
}

export interface RuleManagerOptions {
  readonly files: readonly string[];
  readonly defaultIntervalMs: number;
  /** Where recording rules append, and what the rules read (with {@link localRuleEvaluator}). */
  readonly storage: Storage;
  /** Where rule expressions are evaluated; default: this thread ({@link localRuleEvaluator}). */
  readonly evaluator?: RuleQueryEvaluator;
  readonly hub: AlertHub;
  readonly logger: Logger;
  readonly externalUrl: () => string;
  readonly now?: () => number;
}

interface RuleStatus {
  health: 'ok' | 'err' | 'unknown';
  lastError: string;
  lastEvaluationMs: number;
  evaluationMs: number;
}

interface GroupState {
  readonly def: RuleGroupDef;
  /** An evaluation in progress (queries are asynchronous); the next tick skips rather than overlaps. */
  running: Promise<void> | undefined;
  readonly intervalMs: number;
  timer: NodeJS.Timeout | undefined;
  lastEvaluationMs: number;
  evaluationMs: number;
  /** Per tenant and rule index. */
  readonly status: Map<string, RuleStatus>;
  /** Per tenant and rule index: fingerprints of the rule's open alerts. */
  readonly active: Map<string, Set<string>>;
}

/** Resolves `*` and `?` in the file name part of a path (e.g. `/etc/trainwatch/rules/*.yaml`). */
export function expandRuleFiles(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    const base = path.basename(p);
    if (!/[*?]/.test(base)) {
      out.push(p);
      continue;
    }
    const dir = path.dirname(p);
    const re = new RegExp(
      `^${base
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    let names: string[] = [];
    try {
      names = readdirSync(dir)
        .filter((n) => re.test(n))
        .sort();
    } catch {
      names = [];
    }
    out.push(...names.map((n) => path.join(dir, n)));
  }
  return out;
}

/** Reads and checks rule files; throws with every promtool-style error when one is invalid. */
export function loadRuleFiles(patterns: readonly string[]): RuleGroupDef[] {
  const groups: RuleGroupDef[] = [];
  const errors: string[] = [];
  for (const file of expandRuleFiles(patterns)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      errors.push(`${file}: ${(err as Error).message}`);
      continue;
    }
    const r = parseRuleFile(file, text);
    errors.push(...r.errors);
    groups.push(...r.groups);
  }
  if (errors.length > 0) throw new Error(`invalid rule files:\n${errors.join('\n')}`);
  return groups;
}

const TENANT_REFRESH_MS = 60_000;

export class RuleManager implements RuleGroupsSource {
  private readonly groupsState: GroupState[];
  private readonly tracker: AlertTracker;
  private readonly evaluator: RuleQueryEvaluator;
  private readonly now: () => number;
  private tenants: string[] = [];
  private tenantsAt = Number.NEGATIVE_INFINITY;
  private reconciled = false;
  /** Set by stop(): an evaluation still in flight then changes nothing (its query may fail as the pool stops). */
  private stopped = false;

  constructor(
    groups: readonly RuleGroupDef[],
    private readonly opts: RuleManagerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.evaluator = opts.evaluator ?? localRuleEvaluator(opts.storage);
    this.tracker = new AlertTracker(opts.hub);
    this.groupsState = groups.map((def) => ({
      def,
      intervalMs: def.intervalMs ?? opts.defaultIntervalMs,
      running: undefined,
      timer: undefined,
      lastEvaluationMs: 0,
      evaluationMs: 0,
      status: new Map(),
      active: new Map(),
    }));
  }

  get ruleCount(): number {
    return this.groupsState.reduce((n, g) => n + g.def.rules.length, 0);
  }

  /** Resumes open rule alerts from the store, then evaluates every group at its interval. */
  start(): void {
    const snapshot: AlertTrackerSnapshot[number][] = [];
    for (const a of this.opts.hub.openAlerts(null)) {
      if (a.source !== 'rule') continue;
      const g = this.groupsState.find((x) => origin(x.def) === a.origin);
      const idx = g?.def.rules.findIndex((r) => r.kind === 'alerting' && r.name === a.name) ?? -1;
      if (!g || idx < 0) continue;
      const rule = g.def.rules[idx]!;
      snapshot.push({
        fingerprint: a.fingerprint,
        labels: a.labels,
        annotations: { ...a.annotations },
        name: a.name,
        forMs: rule.forMs,
        keepFiringForMs: rule.keepFiringForMs,
        source: 'rule',
        origin: a.origin,
        state: a.state === 'firing' ? 'firing' : 'pending',
        activeAtMs: a.activeAtMs,
        firingAtMs: a.firingAtMs,
        lastTrueMs: this.now(),
        value: a.value,
        lastValueReportMs: this.now(),
      });
      const key = `${a.labels.tenant ?? ''}\u0000${idx}`;
      let set = g.active.get(key);
      if (!set) {
        set = new Set();
        g.active.set(key, set);
      }
      set.add(a.fingerprint);
    }
    this.tracker.restore(snapshot);
    for (const g of this.groupsState) {
      g.timer = setInterval(() => void this.evaluateGroup(g), g.intervalMs);
      g.timer.unref?.();
      // First evaluation soon, not a whole interval after start.
      setTimeout(() => void this.evaluateGroup(g), 0).unref?.();
    }
    if (this.groupsState.length > 0)
      this.opts.logger.info(
        { groups: this.groupsState.length, rules: this.ruleCount },
        'rule evaluation started',
      );
  }

  stop(): void {
    this.stopped = true;
    for (const g of this.groupsState) clearInterval(g.timer);
  }

  private async tenantList(now: number): Promise<string[]> {
    if (this.tenants.length === 0 || Math.abs(now - this.tenantsAt) >= TENANT_REFRESH_MS) {
      try {
        this.tenants = await this.opts.storage.querier(null, now - 3_600_000, now).labelValues('tenant');
        this.tenantsAt = now;
      } catch (err) {
        this.opts.logger.error({ err }, 'rules: cannot list tenants');
      }
    }
    return this.tenants;
  }

  /** Evaluates one group for every tenant (rules in order, as Prometheus does within a group). */
  evaluateGroup(g: GroupState, at?: number): Promise<void> {
    if (g.running) return g.running;
    g.running = (async () => {
      const now = at ?? this.now();
      const started = performance.now();
      for (const tenant of await this.tenantList(now)) {
        for (let idx = 0; idx < g.def.rules.length; idx++) {
          await this.evaluateRule(g, g.def.rules[idx]!, idx, tenant, now);
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      if (this.stopped) return;
      g.lastEvaluationMs = now;
      g.evaluationMs = performance.now() - started;
      if (!this.reconciled && this.groupsState.every((x) => x.lastEvaluationMs > 0)) {
        this.reconciled = true;
        this.opts.hub.reconcile('rule', new Set(this.tracker.active().map((a) => a.fingerprint)));
      }
    })().finally(() => {
      g.running = undefined;
    });
    return g.running;
  }

  /** Evaluates every group at `at` (tests, `rules` tooling). */
  async evaluateAll(at?: number): Promise<void> {
    for (const g of this.groupsState) await this.evaluateGroup(g, at);
  }

  private async evaluateRule(
    g: GroupState,
    rule: RuleDef,
    idx: number,
    tenant: string,
    now: number,
  ): Promise<void> {
    const key = `${tenant}\u0000${idx}`;
    const status: RuleStatus = { health: 'ok', lastError: '', lastEvaluationMs: now, evaluationMs: 0 };
    const started = performance.now();
    try {
      const samples = await this.evaluator.evaluate(tenant, rule.expr, now);
      if (this.stopped) return;
      if (g.def.limit > 0 && samples.length > g.def.limit)
        throw new Error(
          `exceeded limit of ${g.def.limit} with ${samples.length} ${rule.kind === 'alerting' ? 'alerts' : 'series'}`,
        );
      if (rule.kind === 'recording') await this.record(rule, tenant, samples, now);
      else this.alert(g, rule, key, tenant, samples, now);
    } catch (err) {
      if (this.stopped) return;
      status.health = 'err';
      status.lastError = (err as Error).message;
      this.opts.logger.warn(
        { rule: rule.name, group: g.def.name, tenant, err: status.lastError },
        'rule evaluation failed',
      );
    }
    status.evaluationMs = performance.now() - started;
    g.status.set(key, status);
  }

  private async record(
    rule: RuleDef,
    tenant: string,
    samples: readonly { labels: LabelSet; v: number }[],
    now: number,
  ): Promise<void> {
    if (samples.length === 0) return;
    const b = new SeriesBatchBuilder(samples.length);
    for (const s of samples) {
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.labels)) if (k !== '__name__') labels[k] = v;
      Object.assign(labels, rule.labels, { __name__: rule.name });
      b.addSeries(labels).add(now, s.v);
    }
    await this.opts.storage.appender.append(tenant, b.build());
  }

  private alert(
    g: GroupState,
    rule: RuleDef,
    key: string,
    tenant: string,
    samples: readonly { labels: LabelSet; v: number }[],
    now: number,
  ): void {
    const seen = new Set<string>();
    const trackerRule = {
      name: rule.name,
      forMs: rule.forMs,
      keepFiringForMs: rule.keepFiringForMs,
      source: 'rule' as const,
      origin: origin(g.def),
    };
    const externalURL = this.opts.externalUrl();
    for (const s of samples) {
      const base: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.labels)) if (k !== '__name__') base[k] = v;
      const data = { labels: base, value: s.v, externalURL };
      const labels: Record<string, string> = { ...base };
      for (const [k, t] of rule.labelTemplates) labels[k] = t.render(data);
      labels.alertname = rule.name;
      labels.tenant = tenant;
      labels.severity ??= 'warning';
      const fp = fingerprint(labels);
      if (seen.has(fp))
        throw new Error('vector contains metrics with the same labelset after applying alert labels');
      seen.add(fp);
      this.tracker.activate(fp, trackerRule, labels, now, s.v, (value) => {
        const ann: Record<string, string> = {};
        for (const [k, t] of rule.annotationTemplates) ann[k] = t.render({ ...data, value });
        if (ann.summary === undefined) ann.summary = `${rule.name}: ${formatValue(value)}`;
        return ann;
      });
    }
    const before = g.active.get(key) ?? new Set<string>();
    for (const fp of before) if (!seen.has(fp)) this.tracker.deactivate(fp, now);
    const still = new Set<string>();
    for (const fp of [...before, ...seen]) if (this.tracker.has(fp)) still.add(fp);
    g.active.set(key, still);
  }

  /** `GET /api/v1/rules` groups for one tenant, in Prometheus's shape. */
  groups(tenant: string): unknown[] {
    return this.groupsState.map((g) => ({
      name: g.def.name,
      file: g.def.file,
      interval: g.intervalMs / 1000,
      limit: g.def.limit,
      lastEvaluation: iso(g.lastEvaluationMs),
      evaluationTime: g.evaluationMs / 1000,
      rules: g.def.rules.map((rule, idx) => {
        const st = g.status.get(`${tenant}\u0000${idx}`);
        const common = {
          name: rule.name,
          query: rule.expr,
          labels: rule.labels,
          health: st?.health ?? 'unknown',
          ...(st?.lastError ? { lastError: st.lastError } : {}),
          evaluationTime: (st?.evaluationMs ?? 0) / 1000,
          lastEvaluation: iso(st?.lastEvaluationMs ?? 0),
        };
        if (rule.kind === 'recording') return { ...common, type: 'recording' };
        const alerts = [...(g.active.get(`${tenant}\u0000${idx}`) ?? [])]
          .map((fp) => this.tracker.get(fp))
          .filter((a) => a !== undefined);
        const state = alerts.some((a) => a.state === 'firing')
          ? 'firing'
          : alerts.length > 0
            ? 'pending'
            : 'inactive';
        return {
          ...common,
          state,
          duration: rule.forMs / 1000,
          keepFiringFor: rule.keepFiringForMs / 1000,
          annotations: rule.annotations,
          alerts: alerts.map((a) => ({
            labels: a.labels,
            annotations: a.annotations,
            state: a.state,
            activeAt: new Date(a.activeAtMs).toISOString(),
            value: promFloatString(a.value),
          })),
          type: 'alerting',
        };
      }),
    }));
  }
}

function origin(g: RuleGroupDef): string {
  return `${g.file}:${g.name}`;
}

function iso(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : '0001-01-01T00:00:00Z';
}
