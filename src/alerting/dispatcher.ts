/**
 * Grouping and notification decisions (Alertmanager's dispatcher, aggregation groups and dedup stage):
 * firing and resolved alerts are routed, collected into groups by the route's `group_by` labels, and each group
 * is flushed `group_wait` after its first alert and every `group_interval` after that. At each flush, for each
 * integration of the receiver, the notification log decides whether the receiver must hear anything: a firing
 * alert it was not told about, a resolution of one it was told about (when `send_resolved`), or the same
 * firing set again after `repeat_interval`. The log is in the store (SQLite, or PostgreSQL shared by the
 * cluster), so after a restart or a change of leader the rebuilt groups are compared with what was already
 * sent and nothing is sent twice (no notification storm).
 *
 * Silenced alerts are left out of what is sent (and of the log), so they are sent once their silence ends.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { LabelSet } from '../model/labels.js';
import type { Alert, AlertGroup, Notifier } from './notifier.js';
import type { AlertRepository } from './repository.js';
import { groupKeyOf, groupLabelsOf, matchRoutes, type Route } from './routing.js';
import type { Silences } from './silences.js';

/** One configured delivery target of a receiver, e.g. its second webhook. */
export interface Integration {
  readonly receiver: string;
  /** `webhook[0]`, `slack[1]`, `email[0]`, `alertmanager[0]`, `pagerduty[0]`, `action:requeue`. */
  readonly name: string;
  readonly notifier: Notifier;
  readonly sendResolved: boolean;
  /** Re-send firing alerts at least this often (Alertmanager forwarding); otherwise repeat_interval. */
  readonly resendIntervalMs?: number;
}

export interface DispatcherOptions {
  readonly externalUrl: string;
  readonly now?: () => number;
  /**
   * Counts each group flush by receiver (`trainwatch_alert_group_flushes_total`): how often the dispatcher
   * decided whether to notify. Created by the caller, once per process, because dispatchers come and go with
   * leadership.
   */
  readonly flushes?: Counter<'receiver'>;
}

/** Firing alert identity within a notification log entry: one episode of one alert. */
export function episodeKey(a: Alert): string {
  return `${a.fingerprint}@${a.activeAtMs}`;
}

class AggregationGroup {
  readonly alerts = new Map<string, Alert>();
  timer: NodeJS.Timeout | undefined;
  flushed = false;
  /** A flush is running (it awaits the store): inserts meanwhile wait for the one it schedules next. */
  flushing = false;

  constructor(
    readonly route: Route,
    readonly key: string,
    readonly labels: LabelSet,
  ) {}
}

export class Dispatcher {
  private readonly groups = new Map<string, AggregationGroup>();
  private readonly now: () => number;
  private readonly flushes: Counter<'receiver'> | undefined;
  private stopped = false;
  /** Called after each enqueue, so the outbox sends at once. */
  onEnqueue: (() => void) | undefined;
  /**
   * Called before a group's notifications are decided and queued: the hub writes the alert changes it holds
   * in memory, so that nothing is notified that a crash could make the history forget.
   */
  beforeNotify: (() => Promise<unknown>) | undefined;
  /**
   * Whether this dispatcher may still queue notifications (a cluster's leader: while it leads), asked right
   * before each; always, when absent.
   */
  mayNotify: (() => boolean) | undefined;
  /** Base URL of the dashboard in notifications (set once the server knows the address it bound). */
  externalUrl: string;

  constructor(
    private readonly root: Route,
    private readonly integrations: ReadonlyMap<string, readonly Integration[]>,
    private readonly store: AlertRepository,
    private readonly silences: Silences,
    private readonly logger: Logger,
    opts: DispatcherOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.externalUrl = opts.externalUrl;
    this.flushes = opts.flushes;
  }

  /** A firing or resolved alert (pending alerts are never notified). */
  insert(alert: Alert): void {
    if (this.stopped || alert.state === 'pending') return;
    for (const route of matchRoutes(this.root, alert.labels)) {
      if ((this.integrations.get(route.receiver) ?? []).length === 0) continue;
      const labels = groupLabelsOf(route, alert.labels);
      const key = groupKeyOf(route, labels);
      const g = this.groups.get(key);
      if (g) this.add(g, alert);
      else if (alert.state !== 'resolved') this.add(this.newGroup(route, key, labels), alert);
      // A resolution of a group not in memory matters only if its receiver was told the alert fires.
      else
        void this.wasNotified(route, key, alert).then(
          (told) => {
            if (!told || this.stopped) return;
            this.add(this.groups.get(key) ?? this.newGroup(route, key, labels), alert);
          },
          (err: unknown) => this.logger.error({ err, group: key }, 'cannot read the notification log'),
        );
    }
  }

  private newGroup(route: Route, key: string, labels: LabelSet): AggregationGroup {
    const g = new AggregationGroup(route, key, labels);
    this.groups.set(key, g);
    return g;
  }

  private add(g: AggregationGroup, alert: Alert): void {
    const route = g.route;
    g.alerts.set(alert.fingerprint, alert);
    if (g.timer || g.flushing) return;
    // An alert older than group_wait (e.g. reloaded after a restart) need not wait: flush at once.
    const wait = g.flushed
      ? route.groupIntervalMs
      : this.now() - alert.activeAtMs > route.groupWaitMs && alert.activeAtMs <= this.now()
        ? 0
        : route.groupWaitMs;
    this.schedule(g, wait);
  }

