/**
 * What the notification API shows of the configured receivers: every setting of every integration, with the
 * secrets taken out. A receiver's secrets are what lets anyone post into a team's channel or page its on-call
 * (Slack and webhook URLs carry their token in the path, PagerDuty a routing key, e-mail a password, any
 * webhook an `Authorization` header), so none may leave the server, whoever asks.
 *
 * Every field of every integration kind is classified in {@link RECEIVER_FIELDS}; a field missing there is
 * shown as a secret (fail closed), and the unit test walks the configuration schema so that a new field
 * without a class fails it.
 */
import type { ReceiverConfig } from './config.js';

/** Words of an `Authorization` header that are no secret (and would mangle every text if scrubbed). */
const AUTH_SCHEMES = /^(bearer|basic|token|bot|digest)$/i;

/** What replaces a secret in every answer. */
export const SECRET = '<secret>';

/**
 * - `public`: shown as configured.
 * - `secret`: replaced by {@link SECRET} (absent stays absent).
 * - `url`: an API endpoint; its path is shown, credentials (`user:password@`) and query values are not.
 * - `secret-path-url`: a URL whose path is the token (Slack, Discord, Teams hooks): only its origin is shown.
 * - `secret-values`: a map (HTTP headers) whose names are shown and values are not.
 */
export type FieldClass = 'public' | 'secret' | 'url' | 'secret-path-url' | 'secret-values';

export const INTEGRATION_KINDS = ['webhook', 'slack', 'pagerduty', 'email', 'alertmanager'] as const;
export type IntegrationKind = (typeof INTEGRATION_KINDS)[number];

export const RECEIVER_FIELDS: Readonly<Record<IntegrationKind, Readonly<Record<string, FieldClass>>>> = {
  webhook: {
    // A generic webhook often is a chat hook with the token in its path: only the origin is shown.
    url: 'secret-path-url',
    send_resolved: 'public',
    max_alerts: 'public',
    http_headers: 'secret-values',
  },
  slack: {
    api_url: 'secret-path-url',
    channel: 'public',
    username: 'public',
    icon_emoji: 'public',
    send_resolved: 'public',
  },
  pagerduty: { routing_key: 'secret', url: 'url', send_resolved: 'public' },
  email: {
    to: 'public',
    from: 'public',
    smarthost: 'public',
    hello: 'public',
    auth_username: 'public',
    auth_password: 'secret',
    require_tls: 'public',
    tls_insecure_skip_verify: 'public',
    send_resolved: 'public',
  },
  alertmanager: { url: 'url', resend_interval: 'public', send_resolved: 'public' },
};

