/**
 * The alert hub: where every alert source (the processor's detectors, the PromQL rule evaluator) reports
 * changes. It keeps the open alerts it was told of in memory, hands firing and resolved alerts to the
 * dispatcher (grouping, notification) when it has one, runs the action hooks, and persists every change
 * through the stage's `AlertRepository` (SQLite embedded, PostgreSQL in a cluster).
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
 *
 * `transition` and `value` stay synchronous (the detectors' hot path) and decide from memory only: what waits
 * to be written and the open alerts. An episode memory does not know of (e.g. replayed after a partition moved
 * here, or after a restart) is queued, and the store's monotonic upsert decides what is stored and counted;
 * listeners and actions hear of it at once (actions are deduplicated per episode in the outbox).
 *
 * Cluster mode (no dispatcher here): the hub only persists; the dispatcher leader learns of the changes from
 * the store's change feed (`follower.ts`), and the APIs read open alerts from the store (`openFromStore`).
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LabelMatcher } from '../model/labels.js';
import { matchesAll } from '../model/labels.js';
import type { Dispatcher } from './dispatcher.js';
import type { Alert, AlertSource } from './notifier.js';
import { type AlertQuery, STATE_ORDER } from './records.js';
import type { AlertRepository } from './repository.js';
import type { Silences } from './silences.js';
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
  /** Memory did not know the episode: whether the change is new is for the store to say (and count). */
  unknown: boolean;
  change: AlertChange;
}

export interface AlertHubOptions {
  readonly now?: () => number;
  /**
   * Where the APIs' open alerts come from: this process's memory (embedded: every source reports here), or
   * the store (a cluster, where each processor's hub knows only its own partitions' alerts).
   */
  readonly openFromStore?: boolean;
}

/** Actions as the hub runs them (in the process that dispatches). */
export interface ActionRunner {
  run(alert: Alert, change: 'firing' | 'resolved', nowMs: number): Promise<void>;
}

export class AlertHub implements AlertSink {
  private readonly open = new Map<string, Alert>();
  private readonly dirty = new Map<string, Alert>();
  /** Changes not yet written, by episode (tenant, fingerprint, activeAt), in the order they were first made. */
  private readonly unsaved = new Map<string, Unsaved>();
  private readonly listeners = new Set<AlertListener>();
  private readonly transitions: Counter;
  private readonly now: () => number;

  private readonly openFromStore: boolean;
  /** The write in progress: writes run one at a time, in order. */
  private writing: Promise<boolean> | undefined;

