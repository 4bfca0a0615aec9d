/**
 * E-mail over SMTP with nodemailer. SMTP's own reply classes decide retries: 4xx (mailbox busy, greylisted)
 * and connection failures are retried, 5xx (no such mailbox, relay refused, auth failed) are permanent.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { AlertGroup, DeliveryOutcome, Notifier } from '../notifier.js';
import { absoluteUrl, groupTitle } from './http.js';

export interface EmailOptions {
  readonly to: string;
  readonly from: string;
  readonly smarthost: string;
  readonly hello?: string | undefined;
  readonly authUsername?: string | undefined;
  readonly authPassword?: string | undefined;
  readonly requireTls: boolean;
  readonly tlsInsecureSkipVerify: boolean;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function emailMessage(group: AlertGroup): { subject: string; text: string; html: string } {
  const subject = groupTitle(group);
  const blocks = group.alerts.map((a) => {
    const lines = [
      `${a.state === 'resolved' ? 'RESOLVED' : 'FIRING'}: ${a.name} — ${a.annotations.summary ?? ''}`,
      a.annotations.description ?? '',
      `Labels: ${Object.entries(a.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
      `Since: ${new Date(a.activeAtMs).toISOString()}${a.resolvedAtMs ? `, resolved ${new Date(a.resolvedAtMs).toISOString()}` : ''}`,
      `Open: ${absoluteUrl(group, a)}`,
    ];
    return lines.filter((l) => l !== '').join('\n');
  });
  const html = `<h2>${escapeHtml(subject)}</h2>${group.alerts
    .map(
      (a) =>
        `<h3>${a.state === 'resolved' ? 'RESOLVED' : 'FIRING'}: ${escapeHtml(a.name)}</h3><p>${escapeHtml(a.annotations.description ?? a.annotations.summary ?? '')}</p><p><a href="${escapeHtml(absoluteUrl(group, a))}">Open in trainwatch</a></p>`,
    )
    .join('')}`;
  return { subject, text: blocks.join('\n\n'), html };
}

export class EmailNotifier implements Notifier {
  readonly name = 'email';
  private readonly transport: Transporter;

  constructor(private readonly opts: EmailOptions) {
    const colon = opts.smarthost.lastIndexOf(':');
    const host = opts.smarthost.slice(0, colon);
    const port = Number(opts.smarthost.slice(colon + 1));
    this.transport = nodemailer.createTransport({
      host,
      port,
      secure: port === 465,
      requireTLS: port !== 465 && opts.requireTls,
      ignoreTLS: port !== 465 && !opts.requireTls,
      ...(opts.hello ? { name: opts.hello } : {}),
      ...(opts.authUsername ? { auth: { user: opts.authUsername, pass: opts.authPassword ?? '' } } : {}),
      tls: { rejectUnauthorized: !opts.tlsInsecureSkipVerify },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
  }

  async send(group: AlertGroup, signal: AbortSignal): Promise<DeliveryOutcome> {
    const msg = emailMessage(group);
    try {
      await Promise.race([
        this.transport.sendMail({ from: this.opts.from, to: this.opts.to, ...msg }),
        new Promise((_, reject) => {
          if (signal.aborted) reject(new Error('timed out'));
          signal.addEventListener('abort', () => reject(new Error('timed out')), { once: true });
        }),
      ]);
      return { kind: 'delivered' };
    } catch (err) {
      const e = err as Error & { responseCode?: number; code?: string };
      const reason = `SMTP ${this.opts.smarthost}: ${e.responseCode ? `${e.responseCode} ` : ''}${e.message}`;
      if (e.responseCode !== undefined && e.responseCode >= 500) return { kind: 'permanent', reason };
      if (e.code === 'EAUTH') return { kind: 'permanent', reason };
      return { kind: 'retryable', reason };
    }
  }

  close(): void {
    this.transport.close();
  }
}

export { absoluteUrl };
