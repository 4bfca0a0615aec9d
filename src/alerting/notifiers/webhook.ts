/**
 * Generic webhook with Alertmanager's webhook payload (version 4), so anything that already consumes
 * Alertmanager webhooks consumes trainwatch's unchanged.
 */
import type { AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, groupStatus, iso, postJson } from './http.js';

export interface WebhookOptions {
  readonly url: string;
  readonly maxAlerts: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** https://prometheus.io/docs/alerting/latest/configuration/#webhook_config */
export function webhookPayload(group: AlertGroup, maxAlerts = 0) {
  const alerts = maxAlerts > 0 ? group.alerts.slice(0, maxAlerts) : group.alerts;
  return {
    version: '4',
    groupKey: group.groupKey,
    truncatedAlerts: group.alerts.length - alerts.length,
    status: groupStatus(group),
    receiver: group.receiver,
    groupLabels: group.groupLabels,
    commonLabels: group.commonLabels,
    commonAnnotations: group.commonAnnotations,
    externalURL: group.externalUrl,
    alerts: alerts.map((a) => ({
      status: a.state === 'resolved' ? 'resolved' : 'firing',
      labels: a.labels,
      annotations: a.annotations,
      startsAt: iso(a.activeAtMs),
      endsAt: iso(a.resolvedAtMs),
      generatorURL: absoluteUrl(group, a),
      fingerprint: a.fingerprint,
    })),
  };
}

export class WebhookNotifier implements Notifier {
  readonly name = 'webhook';

  constructor(private readonly opts: WebhookOptions) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    return postJson(this.opts.url, webhookPayload(group, this.opts.maxAlerts), signal, this.opts.headers);
  }
}
