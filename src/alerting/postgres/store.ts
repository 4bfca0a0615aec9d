/**
 * `AlertRepository` on PostgreSQL: the alert history, silences, notification log and outbox repositories
 * behind the one contract the alerting stage uses, plus the change feed a dispatcher leader follows. Every
 * process of the cluster (processors, query processes, the leader) opens one on the shared `PgMeta`.
 *
 * Kept duplicate: every method forwards to one part with the contract's parameter list, as its twin
 * `SqliteAlertRepository` (../repository.ts) forwards to `AlertStore`; TypeScript has no delegation that keeps
 * the types.
 */
import type { PgMeta } from '../../meta/index.js';
import type { Alert, AlertGroup } from '../notifier.js';
import type { AlertQuery, DeliveryQuery, StoredSilence } from '../records.js';
import type { AlertChangeFeed, AlertChangeRecord, AlertRepository } from '../repository.js';
import { PgAlertRepository } from './alerts.js';
import { ALERTING_PG_MIGRATIONS } from './migrations.js';
import { PgNotificationLog } from './notification-log.js';
import { PgOutbox } from './outbox.js';
import { PgSilenceRepository } from './silences.js';

export interface PgAlertStoreOptions {
  /** How long a claimed notification stays another sender's (see `PgOutbox`). */
  readonly claimLeaseMs?: number;
}

export class PgAlertStore implements AlertRepository {
  readonly alerts: PgAlertRepository;
  readonly silenceRepo: PgSilenceRepository;
  readonly notificationLog: PgNotificationLog;
  readonly outbox: PgOutbox;
  readonly changes: AlertChangeFeed;

  constructor(db: PgMeta, opts: PgAlertStoreOptions = {}) {
    this.alerts = new PgAlertRepository(db);
    this.silenceRepo = new PgSilenceRepository(db);
    this.notificationLog = new PgNotificationLog(db);
    this.outbox = new PgOutbox(
      db,
      opts.claimLeaseMs === undefined ? {} : { claimLeaseMs: opts.claimLeaseMs },
    );
    this.changes = this.alerts;
  }

  /** Applies the alerting tables' migrations (safe from any number of processes at once), then opens. */
  static async open(db: PgMeta, opts: PgAlertStoreOptions = {}): Promise<PgAlertStore> {
    await db.migrate(ALERTING_PG_MIGRATIONS);
    return new PgAlertStore(db, opts);
  }

  persist(
    changes: readonly AlertChangeRecord[],
    values: readonly Alert[],
    nowMs: number,
    signal?: AbortSignal,
  ) {
    return this.alerts.persist(changes, values, nowMs, signal);
  }
  open(signal?: AbortSignal) {
    return this.alerts.open(signal);
  }
  resolvedSince(sinceMs: number, signal?: AbortSignal) {
    return this.alerts.resolvedSince(sinceMs, signal);
  }
  query(q: AlertQuery, signal?: AbortSignal) {
    return this.alerts.query(q, signal);
  }
  pruneResolved(beforeMs: number) {
    return this.alerts.pruneResolved(beforeMs);
  }
  silences(signal?: AbortSignal) {
    return this.silenceRepo.list(signal);
  }
  saveSilence(s: StoredSilence) {
    return this.silenceRepo.save(s);
  }
  pruneSilences(beforeMs: number) {
    return this.silenceRepo.prune(beforeMs);
  }
  lastNotified(receiver: string, integration: string, groupKey: string) {
    return this.notificationLog.lastNotified(receiver, integration, groupKey);
  }
  setNotified(
    receiver: string,
    integration: string,
    groupKey: string,
    firing: readonly string[],
    sentAtMs: number,
  ) {
    return this.notificationLog.setNotified(receiver, integration, groupKey, firing, sentAtMs);
  }
  enqueue(
    receiver: string,
    integration: string,
    group: AlertGroup,
    summary: string,
    nowMs: number,
    dedupKey: string | null = null,
  ) {
    return this.outbox.enqueue(receiver, integration, group, summary, nowMs, dedupKey);
  }
  due(nowMs: number, limit: number, signal?: AbortSignal) {
    return this.outbox.due(nowMs, limit, signal);
  }
  nextDueMs() {
    return this.outbox.nextDueMs();
  }
  markDelivered(id: number, nowMs: number, attemptMs?: number) {
    return this.outbox.markDelivered(id, nowMs, attemptMs);
  }
  markRetry(id: number, nextAttemptMs: number, error: string, nowMs: number, attemptMs?: number) {
    return this.outbox.markRetry(id, nextAttemptMs, error, nowMs, attemptMs);
  }
  markFailed(id: number, error: string, nowMs: number, attemptMs?: number) {
    return this.outbox.markFailed(id, error, nowMs, attemptMs);
  }
  deliveries(q: DeliveryQuery, signal?: AbortSignal) {
    return this.outbox.deliveries(q, signal);
  }
  deliveryHealth(tenant: string, signal?: AbortSignal) {
    return this.outbox.deliveryHealth(tenant, signal);
  }
  release(id: number, dueMs: number) {
    return this.outbox.release(id, dueMs);
  }
  notifications(limit: number, signal?: AbortSignal) {
    return this.outbox.list(limit, signal);
  }
  pruneNotifications(beforeMs: number) {
    return this.outbox.prune(beforeMs);
  }
}
