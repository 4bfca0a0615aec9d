/**
 * The cluster's one dispatcher: while this process holds the alerting leadership (`LeaderElection` in
 * `meta/postgres`, passed in as a {@link Leadership}), it follows the store's change feed, feeds every firing
 * and resolved change to a dispatcher of its own, runs the action hooks, and its outbox sends. When leadership
 * is lost it stops at once: the dispatcher is dropped (its timers cleared), the outbox asks `isLeader` before
 * each claim and each send and gives back what it claimed unsent.
 *
 * A new term starts from what the store holds, not from what a previous leader had in memory: the feed's
 * cursor is read first, then the open alerts and recent resolutions are handed to a fresh dispatcher, then
 * the feed is followed from that cursor (a change seen twice is harmless: grouping is by fingerprint, and
 * the notification log, in the shared store, says what the receivers were already told, so nothing is sent
 * twice and nothing that was not sent is lost).
 *
 * Why polling, not LISTEN/NOTIFY: a notification is only a hint (it is lost while the listening session is
 * down, and a leader taking over must catch up from a cursor anyway), so the cursor poll is needed in any case;
 * one indexed query every 250 ms on one process is cheap, keeps the pool free of a dedicated session, and
 * adds at most that much to the alert latency budget (< 5 s; detectors fire in about 1 s).
 */
import type { Logger } from 'pino';
import type { Dispatcher } from './dispatcher.js';
import type { ActionRunner } from './hub.js';
import type { Alert } from './notifier.js';
import type { AlertChangeFeed, AlertRepository } from './repository.js';
import type { Silences } from './silences.js';

/** What the alerting stage needs of a leader election (`LeaderElection` has this shape). */
export interface Leadership {
  readonly isLeader: boolean;
  onChange(cb: (isLeader: boolean) => void): () => void;
}

export interface DispatchLeaderOptions {
  readonly store: AlertRepository;
  readonly feed: AlertChangeFeed;
  readonly leadership: Leadership;
  readonly silences: Silences;
  /** A fresh dispatcher for each term (a stopped one does not restart). */
  readonly newDispatcher: () => Dispatcher;
  readonly actions: ActionRunner | undefined;
  /** Told when a term starts and ends (the outbox wakes, rule evaluation starts or stops). */
  readonly onTerm?: (leading: boolean) => void | Promise<void>;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
  /** How far back, at a term's start, resolved alerts are handed to the dispatcher. */
  readonly resolvedLookbackMs?: number;
  readonly now?: () => number;
}

export const DEFAULT_FEED_POLL_MS = 250;
/** Silences written by other processes take effect on the leader within this long. */
const SILENCE_RELOAD_MS = 1000;
const FEED_BATCH = 1000;

export class DispatchLeader {
  private dispatcherOfTerm: Dispatcher | undefined;
  private term = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: DispatchLeaderOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The dispatcher of the current term (undefined when not leading). */
  get dispatcher(): Dispatcher | undefined {
    return this.dispatcherOfTerm;
  }

  get isLeader(): boolean {
    return this.opts.leadership.isLeader;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.opts.leadership.onChange((leading) => {
      if (!leading) this.endTerm();
      this.wakeUp?.();
    });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.endTerm();
    this.wakeUp?.();
    await this.loop;
  }

  private endTerm(): void {
    if (!this.dispatcherOfTerm) return;
    this.dispatcherOfTerm.stop();
    this.dispatcherOfTerm = undefined;
    this.opts.logger.info({ term: this.term }, 'alert dispatching stopped: leadership lost');
    void Promise.resolve(this.opts.onTerm?.(false)).catch((err: unknown) =>
      this.opts.logger.error({ err }, 'alerting: ending a leadership term failed'),
    );
  }

  private async run(): Promise<void> {
    const interval = this.opts.pollIntervalMs ?? DEFAULT_FEED_POLL_MS;
    let cursor = 0;
    let silencesAtMs = Number.NEGATIVE_INFINITY;
    while (this.running) {
      try {
        if (!this.isLeader) {
          this.endTerm();
        } else if (!this.dispatcherOfTerm) {
          cursor = await this.beginTerm();
          silencesAtMs = this.now();
        } else {
          if (this.now() - silencesAtMs >= SILENCE_RELOAD_MS) {
            await this.opts.silences.reload();
            silencesAtMs = this.now();
          }
          cursor = await this.follow(cursor);
        }
      } catch (err) {
        this.opts.logger.error({ err }, 'alerting leader: cannot follow the alert changes; retrying');
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        this.timer = setTimeout(resolve, interval);
        this.wakeUp = () => {
          clearTimeout(this.timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** Loads the current state into a fresh dispatcher; returns the feed cursor it covers. */
  private async beginTerm(): Promise<number> {
    const { store, feed } = this.opts;
    const cursor = await feed.latestChange();
    await this.opts.silences.reload();
    const open = await store.open();
    const resolved = await store.resolvedSince(this.now() - (this.opts.resolvedLookbackMs ?? 3_600_000));
    if (!this.isLeader || !this.running) return cursor;
    const d = this.opts.newDispatcher();
    this.dispatcherOfTerm = d;
    this.term++;
    for (const a of open) if (a.state === 'firing') d.insert(a);
    for (const a of resolved) d.insert(a);
    this.opts.logger.info(
      { term: this.term, open: open.length, cursor },
      'alert dispatching started: leader',
    );
    await this.opts.onTerm?.(true);
    return cursor;
  }

  /** Hands the changes after `cursor` to the dispatcher and the actions; returns the new cursor. */
  private async follow(cursor: number): Promise<number> {
    for (;;) {
      const { alerts, cursor: next } = await this.opts.feed.changesSince(cursor, FEED_BATCH);
      const d = this.dispatcherOfTerm;
      if (!d || !this.isLeader) return cursor;
      for (const a of alerts) await this.handle(d, a);
      cursor = next;
      if (alerts.length < FEED_BATCH) return cursor;
    }
  }

  private async handle(d: Dispatcher, a: Alert): Promise<void> {
    if (a.state === 'pending') return;
    d.insert(a);
    await this.opts.actions?.run(a, a.state, this.now());
  }
}
