/**
 * The alert hub: where every alert source (the processor's detectors, the PromQL rule evaluator) reports
 * changes. It keeps the open alerts in memory for the APIs, hands firing and resolved alerts to the
 * dispatcher (grouping, notification), runs the action hooks, and persists every change (SQLite).
 * Reported changes may repeat (a replay of the bus after a crash re-derives them); the store recognises
 * episodes it already has, the notification log what was already sent, and the outbox's dedup keys the
 * actions already run.
 *
 * Persistence is batched: changes wait in memory and are written in one transaction ({@link AlertHub.flush})
 * before any notification or action about them is queued, before the processor writes its detector state
 * (so a state file never covers a change that is not stored: after a crash, whatever was not written is
 * re-derived from the bus), before history is read, and at least every second (rule alerts, whose state is
 * not checkpointed, lose at most that much of a pending period to a crash). A pending alert dropped before
 * the next write costs nothing.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LabelMatcher } from '../model/labels.js';
import { matchesAll } from '../model/labels.js';
import type { Dispatcher } from './dispatcher.js';
import type { Alert, AlertSource } from './notifier.js';
import type { Silences } from './silences.js';
import { type AlertQuery, type AlertStore, STATE_ORDER } from './store.js';
import type { AlertChange, AlertSink } from './tracker.js';

export interface ActionRule {
  readonly name: string;
  readonly matchers: readonly LabelMatcher[];
  readonly on: readonly ('firing' | 'resolved')[];
}

/** An alert as the APIs show it: with the silences that mute it. */
export interface AlertView extends Alert {
  readonly silencedBy: readonly string[];
}

export type AlertListener = (alert: Alert, change: AlertChange) => void;

/** How far back, at start, resolved alerts are handed to the dispatcher (their resolution may be unsent). */
const RESOLVED_LOOKBACK_MS = 3_600_000;

/** A change not yet written: the newest state of one episode, or its drop. */
interface Unsaved {
  alert: Alert;
  drop: boolean;
}

export class AlertHub implements AlertSink {
  private readonly open = new Map<string, Alert>();
  private readonly dirty = new Map<string, Alert>();
  /** Changes not yet written, by episode (tenant, fingerprint, activeAt), in the order they were first made. */
  private readonly unsaved = new Map<string, Unsaved>();
  private readonly listeners = new Set<AlertListener>();
  private readonly transitions: Counter;
  private readonly now: () => number;

