/**
 * The audit log: who did what, to which tenant, when, from where, and how it ended (success, failure,
 * denied). Events are queued and written to the metadata store in batches (one flush at a time), so recording
 * never delays the request; `flush()` waits for the queue (tests, shutdown). Events older than the retention
 * (`auth.audit_retention`) are deleted hourly.
 */
import type { AccessStore, AuditEvent, AuditOutcome } from '../meta/index.js';
import type { Principal } from './auth.js';
import type { AuditedRequest } from './permissions.js';

const FLUSH_DELAY_MS = 200;
const PRUNE_INTERVAL_MS = 60 * 60_000;

/** The outcome of an answered request by its status. */
export function outcomeOf(status: number): AuditOutcome {
  return status < 400 ? 'success' : status === 401 || status === 403 ? 'denied' : 'failure';
}

/** Who a principal is, for the audit log: the user's name, else how it was identified (`token <id>`). */
export function actorOf(principal: Principal | undefined): string {
  return principal?.user?.name ?? principal?.via ?? 'anonymous';
}

export class AuditLog {
  private queue: AuditEvent[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(
    private readonly store: AccessStore,
    private readonly retentionMs: number,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
    void this.prune();
  }

  record(event: Omit<AuditEvent, 'timeMs'> & { timeMs?: number }): void {
    this.queue.push({ ...event, timeMs: event.timeMs ?? Date.now() });
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, FLUSH_DELAY_MS);
  }

  /** Records an audited route's request (route option `audit`). */
  recordRequest(r: AuditedRequest, tenantHeader?: string): void {
    this.record({
      actor: actorOf(r.principal),
      via: r.principal?.via ?? 'anonymous',
      tenant: r.principal?.tenant ?? tenantHeader ?? '',
      action: r.action,
      target: r.target,
      ip: r.ip,
      outcome: outcomeOf(r.status),
    });
  }

  /** Writes every queued event. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.store
      .appendAudit(batch)
      .catch((err: Error) => this.onError(err))
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }

  query(...args: Parameters<AccessStore['audit']>): Promise<AuditEvent[]> {
    return this.flush().then(() => this.store.audit(...args));
  }

  async prune(nowMs = Date.now()): Promise<void> {
    await this.store.pruneAudit(nowMs - this.retentionMs).catch((err: Error) => this.onError(err));
  }

  async stop(): Promise<void> {
    clearInterval(this.pruneTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
