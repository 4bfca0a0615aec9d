/**
 * The alerting role's edge to the outside world (DESIGN.md): a notifier delivers one group of alerts to one
 * receiver (webhook, Slack, PagerDuty, e-mail, Alertmanager). The notification outbox calls it and decides
 * from the outcome whether to retry.
 */
import type { LabelSet } from '../model/labels.js';

export type AlertState = 'pending' | 'firing' | 'resolved';

/** Where an alert came from: a streaming detector in the processor, or a PromQL alerting rule. */
export type AlertSource = 'detector' | 'rule';

export interface Alert {
  /** Always carries `alertname`, `severity` and `tenant`; `job_id`, `node_id`, `rank`, `gpu` when located. */
  readonly labels: LabelSet;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: AlertState;
  /** When the condition first became true (event time of the offending sample, or the rule evaluation). */
  readonly activeAtMs: number;
  /** When it went from pending to firing; null while pending. */
  readonly firingAtMs: number | null;
  readonly resolvedAtMs: number | null;
  /** Stable identity of the alert (hash of its labels), the same across restarts. */
  readonly fingerprint: string;
  /** Link to the job and the moment in the dashboard: `/jobs/<job_id>?t=<activeAtMs>`. */
  readonly url: string;
  /** The value that made the condition true at the last evaluation (a z-score, seconds, a ratio...). */
  readonly value: number;
  readonly source: AlertSource;
  /** The alert's name (the `alertname` label). */
  readonly name: string;
  /** Which detector (`stall`, `straggler`...) or rule group (`file:group`) produced it. */
  readonly origin: string;
}

/** Alerts that share the receiver's grouping labels, sent together. */
export interface AlertGroup {
  readonly receiver: string;
  readonly groupKey: string;
  readonly groupLabels: LabelSet;
  readonly commonLabels: LabelSet;
  readonly commonAnnotations: Readonly<Record<string, string>>;
  /** Absolute base URL of the dashboard, for links in messages (`alerting.external_url`). */
  readonly externalUrl: string;
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
