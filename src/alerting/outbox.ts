/**
 * The notification outbox: every notification is a row in the store before anyone tries to send it, so a
 * receiver that is down, a crash or a restart loses nothing. One worker loop sends what is due, a few at a
 * time, and records the outcome: delivered; a retry later with exponential backoff and full jitter (or the
 * receiver's Retry-After); or failed (permanent error, or still undelivered after `max_age`).
 *
 * In a cluster only the dispatcher leader sends: `mayDeliver` is asked before each claim and again before each
 * send, so a sender that lost leadership stops at once and gives back, unsent, what it had claimed.
 */
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Integration } from './dispatcher.js';
import type { DueNotification } from './records.js';
import type { AlertRepository } from './repository.js';

export interface OutboxOptions {
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
  /** Sends in flight at once. */
  readonly concurrency?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Whether this process may send now (the cluster's leader); always, when absent. */
  readonly mayDeliver?: () => boolean;
}

const IDLE_POLL_MS = 5000;

export class Outbox {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private readonly inFlight = new Set<AbortController>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sent: Counter;
  private readonly latency: Histogram;

  constructor(
    private readonly store: AlertRepository,
    private readonly integrations: ReadonlyMap<string, Integration>,
    private readonly opts: OutboxOptions,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.sent = new Counter({
      name: 'trainwatch_notifications_total',
      help: 'Notification delivery attempts by receiver, integration and outcome (delivered, retry, failed).',
      labelNames: ['receiver', 'integration', 'outcome'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'trainwatch_notification_delivery_seconds',
      help: 'Time from queueing a notification to its delivery.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Something was queued: look at once instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const c of this.inFlight) c.abort();
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const concurrency = Math.max(1, this.opts.concurrency ?? 8);
    while (this.running) {
      this.woken = false;
      let due: DueNotification[] = [];
      let next: number | undefined;
      const may = this.opts.mayDeliver?.() ?? true;
      try {
        if (may) due = await this.store.due(this.now(), concurrency);
        if (due.length === 0 && may) next = await this.store.nextDueMs();
      } catch (err) {
        this.logger.error({ err }, 'outbox: cannot read due notifications');
      }
      if (due.length > 0) {
        await Promise.all(due.map((n) => this.deliver(n)));
        continue;
      }
      if (this.woken) continue;
      const wait = next === undefined ? IDLE_POLL_MS : Math.min(IDLE_POLL_MS, Math.max(0, next - this.now()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private async deliver(n: DueNotification): Promise<void> {
    try {
      await this.attempt(n);
    } catch (err) {
      this.logger.error({ err, id: n.id }, 'outbox: cannot record a delivery outcome');
    }
  }

  private async attempt(n: DueNotification): Promise<void> {
    const integ = this.integrations.get(`${n.receiver}\u0000${n.integration}`);
    const now = this.now();
    if (!integ) {
      await this.store.markFailed(
        n.id,
        `receiver ${n.receiver} has no integration ${n.integration} any more`,
        now,
      );
      return;
    }
    if (!this.running || !(this.opts.mayDeliver?.() ?? true)) {
      // Leadership (or the process) ends: the next sender takes it at once instead of after the claim's lease.
      await this.store.release(n.id, n.nextAttemptMs);
      return;
    }
    const ctl = new AbortController();
    this.inFlight.add(ctl);
    const startedMs = this.now();
    const timer = setTimeout(() => ctl.abort(), this.opts.timeoutMs);
    let outcome: Awaited<ReturnType<Integration['notifier']['send']>>;
    try {
      outcome = await integ.notifier.send(n.group, ctl.signal);
    } catch (err) {
      outcome = { kind: 'retryable', reason: `notifier threw: ${(err as Error).message}` };
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(ctl);
    }
    const done = this.now();
    const attemptMs = Math.max(0, done - startedMs);
    const labels = { receiver: n.receiver, integration: n.integration };
    if (outcome.kind === 'delivered') {
      await this.store.markDelivered(n.id, done, attemptMs);
      this.sent.inc({ ...labels, outcome: 'delivered' });
      this.latency.observe((done - n.createdMs) / 1000);
      return;
    }
    if (outcome.kind === 'permanent' || done - n.createdMs >= this.opts.maxAgeMs) {
      const reason =
        outcome.kind === 'permanent'
          ? outcome.reason
          : `gave up after ${n.attempts + 1} attempts: ${outcome.reason}`;
      await this.store.markFailed(n.id, reason, done, attemptMs);
      this.sent.inc({ ...labels, outcome: 'failed' });
      this.logger.warn({ ...labels, id: n.id, reason }, 'notification failed');
      return;
    }
    const backoff = Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** Math.min(n.attempts, 30));
    const delay = Math.max(outcome.retryAfterMs ?? 0, Math.round(this.random() * backoff));
    await this.store.markRetry(n.id, done + delay, outcome.reason, done, attemptMs);
    this.sent.inc({ ...labels, outcome: 'retry' });
    if (n.attempts === 0 || n.attempts % 10 === 9)
      this.logger.warn(
        { ...labels, id: n.id, reason: outcome.reason, retryInMs: delay },
        'notification will be retried',
      );
  }
}