  /**
   * @param dispatcher undefined in a cluster's processes: the leader dispatches from the change feed.
   * @param actions with the dispatcher only.
   */
  constructor(
    private readonly store: AlertRepository,
    private readonly silences: Silences,
    private readonly dispatcher: Dispatcher | undefined,
    private readonly actions: ActionRunner | undefined,
    private readonly logger: Logger,
    registry: Registry,
    opts: AlertHubOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.openFromStore = opts.openFromStore ?? false;
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

  /**
   * Loads the open alerts (of `source` only, when given) and gives the dispatcher, when there is one, what may
   * still need notifying. A cluster's processor loads nothing: it learns its partitions' alerts from its
   * detectors' restored state, and another partition's alerts are not its to reconcile.
   */
  async start(source?: AlertSource): Promise<void> {
    for (const a of await this.store.open())
      if (source === undefined || a.source === source) this.open.set(a.fingerprint, a);
    if (this.dispatcher) {
      for (const a of this.open.values()) if (a.state === 'firing') this.dispatcher.insert(a);
      for (const a of await this.store.resolvedSince(this.now() - RESOLVED_LOOKBACK_MS))
        this.dispatcher.insert(a);
    }
    this.logger.info({ open: this.open.size }, 'alert hub started');
  }

  onChange(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  transition(alert: Alert, change: AlertChange): void {
    let changed: boolean | undefined = false;
    if (change === 'dropped') {
      changed = this.open.delete(alert.fingerprint);
      this.queue(alert, true, change, false);
    } else {
      changed = this.wouldChange(alert);
      if (changed !== false) this.queue(alert, false, change, changed === undefined);
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
    if (change === 'firing' || change === 'resolved') this.dispatcher?.insert(alert);
    if (changed === false) return;
    // An episode memory does not know is counted once the store says it was new (see `flush`).
    if (changed) this.transitions.inc({ source: alert.source, change });
    this.changed(alert, change);
  }

  /**
   * A change that is (or, for an episode memory does not know, may be) new to the history: told to listeners,
   * acted on once written. Actions are queued with a dedup key per episode and change, so a replay that turns
   * out not to be new runs nothing twice.
   */
  private changed(alert: Alert, change: AlertChange): void {
    if ((change === 'firing' || change === 'resolved') && this.actions)
      // The change is on disk before anything acts on it.
      void this.flush().then(async (ok) => {
        if (ok) await this.actions?.run(alert, change, this.now());
      });
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
   * Whether recording `alert` changes the stored history (a new episode, or a later state of a known one), as
   * far as memory knows: what waits to be written, or the open alerts. Undefined when memory does not know
   * the episode: the store's upsert decides.
   */
  private wouldChange(alert: Alert): boolean | undefined {
    const waiting = this.unsaved.get(AlertHub.episodeKey(alert));
    if (waiting) return waiting.drop || STATE_ORDER[alert.state] > STATE_ORDER[waiting.alert.state];
    const known = this.open.get(alert.fingerprint);
    // What the hub was told of an episode is written or waiting: the store is at least that far.
    if (known && known.activeAtMs === alert.activeAtMs)
      return STATE_ORDER[alert.state] > STATE_ORDER[known.state];
    return undefined;
  }

  private queue(alert: Alert, drop: boolean, change: AlertChange, unknown: boolean): void {
    const key = AlertHub.episodeKey(alert);
    const waiting = this.unsaved.get(key);
    if (!waiting) {
      this.unsaved.set(key, { alert, drop, unknown, change });
      return;
    }
    waiting.change = change;
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
   * transaction; resolves true once they are stored. On failure the changes stay queued for the next try
   * (and the error is logged) and it resolves false. Writes run one at a time: a call made while one runs
   * waits for it, then writes what is left.
   *
   * The write starts before this returns (on SQLite it is done by then): callers that do not await still
   * find it ordered before whatever they do next.
   */
  flush(values = false): Promise<boolean> {
    if (this.writing) {
      const after = this.writing.then(() => this.flush(values));
      return after;
    }
    if (this.unsaved.size === 0 && (!values || this.dirty.size === 0)) return Promise.resolve(true);
    const changes = [...this.unsaved.values()];
    const vals = values ? [...this.dirty.values()] : [];
    // What is taken for this write leaves the queues now; a failure puts back what is not newer meanwhile.
    this.unsaved.clear();
    if (values) this.dirty.clear();
    let stored: Promise<boolean[]>;
    try {
      stored = this.store.persist(changes, vals, this.now());
    } catch (err) {
      stored = Promise.reject(err);
    }
    const writing = stored.then(
      (changed) => {
        changes.forEach((c, i) => {
          if (c.unknown && changed[i]) this.transitions.inc({ source: c.alert.source, change: c.change });
        });
        return true;
      },
      (err: unknown) => {
        this.logger.error({ err, changes: changes.length }, 'cannot persist alert changes; will retry');
        for (const c of changes) {
          const key = AlertHub.episodeKey(c.alert);
          if (!this.unsaved.has(key)) this.unsaved.set(key, c);
        }
        for (const a of vals) if (!this.dirty.has(a.fingerprint)) this.dirty.set(a.fingerprint, a);
        return false;
      },
    );
    this.writing = writing;
    void writing.finally(() => {
      if (this.writing === writing) this.writing = undefined;
    });
    return writing;
  }

  value(alert: Alert): void {
    const known = this.open.get(alert.fingerprint);
    if (!known || known.activeAtMs !== alert.activeAtMs) return;
    // The value and the annotations rendered from it (a detector's text states the current value).
    const updated = { ...known, value: alert.value, annotations: alert.annotations };
    this.open.set(alert.fingerprint, updated);
    this.dirty.set(alert.fingerprint, updated);
  }

  /** Writes the pending changes and the values that changed since the last call (the APIs read memory meanwhile). */
  flushValues(): Promise<boolean> {
    return this.flush(true);
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

  // ---- reads --------------------------------------------------------------------------------------------

  view(a: Alert, now = this.now()): AlertView {
    return { ...a, silencedBy: a.state === 'resolved' ? [] : this.silences.mutedBy(a.labels, now) };
  }

  /**
   * Open alerts of a tenant (or every tenant when null), newest first, for the APIs: from memory, or from the
   * store in a cluster (`openFromStore`).
   */
  async listOpen(tenant: string | null): Promise<AlertView[]> {
    if (!this.openFromStore) return this.openAlerts(tenant);
    const now = this.now();
    return (await this.store.open())
      .filter((a) => tenant === null || a.labels.tenant === tenant)
      .sort((a, b) => b.activeAtMs - a.activeAtMs)
      .map((a) => this.view(a, now));
  }

  /** Open alerts this process was told of, of a tenant (or every tenant when null), newest first. */
  openAlerts(tenant: string | null): AlertView[] {
    const now = this.now();
    return [...this.open.values()]
      .filter((a) => tenant === null || a.labels.tenant === tenant)
      .sort((a, b) => b.activeAtMs - a.activeAtMs)
      .map((a) => this.view(a, now));
  }

  /** History and open alerts from the store, with current values for open ones. */
  async query(q: AlertQuery): Promise<AlertView[]> {
    await this.flush();
    const now = this.now();
    return (await this.store.query(q)).map((a) => {
      const live = this.open.get(a.fingerprint);
      return this.view(
        live && live.activeAtMs === a.activeAtMs ? { ...a, value: live.value, state: live.state } : a,
        now,
      );
    });
  }
}

/**
 * The action hooks: each matching action's run is queued in the outbox once per episode and change (its
 * dedup key), whatever replays follow, unless the alert is silenced. Runs where notifications are decided
 * (the embedded process, or the cluster's dispatcher leader), after the change is stored.
 */
export class OutboxActions implements ActionRunner {
  constructor(
    private readonly store: AlertRepository,
    private readonly silences: Silences,
    private readonly actions: readonly ActionRule[],
    private readonly onEnqueue: () => void,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.actions.length;
  }

  async run(alert: Alert, change: 'firing' | 'resolved', now: number): Promise<void> {
    if (this.silences.mutedBy(alert.labels, now).length > 0) return;
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
      try {
        await this.store.enqueue(
          receiver,
          'action',
          group,
          `${action.name} for ${alert.name} (${change})`,
          now,
          `${receiver}:${alert.fingerprint}:${alert.activeAtMs}:${change}`,
        );
      } catch (err) {
        this.logger.error({ err, action: action.name, alert: alert.name }, 'cannot queue an action');
        continue;
      }
      this.onEnqueue();
    }
  }
}
