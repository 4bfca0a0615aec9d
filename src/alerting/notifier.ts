/**
 * The alerting role's edge to the outside world (DESIGN.md): a notifier delivers one group of alerts to one
 * receiver (webhook, Slack, PagerDuty, e-mail, Alertmanager). The notification outbox calls it and decides
 * from the outcome whether to retry.
 */
import type { LabelSet } from '../model/labels.js';

export type AlertState = 'pending' | 'firing' | 'resolved';

export interface Alert {
  readonly labels: LabelSet;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: AlertState;
  readonly activeAtMs: number;
  readonly resolvedAtMs: number | null;
  /** Stable identity of the alert (hash of its labels), the same across restarts. */
  readonly fingerprint: string;
  /** Link to the job and the moment in the dashboard. */
  readonly url: string;
}

/** Alerts that share the receiver's grouping labels, sent together. */
export interface AlertGroup {
  readonly receiver: string;
  readonly groupKey: string;
  readonly groupLabels: LabelSet;
  readonly commonLabels: LabelSet;
  readonly alerts: readonly Alert[];
}

export type DeliveryOutcome =
  | { readonly kind: 'delivered' }
  /** Try again later; `retryAfterMs` when the receiver said how long (e.g. a 429 with Retry-After). */
  | { readonly kind: 'retryable'; readonly reason: string; readonly retryAfterMs?: number }
  /** Retrying cannot help (e.g. 400 from the receiver, a bad URL): record and give up. */
  | { readonly kind: 'permanent'; readonly reason: string };

export interface Notifier {
  readonly name: string;
  /** Never throws: every failure is reported as an outcome. */
  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome>;
}