  private async wasNotified(route: Route, key: string, alert: Alert): Promise<boolean> {
    const ep = episodeKey(alert);
    for (const integ of this.integrations.get(route.receiver) ?? [])
      if ((await this.store.lastNotified(route.receiver, integ.name, key))?.firing.has(ep)) return true;
    return false;
  }

  private schedule(g: AggregationGroup, ms: number): void {
    clearTimeout(g.timer);
    g.timer = setTimeout(() => {
      g.timer = undefined;
      g.flushing = true;
      this.flush(g).then(
        () => {
          g.flushing = false;
        },
        (err: unknown) => {
          g.flushing = false;
          this.logger.error({ err, group: g.key }, 'alert group flush failed; retrying at the next interval');
          if (!this.stopped && !g.timer) this.schedule(g, g.route.groupIntervalMs);
        },
      );
    }, ms);
    g.timer.unref?.();
  }

  /** Decides, per integration, whether the group's receiver must be told something now, and queues it. */
  async flush(g: AggregationGroup): Promise<void> {
    await this.beforeNotify?.();
    if (this.stopped) return;
    const now = this.now();
    g.flushed = true;
    const all = [...g.alerts.values()];
    const firing = all.filter(
      (a) => a.state !== 'resolved' && this.silences.mutedBy(a.labels, now).length === 0,
    );
    const resolved = all.filter((a) => a.state === 'resolved');
    const firingKeys = firing.map(episodeKey);
    for (const integ of this.integrations.get(g.route.receiver) ?? []) {
      if (this.stopped || this.mayNotify?.() === false) return;
      const last = await this.store.lastNotified(integ.receiver, integ.name, g.key);
      if (this.stopped || this.mayNotify?.() === false) return;
      const told = last?.firing ?? new Set<string>();
      const newFiring = firingKeys.some((k) => !told.has(k));
      const resolvedTold = resolved.filter((a) => told.has(episodeKey(a)));
      const repeatMs = Math.min(g.route.repeatIntervalMs, integ.resendIntervalMs ?? Number.POSITIVE_INFINITY);
      const repeat = firing.length > 0 && last !== undefined && now - last.sentAtMs >= repeatMs;
      const sendResolved = integ.sendResolved && resolvedTold.length > 0;
      if (newFiring || sendResolved || repeat) {
        const alerts = [...firing, ...(integ.sendResolved ? resolvedTold : [])];
        const group = this.group(g, alerts);
        await this.store.enqueue(integ.receiver, integ.name, group, summarize(group), now);
        await this.store.setNotified(integ.receiver, integ.name, g.key, firingKeys, now);
        this.onEnqueue?.();
      } else if (resolvedTold.length > 0) {
        // Resolutions this integration does not want to hear about: forget that it was told they fire.
        await this.store.setNotified(integ.receiver, integ.name, g.key, firingKeys, last?.sentAtMs ?? now);
      }
    }
    this.flushes?.inc({ receiver: g.route.receiver });
    // Only what this flush saw: a new episode of the same alert inserted meanwhile stays.
    for (const a of resolved) if (g.alerts.get(a.fingerprint) === a) g.alerts.delete(a.fingerprint);
    if (g.alerts.size === 0) {
      this.groups.delete(g.key);
      return;
    }
    if (!this.stopped) this.schedule(g, g.route.groupIntervalMs);
  }

  private group(g: AggregationGroup, alerts: readonly Alert[]): AlertGroup {
    return {
      receiver: g.route.receiver,
      groupKey: g.key,
      groupLabels: g.labels,
      commonLabels: common(alerts.map((a) => a.labels)),
      commonAnnotations: common(alerts.map((a) => a.annotations)),
      externalUrl: this.externalUrl,
      alerts,
    };
  }

  /** Groups and their alerts, for the status API. */
  snapshot(): { groupKey: string; receiver: string; labels: LabelSet; alerts: number }[] {
    return [...this.groups.values()].map((g) => ({
      groupKey: g.key,
      receiver: g.route.receiver,
      labels: g.labels,
      alerts: g.alerts.size,
    }));
  }

  stop(): void {
    this.stopped = true;
    for (const g of this.groups.values()) clearTimeout(g.timer);
    this.groups.clear();
  }
}

function common(sets: readonly Readonly<Record<string, string>>[]): Record<string, string> {
  if (sets.length === 0) return {};
  const out: Record<string, string> = { ...sets[0] };
  for (const s of sets.slice(1)) for (const k of Object.keys(out)) if (s[k] !== out[k]) delete out[k];
  return out;
}

/** One line for the delivery-status list: `[FIRING:2] TrainingStalled {job_id="x"}`. */
export function summarize(group: AlertGroup): string {
  const firing = group.alerts.filter((a) => a.state !== 'resolved').length;
  const resolved = group.alerts.length - firing;
  const names = [...new Set(group.alerts.map((a) => a.name))].join(', ');
  return `${firing > 0 ? `[FIRING:${firing}]` : '[RESOLVED]'}${firing > 0 && resolved > 0 ? ` (+${resolved} resolved)` : ''} ${names} ${groupKeyLabels(group.groupLabels)}`;
}

function groupKeyLabels(l: LabelSet): string {
  return `{${Object.entries(l)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}