  constructor(
    private readonly store: AlertStore,
    private readonly silences: Silences,
    private readonly dispatcher: Dispatcher,
    private readonly actions: readonly ActionRule[],
    private readonly logger: Logger,
    registry: Registry,
    now?: () => number,
  ) {
    this.now = now ?? Date.now;
    this.transitions = new Counter({
      name: 'trainwatch_alert_transitions_total',
      help: 'Alert state changes, by source and change (pending, firing, resolved, dropped).',
      labelNames: ['source', 'change'],
      registers: [registry],
    });
    const open = this.open;
    new Gauge({
      name: 'trainwatch_alerts',
      help: 'Open alerts by state.',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        let pending = 0;
        let firing = 0;
        for (const a of open.values()) a.state === 'pending' ? pending++ : firing++;
        this.set({ state: 'pending' }, pending);
        this.set({ state: 'firing' }, firing);
      },
    });
  }

  /** Loads the open alerts and gives the dispatcher what may still need notifying. */
  start(): void {
    for (const a of this.store.open()) this.open.set(a.fingerprint, a);
    for (const a of this.open.values()) if (a.state === 'firing') this.dispatcher.insert(a);
    for (const a of this.store.resolvedSince(this.now() - RESOLVED_LOOKBACK_MS)) this.dispatcher.insert(a);
    this.logger.info({ open: this.open.size }, 'alert hub started');
  }

  onChange(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  transition(alert: Alert, change: AlertChange): void {
    const now = this.now();
    let changed = false;
    try {
      if (change === 'dropped') {
        this.queue(alert, true);
        changed = this.open.delete(alert.fingerprint);
      } else {
        changed = this.wouldChange(alert);
        if (changed) this.queue(alert, false);
      }
    } catch (err) {
      this.logger.error(
        { err, alert: alert.name, fingerprint: alert.fingerprint },
        'cannot persist an alert change',
      );
    }
    if (change === 'pending' || change === 'firing') {
      const known = this.open.get(alert.fingerprint);
      // Never let a replayed `pending` hide a `firing` of the same episode.
      if (
        !(known && known.activeAtMs === alert.activeAtMs && known.state === 'firing' && change === 'pending')
      )
        this.open.set(alert.fingerprint, alert);
    } else if (change === 'resolved') {
      const known = this.open.get(alert.fingerprint);
      if (known && known.activeAtMs === alert.activeAtMs) this.open.delete(alert.fingerprint);
    }
    this.dirty.delete(alert.fingerprint);
    if (change === 'firing' || change === 'resolved') this.dispatcher.insert(alert);
    if (!changed) return;
    this.transitions.inc({ source: alert.source, change });
    if ((change === 'firing' || change === 'resolved') && this.actions.length > 0)
      this.runActions(alert, change, now);
    for (const l of this.listeners) {
      try {
        l(alert, change);
      } catch (err) {
        this.logger.error({ err }, 'alert listener failed');
      }
    }
  }

  private static episodeKey(alert: Alert): string {
    return `${alert.labels.tenant ?? ''}\u0000${alert.fingerprint}\u0000${alert.activeAtMs}`;
  }

  /**
   * Whether recording `alert` changes the stored history: a new episode, or a later state of a known one (as
   * {@link AlertStore.record} decides). Known from what waits to be written, from the open alerts, or else
   * read from the store.
   */
  private wouldChange(alert: Alert): boolean {
    const waiting = this.unsaved.get(AlertHub.episodeKey(alert));
    if (waiting) return waiting.drop || STATE_ORDER[alert.state] > STATE_ORDER[waiting.alert.state];
    const known = this.open.get(alert.fingerprint);
    // What the hub was told of an episode is written or waiting: the store is at least that far.
    if (
      known &&
      known.activeAtMs === alert.activeAtMs &&
      STATE_ORDER[alert.state] <= STATE_ORDER[known.state]
    )
      return false;
    const stored = this.store.episodeState(alert);
    return stored === undefined || STATE_ORDER[alert.state] > STATE_ORDER[stored];
  }

  private queue(alert: Alert, drop: boolean): void {
    const key = AlertHub.episodeKey(alert);
    const waiting = this.unsaved.get(key);
    if (!waiting) {
      this.unsaved.set(key, { alert, drop });
      return;
    }
    if (drop) {
      waiting.drop = true;
      waiting.alert = alert;
    } else if (waiting.drop || STATE_ORDER[alert.state] > STATE_ORDER[waiting.alert.state]) {
      // A resolution keeps the firing time of the state it follows (as the store's update does).
      waiting.alert =
        alert.firingAtMs === null && waiting.alert.firingAtMs !== null && !waiting.drop
          ? { ...alert, firingAtMs: waiting.alert.firingAtMs }
          : alert;
      waiting.drop = false;
    }
  }

  /** Changes not yet written (for tests and self-metrics). */
  get unsavedCount(): number {
    return this.unsaved.size;
  }

  /**
   * Writes every change made since the last write, and the values that changed when `values`, in one
   * transaction. On failure the changes stay queued for the next try (and the error is logged).
   */
  flush(values = false): boolean {
    if (this.unsaved.size === 0 && (!values || this.dirty.size === 0)) return true;
    const changes = [...this.unsaved.values()];
    const vals = values ? [...this.dirty.values()] : [];
    try {
      this.store.persist(changes, vals, this.now());
    } catch (err) {
      this.logger.error({ err, changes: changes.length }, 'cannot persist alert changes; will retry');
      return false;
    }
    this.unsaved.clear();
    if (values) this.dirty.clear();
    return true;
  }

  value(alert: Alert): void {
    const known = this.open.get(alert.fingerprint);
    if (!known || known.activeAtMs !== alert.activeAtMs) return;
    const updated = { ...known, value: alert.value };
    this.open.set(alert.fingerprint, updated);
    this.dirty.set(alert.fingerprint, updated);
  }

  /** Writes the pending changes and the values that changed since the last call (the APIs read memory meanwhile). */
  flushValues(): void {
    this.flush(true);
  }

  /**
   * After a source has rebuilt its state (the processor caught up with the bus), alerts it reported earlier
   * but no longer has are resolved now: e.g. its state file was lost and it re-learned from the bus.
   */
  reconcile(source: AlertSource, stillOpen: ReadonlySet<string>, origins?: ReadonlySet<string>): number {
    const now = this.now();
    let n = 0;
    for (const a of [...this.open.values()]) {
      if (a.source !== source || stillOpen.has(a.fingerprint)) continue;
      if (origins && !origins.has(a.origin)) continue;
      n++;
      if (a.state === 'pending') this.transition({ ...a, state: 'resolved', resolvedAtMs: now }, 'dropped');
      else this.transition({ ...a, state: 'resolved', resolvedAtMs: now }, 'resolved');
    }
    if (n > 0) this.logger.info({ source, resolved: n }, 'resolved alerts their source no longer reports');
    return n;
  }

  private runActions(alert: Alert, change: 'firing' | 'resolved', now: number): void {
    if (this.silences.mutedBy(alert.labels, now).length > 0) return;
    // The change is on disk before anything acts on it.
    this.flush();
    for (const action of this.actions) {
      if (!action.on.includes(change) || !matchesAll(alert.labels, action.matchers)) continue;
      const receiver = `action:${action.name}`;
      const group = {
        receiver,
        groupKey: `${receiver}:${alert.fingerprint}`,
        groupLabels: {},
        commonLabels: alert.labels,
        commonAnnotations: alert.annotations,
        externalUrl: '',
        alerts: [alert],
      };
      this.store.enqueue(
        receiver,
        'action',
        group,
        `${action.name} for ${alert.name} (${change})`,
        now,
        `${receiver}:${alert.fingerprint}:${alert.activeAtMs}:${change}`,
      );
      this.dispatcher.onEnqueue?.();
    }
  }

  // ---- reads --------------------------------------------------------------------------------------------

  view(a: Alert, now = this.now()): AlertView {
    return { ...a, silencedBy: a.state === 'resolved' ? [] : this.silences.mutedBy(a.labels, now) };
  }

  /** Open alerts of a tenant (or every tenant when null), newest first. */
  openAlerts(tenant: string | null): AlertView[] {
    const now = this.now();
    return [...this.open.values()]
      .filter((a) => tenant === null || a.labels.tenant === tenant)
      .sort((a, b) => b.activeAtMs - a.activeAtMs)
      .map((a) => this.view(a, now));
  }

  /** History and open alerts from the store, with current values for open ones. */
  query(q: AlertQuery): AlertView[] {
    this.flush();
    const now = this.now();
    return this.store.query(q).map((a) => {
      const live = this.open.get(a.fingerprint);
      return this.view(
        live && live.activeAtMs === a.activeAtMs ? { ...a, value: live.value, state: live.state } : a,
        now,
      );
    });
  }
}
