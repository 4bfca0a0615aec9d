/**
 * PagerDuty Events API v2: one event per group. The dedup key is derived from the group key, so a later
 * `resolve` closes the incident the `trigger` opened, and repeats update it instead of opening new ones.
 */
import { createHash } from 'node:crypto';
import type { AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, alertLines, groupStatus, groupTitle, postJson } from './http.js';

export interface PagerDutyOptions {
  readonly routingKey: string;
  readonly url: string;
}

const SEVERITY: Record<string, string> = { critical: 'critical', warning: 'warning', info: 'info' };

export function pagerdutyDedupKey(groupKey: string): string {
  return createHash('sha256').update(groupKey).digest('hex');
}

export function pagerdutyEvent(group: AlertGroup, routingKey: string) {
  const status = groupStatus(group);
  const firing = group.alerts.filter((a) => a.state !== 'resolved');
  const first = firing[0] ?? group.alerts[0];
  return {
    routing_key: routingKey,
    event_action: status === 'firing' ? 'trigger' : 'resolve',
    dedup_key: pagerdutyDedupKey(group.groupKey),
    payload: {
      summary: groupTitle(group).slice(0, 1024),
      source: group.commonLabels.job_id ?? group.commonLabels.node_id ?? 'trainwatch',
      severity: SEVERITY[group.commonLabels.severity ?? ''] ?? 'error',
      timestamp: new Date(first?.activeAtMs ?? Date.now()).toISOString(),
      component: group.commonLabels.node_id,
      group: group.commonLabels.job_id,
      class: group.commonLabels.alertname,
      custom_details: {
        firing: alertLines({ ...group, alerts: firing }).join('\n'),
        num_firing: firing.length,
        num_resolved: group.alerts.length - firing.length,
        tenant: group.commonLabels.tenant,
      },
    },
    client: 'trainwatch',
    client_url: group.externalUrl,
    links: first ? [{ href: absoluteUrl(group, first), text: 'Open the job in trainwatch' }] : [],
  };
}

export class PagerDutyNotifier implements Notifier {
  readonly name = 'pagerduty';

  constructor(private readonly opts: PagerDutyOptions) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    return postJson(this.opts.url, pagerdutyEvent(group, this.opts.routingKey), signal);
  }
}
