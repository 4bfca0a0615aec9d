/**
 * The alerting stage's one store contract: everything the hub, the dispatcher, the outbox sender, silences and
 * the APIs need from the alerting tables, asynchronous (as every interface between roles is: DESIGN.md), with
 * two implementations: {@link SqliteAlertRepository} over the embedded, synchronous `AlertStore`, and
 * `PgAlertStore` (`postgres/`) over the PostgreSQL repositories.
 *
 * Invariants both keep:
 * - `persist` is idempotent and monotonic per episode (tenant, fingerprint, activeAt): a stored state never
 *   moves back, a replayed state changes nothing, and the result says, per change, whether it changed the
 *   stored history (so callers count and act on what is new without reading the store first).
 * - `enqueue` with a dedup key happens at most once; without one, it supersedes older pending notifications
 *   of the same integration and group.
 * - `due` hands a notification to one caller at a time (SQLite: the one process; PostgreSQL: leases).
 */
import type { Alert, AlertGroup } from './notifier.js';
import type {
  AlertQuery,
  DeliveryPage,
  DeliveryQuery,
  DueNotification,
  IntegrationHealth,
  NotificationRecord,
  StoredSilence,
} from './records.js';
import type { AlertStore } from './store.js';

/** One queued alert change: its newest state, or the drop of a pending alert. */
export interface AlertChangeRecord {
  readonly alert: Alert;
  readonly drop: boolean;
}

export interface NotifiedEntry {
  /** Episode keys (`fingerprint@activeAt`) that were firing when the receiver was last told. */
  readonly firing: Set<string>;
  readonly sentAtMs: number;
}

/** Firing and resolved changes in the order they were stored, for a dispatcher in another process. */
export interface AlertChangeFeed {
  /** The newest change number: a follower that loaded the current state starts after it. */
  latestChange(signal?: AbortSignal): Promise<number>;
  /** Episodes that changed state after `cursor` (latest state of each), and the cursor to pass next. */
  changesSince(
    cursor: number,
    limit: number,
    signal?: AbortSignal,
  ): Promise<{ alerts: Alert[]; cursor: number }>;
}

export interface AlertRepository {
  // ---- alert history ----
  /** Writes changes (in order) and open alerts' current values, atomically. Per change: did it change history? */
  persist(
    changes: readonly AlertChangeRecord[],
    values: readonly Alert[],
    nowMs: number,
    signal?: AbortSignal,
  ): Promise<boolean[]>;
  /** Every pending or firing alert, of every tenant. */
  open(signal?: AbortSignal): Promise<Alert[]>;
  resolvedSince(sinceMs: number, signal?: AbortSignal): Promise<Alert[]>;
  query(q: AlertQuery, signal?: AbortSignal): Promise<Alert[]>;
  pruneResolved(beforeMs: number): Promise<number>;

  // ---- silences ----
  silences(signal?: AbortSignal): Promise<StoredSilence[]>;
  /** Creates or replaces a silence by id (false, changing nothing, when the id is another tenant's). */
  saveSilence(s: StoredSilence): Promise<boolean>;
  pruneSilences(beforeMs: number): Promise<number>;

  // ---- notification log ----
  lastNotified(receiver: string, integration: string, groupKey: string): Promise<NotifiedEntry | undefined>;
  /** Records what the receiver was told; an empty `firing` forgets the group. */
  setNotified(
    receiver: string,
    integration: string,
    groupKey: string,
    firing: readonly string[],
    sentAtMs: number,
  ): Promise<void>;

