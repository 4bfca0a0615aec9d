/**
 * Forwards alerts to a real Alertmanager (API v2, `POST /api/v2/alerts`) for teams that already route with
 * it. Like Prometheus, trainwatch re-sends firing alerts (every `resend_interval`) with an `endsAt` a few
 * intervals ahead, so that Alertmanager keeps them active while they fire and resolves them by itself if
 * trainwatch goes away; a resolved alert is sent with its real end time.
 */
import type { AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, postJson } from './http.js';

export interface AlertmanagerOptions {
  readonly url: string;
  readonly resendIntervalMs: number;
}

export function alertmanagerAlerts(group: AlertGroup, resendIntervalMs: number, nowMs: number) {
  return group.alerts.map((a) => ({
    labels: a.labels,
    annotations: a.annotations,
    startsAt: new Date(a.activeAtMs).toISOString(),
    endsAt: new Date(
      a.state === 'resolved' ? (a.resolvedAtMs ?? nowMs) : nowMs + 4 * resendIntervalMs,
    ).toISOString(),
    generatorURL: absoluteUrl(group, a),
  }));
}

export class AlertmanagerNotifier implements Notifier {
  readonly name = 'alertmanager';

  constructor(private readonly opts: AlertmanagerOptions) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    const url = `${this.opts.url.replace(/\/+$/, '')}/api/v2/alerts`;
    return postJson(url, alertmanagerAlerts(group, this.opts.resendIntervalMs, Date.now()), signal);
  }
}