export interface IntegrationView {
  /** As in the outbox and the delivery history: `webhook[0]`, `slack[1]`. */
  readonly name: string;
  readonly type: IntegrationKind;
  /** Where it sends, in one line, secrets removed. */
  readonly target: string;
  readonly sendResolved: boolean;
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface ReceiverView {
  readonly name: string;
  readonly integrations: readonly IntegrationView[];
}

function redactUrl(raw: string, pathIsSecret: boolean): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return SECRET;
  }
  const auth = u.username !== '' || u.password !== '' ? `${SECRET}@` : '';
  const origin = `${u.protocol}//${auth}${u.host}`;
  if (pathIsSecret) return `${origin}${u.pathname.length > 1 || u.search !== '' ? `/${SECRET}` : '/'}`;
  const query = [...u.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=${SECRET}`).join('&');
  return `${origin}${u.pathname}${query ? `?${query}` : ''}`;
}

function redactField(cls: FieldClass | undefined, value: unknown): unknown {
  if (value === undefined) return undefined;
  switch (cls) {
    case 'public':
      return value;
    case 'url':
    case 'secret-path-url':
      return typeof value === 'string' ? redactUrl(value, cls === 'secret-path-url') : SECRET;
    case 'secret-values':
      return value !== null && typeof value === 'object'
        ? Object.fromEntries(Object.keys(value).map((k) => [k, SECRET]))
        : SECRET;
    default:
      return SECRET;
  }
}

function redactSettings(
  kind: IntegrationKind,
  cfg: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(cfg)) {
    const shown = redactField(RECEIVER_FIELDS[kind][key], value);
    if (shown !== undefined) out[key] = shown;
  }
  return out;
}

function targetOf(kind: IntegrationKind, s: Record<string, unknown>): string {
  switch (kind) {
    case 'webhook':
      return String(s.url);
    case 'slack':
      return s.channel ? `${String(s.channel)} via ${String(s.api_url)}` : String(s.api_url);
    case 'pagerduty':
      return `routing key ${SECRET} via ${String(s.url)}`;
    case 'email':
      return `${String(s.to)} via ${String(s.smarthost)}`;
    case 'alertmanager':
      return String(s.url);
  }
}

/** A receiver's integration configs by kind (the `<kind>_configs` lists of its configuration). */
function integrationConfigs(
  r: ReceiverConfig,
): Record<IntegrationKind, readonly Readonly<Record<string, unknown>>[]> {
  return {
    webhook: r.webhook_configs,
    slack: r.slack_configs,
    pagerduty: r.pagerduty_configs,
    email: r.email_configs,
    alertmanager: r.alertmanager_configs,
  };
}

/** A receiver as the API shows it; integration names match `buildIntegrations`' (`<kind>[<index>]`). */
export function receiverView(r: ReceiverConfig): ReceiverView {
  const integrations: IntegrationView[] = [];
  const lists = integrationConfigs(r);
  for (const kind of INTEGRATION_KINDS)
    lists[kind].forEach((cfg, i) => {
      const settings = redactSettings(kind, cfg);
      integrations.push({
        name: `${kind}[${i}]`,
        type: kind,
        target: targetOf(kind, settings),
        sendResolved: cfg.send_resolved !== false,
        settings,
      });
    });
  return { name: r.name, integrations };
}

/**
 * Every secret string of the receivers, longest first: what {@link scrubSecrets} removes from texts that
 * came back from receivers (a delivery error may quote the request, a chat service may echo its token).
 */
export function secretStrings(receivers: readonly ReceiverConfig[]): string[] {
  const out = new Set<string>();
  const addUrl = (raw: string, pathIsSecret: boolean) => {
    out.add(raw);
    try {
      const u = new URL(raw);
      if (u.username) out.add(decodeURIComponent(u.username));
      if (u.password) out.add(decodeURIComponent(u.password));
      for (const v of u.searchParams.values()) out.add(v);
      if (u.search) out.add(u.search.slice(1));
      if (pathIsSecret && u.pathname.length > 1) {
        out.add(u.pathname);
        // Token-like segments (`T0123ABCD/B0456EFGH/...`), not words such as `services`.
        for (const seg of u.pathname.split('/')) if (seg.length >= 10) out.add(decodeURIComponent(seg));
      }
    } catch {
      // Not a URL: the whole value is the secret.
    }
  };
  for (const r of receivers) {
    const lists = integrationConfigs(r);
    for (const kind of INTEGRATION_KINDS)
      for (const cfg of lists[kind])
        for (const [key, value] of Object.entries(cfg)) {
          const cls = RECEIVER_FIELDS[kind][key];
          if (cls === 'public' || value === undefined) continue;
          if ((cls === 'url' || cls === 'secret-path-url') && typeof value === 'string')
            addUrl(value, cls === 'secret-path-url');
          else if (cls === 'secret-values' && value !== null && typeof value === 'object')
            for (const v of Object.values(value)) {
              out.add(String(v));
              // `Bearer <token>`, `Basic <credentials>`: the credential alone is the secret too.
              for (const word of String(v).split(/\s+/)) if (!AUTH_SCHEMES.test(word)) out.add(word);
            }
          else out.add(String(value));
        }
  }
  // Short fragments (a path segment `v2`, an empty query value) are no secret and would mangle every text.
  return [...out].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/** `text` with every occurrence of the given secrets replaced by {@link SECRET}. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(SECRET);
  return out;
}