  // ---- outbox ----
  enqueue(
    receiver: string,
    integration: string,
    group: AlertGroup,
    summary: string,
    nowMs: number,
    dedupKey?: string | null,
  ): Promise<number | undefined>;
  /** Claims up to `limit` notifications due at `nowMs`. */
  due(nowMs: number, limit: number, signal?: AbortSignal): Promise<DueNotification[]>;
  nextDueMs(): Promise<number | undefined>;
  /** `attemptMs`: how long the attempt took (shown in the delivery history). */
  markDelivered(id: number, nowMs: number, attemptMs?: number): Promise<void>;
  markRetry(
    id: number,
    nextAttemptMs: number,
    error: string,
    nowMs: number,
    attemptMs?: number,
  ): Promise<void>;
  markFailed(id: number, error: string, nowMs: number, attemptMs?: number): Promise<void>;
  /** Gives a claimed notification back unsent (its sender lost leadership): due again at `dueMs`. */
  release(id: number, dueMs: number): Promise<void>;
  notifications(limit: number, signal?: AbortSignal): Promise<NotificationRecord[]>;
  /** One tenant's delivery history, newest first, filtered and paged. */
  deliveries(q: DeliveryQuery, signal?: AbortSignal): Promise<DeliveryPage>;
  /** One tenant's delivery health per receiver integration (over the stored history). */
  deliveryHealth(tenant: string, signal?: AbortSignal): Promise<IntegrationHealth[]>;
  pruneNotifications(beforeMs: number): Promise<number>;

  /** Present where another process may dispatch (PostgreSQL). */
  readonly changes?: AlertChangeFeed;
}

/**
 * The embedded store behind the async contract. Each call runs the synchronous statement before it returns
 * its promise: a caller that does not await still finds the write done when the call returns (the hub relies
 * on this to keep the embedded mode's ordering exactly as it was).
 *
 * Kept duplicate: every method forwards to `AlertStore` with the contract's parameter list, as its twin
 * `PgAlertStore` (postgres/store.ts) forwards to its parts; TypeScript has no delegation that keeps the types.
 */
export class SqliteAlertRepository implements AlertRepository {
  constructor(readonly store: AlertStore) {}

  async persist(changes: readonly AlertChangeRecord[], values: readonly Alert[], nowMs: number) {
    return this.store.persist(changes, values, nowMs);
  }
  async open() {
    return this.store.open();
  }
  async resolvedSince(sinceMs: number) {
    return this.store.resolvedSince(sinceMs);
  }
  async query(q: AlertQuery) {
    return this.store.query(q);
  }
  async pruneResolved(beforeMs: number) {
    return this.store.pruneResolved(beforeMs);
  }
  async silences() {
    return this.store.silences();
  }
  async saveSilence(s: StoredSilence) {
    this.store.saveSilence(s);
    return true;
  }
  async pruneSilences(beforeMs: number) {
    return this.store.pruneSilences(beforeMs);
  }
  async lastNotified(receiver: string, integration: string, groupKey: string) {
    return this.store.lastNotified(receiver, integration, groupKey);
  }
  async setNotified(
    receiver: string,
    integration: string,
    groupKey: string,
    firing: readonly string[],
    sentAtMs: number,
  ) {
    this.store.setNotified(receiver, integration, groupKey, firing, sentAtMs);
  }
  async enqueue(
    receiver: string,
    integration: string,
    group: AlertGroup,
    summary: string,
    nowMs: number,
    dedupKey: string | null = null,
  ) {
    return this.store.enqueue(receiver, integration, group, summary, nowMs, dedupKey);
  }
  async due(nowMs: number, limit: number) {
    return this.store.due(nowMs, limit);
  }
  async nextDueMs() {
    return this.store.nextDueMs();
  }
  async markDelivered(id: number, nowMs: number, attemptMs?: number) {
    this.store.markDelivered(id, nowMs, attemptMs);
  }
  async markRetry(id: number, nextAttemptMs: number, error: string, nowMs: number, attemptMs?: number) {
    this.store.markRetry(id, nextAttemptMs, error, nowMs, attemptMs);
  }
  async markFailed(id: number, error: string, nowMs: number, attemptMs?: number) {
    this.store.markFailed(id, error, nowMs, attemptMs);
  }
  async release() {
    // One process sends: nothing was claimed from anyone else.
  }
  async notifications(limit: number) {
    return this.store.notifications(limit);
  }
  async deliveries(q: DeliveryQuery) {
    return this.store.deliveries(q);
  }
  async deliveryHealth(tenant: string) {
    return this.store.deliveryHealth(tenant);
  }
  async pruneNotifications(beforeMs: number) {
    return this.store.pruneNotifications(beforeMs);
  }
}
