/** Slack incoming webhook: one message per group, a coloured attachment with one line per alert. */
import type { AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, groupStatus, groupTitle, postJson } from './http.js';

export interface SlackOptions {
  readonly apiUrl: string;
  readonly channel?: string | undefined;
  readonly username: string;
  readonly iconEmoji?: string | undefined;
}

const COLORS = { critical: 'danger', warning: 'warning', info: '#439FE0' } as Record<string, string>;

export function slackPayload(group: AlertGroup, opts: Omit<SlackOptions, 'apiUrl'>) {
  const status = groupStatus(group);
  const title = groupTitle(group);
  const text = group.alerts
    .map((a) => {
      const icon = a.state === 'resolved' ? ':white_check_mark:' : ':rotating_light:';
      const desc = a.annotations.description ?? a.annotations.summary ?? '';
      return `${icon} *${a.name}* ${a.annotations.summary ?? ''}\n${desc}\n<${absoluteUrl(group, a)}|Open in trainwatch>`;
    })
    .join('\n\n');
  const severity = group.commonLabels.severity ?? 'warning';
  return {
    ...(opts.channel ? { channel: opts.channel } : {}),
    username: opts.username,
    ...(opts.iconEmoji ? { icon_emoji: opts.iconEmoji } : {}),
    text: title,
    attachments: [
      {
        color: status === 'resolved' ? 'good' : (COLORS[severity] ?? 'warning'),
        title,
        title_link: group.alerts[0] ? absoluteUrl(group, group.alerts[0]) : group.externalUrl,
        text,
        fallback: title,
        mrkdwn_in: ['text'],
      },
    ],
  };
}

export class SlackNotifier implements Notifier {
  readonly name = 'slack';

  constructor(private readonly opts: SlackOptions) {}

  send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    return postJson(this.opts.apiUrl, slackPayload(group, this.opts), signal);
  }
}
