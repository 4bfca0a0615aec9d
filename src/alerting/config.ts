/**
 * The `alerting:` section of trainwatch.yaml: where notifications go (receivers and a routing tree shaped
 * like Alertmanager's, so teams can carry their routing over), how alerts are grouped, PromQL rule files,
 * action hooks, and the outbox's retry policy.
 *
 * ```yaml
 * alerting:
 *   external_url: https://trainwatch.example.com
 *   rule_files: [/etc/trainwatch/rules/*.yaml]
 *   route:
 *     receiver: team-slack
 *     group_by: [alertname, tenant, job_id]
 *     routes:
 *       - matchers: ['severity="critical"']
 *         receiver: oncall
 *   receivers:
 *     - name: team-slack
 *       slack_configs: [{api_url: https://hooks.slack.com/services/T/B/X, channel: '#training'}]
 *     - name: oncall
 *       pagerduty_configs: [{routing_key: 0123456789abcdef0123456789abcdef}]
 * ```
 */
import { z } from 'zod';
import type { LabelMatcher } from '../model/labels.js';
import { durationMs, matcherString } from './parse.js';

const url = z.string().url();
const sendResolved = z.boolean().default(true);

const webhookConfig = z
  .object({
    url,
    send_resolved: sendResolved,
    /** At most this many alerts per message (0 = all); the payload says how many were left out. */
    max_alerts: z.number().int().min(0).default(0),
    http_headers: z.record(z.string(), z.string()).default({}),
  })
  .strict();

const slackConfig = z
  .object({
    api_url: url,
    channel: z.string().optional(),
    username: z.string().default('trainwatch'),
    icon_emoji: z.string().optional(),
    send_resolved: sendResolved,
  })
  .strict();

const pagerdutyConfig = z
  .object({
    routing_key: z.string().min(1),
    /** The Events API v2 endpoint; change it for a proxy or a test receiver. */
    url: url.default('https://events.pagerduty.com/v2/enqueue'),
    send_resolved: sendResolved,
  })
  .strict();

const emailConfig = z
  .object({
    to: z.string().min(1),
    from: z.string().min(1),
    /** host:port of the SMTP server. */
    smarthost: z.string().regex(/^[^:]+:\d+$/, 'must be host:port'),
    hello: z.string().optional(),
    auth_username: z.string().optional(),
    auth_password: z.string().optional(),
    /** Require STARTTLS (port 465 always uses implicit TLS). */
    require_tls: z.boolean().default(true),
    /** Accept self-signed certificates (tests, internal relays). */
    tls_insecure_skip_verify: z.boolean().default(false),
    send_resolved: sendResolved,
  })
  .strict();

const alertmanagerConfig = z
  .object({
    /** Base URL of the Alertmanager, e.g. http://alertmanager:9093. */
    url,
    /** Firing alerts are re-sent this often so Alertmanager keeps them active (as Prometheus does). */
    resend_interval: durationMs.default(60_000),
    send_resolved: z.boolean().default(true),
  })
  .strict();

export const receiverSchema = z
  .object({
    name: z.string().min(1),
    webhook_configs: z.array(webhookConfig).default([]),
    slack_configs: z.array(slackConfig).default([]),
    pagerduty_configs: z.array(pagerdutyConfig).default([]),
    email_configs: z.array(emailConfig).default([]),
    alertmanager_configs: z.array(alertmanagerConfig).default([]),
  })
  .strict();

export interface RouteConfig {
  receiver?: string | undefined;
  group_by?: string[] | undefined;
  group_wait?: number | undefined;
  group_interval?: number | undefined;
  repeat_interval?: number | undefined;
  matchers: LabelMatcher[];
  continue: boolean;
  routes: RouteConfig[];
}

export const routeSchema: z.ZodType<RouteConfig, unknown> = z.lazy(() =>
  z
    .object({
      receiver: z.string().optional(),
      /** Labels that make a group; `['...']` groups by every label (one alert per group). */
      group_by: z.array(z.string()).optional(),
      group_wait: durationMs.optional(),
      group_interval: durationMs.optional(),
      repeat_interval: durationMs.optional(),
      matchers: z.array(matcherString).default([]),
      continue: z.boolean().default(false),
      routes: z.array(routeSchema).default([]),
    })
    .strict(),
);

const actionSchema = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9_.-]+$/, 'must be a simple name'),
    /** Which alerts trigger the action; every matcher must match. */
    matchers: z.array(matcherString).min(1, 'an action needs at least one matcher'),
    /** On which changes it runs. */
    on: z.array(z.enum(['firing', 'resolved'])).default(['firing']),
    /** POSTs the alert and its job as JSON. */
    webhook: z
      .object({ url, http_headers: z.record(z.string(), z.string()).default({}) })
      .strict()
      .optional(),
    /** Runs a program with the alert as JSON on stdin and TW_* environment variables (no shell). */
    command: z
      .object({
        path: z.string().min(1),
        args: z.array(z.string()).default([]),
        timeout: durationMs.default(30_000),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((a) => (a.webhook ? 1 : 0) + (a.command ? 1 : 0) === 1, {
    message: 'an action needs exactly one of webhook or command',
  });

export const alertingConfigSchema = z
  .object({
    /** Base URL of the dashboard in links sent out (default: http://<listen>). */
    external_url: z.string().url().optional(),
    /** Prometheus alerting-rule files (globs allowed). */
    rule_files: z.array(z.string()).default([]),
    /** Default evaluation interval of rule groups that do not set one. */
    evaluation_interval: durationMs.default(15_000),
    route: routeSchema.default({ matchers: [], continue: false, routes: [] }),
    receivers: z.array(receiverSchema).default([]),
    /** Hooks run when matching alerts fire (requeue a job, cordon a node...). None by default. */
    actions: z.array(actionSchema).default([]),
    outbox: z
      .object({
        /** First retry after about this long; doubles up to backoff_max (full jitter). */
        backoff_base: durationMs.default(500),
        backoff_max: durationMs.default(5 * 60_000),
        /** Give up on a notification this long after it was queued. */
        max_age: durationMs.default(24 * 3_600_000),
        /** Time limit of one delivery attempt. */
        timeout: durationMs.default(10_000),
        /** Delivered and failed notifications are kept this long for the delivery-status API. */
        retention: durationMs.default(7 * 24 * 3_600_000),
      })
      .strict()
      .prefault({}),
    /** Resolved alerts are kept in the history this long. */
    history_retention: durationMs.default(30 * 24 * 3_600_000),
    /**
     * Alert changes are written to the history at least this often; always before a notification or action
     * about them, before the processor writes its detector state, and before the history is read.
     */
    persist_interval: durationMs.default(1000),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.receivers.forEach((r, i) => {
      if (names.has(r.name))
        ctx.addIssue({
          code: 'custom',
          path: ['receivers', i, 'name'],
          message: `duplicate receiver ${r.name}`,
        });
      names.add(r.name);
    });
    const check = (r: RouteConfig, path: (string | number)[]) => {
      if (
        r.receiver !== undefined &&
        !names.has(r.receiver) &&
        !(path.length === 1 && r.receiver === DEFAULT_RECEIVER)
      )
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'receiver'],
          message: `no receiver named ${JSON.stringify(r.receiver)} (define it under alerting.receivers)`,
        });
      r.routes.forEach((sub, i) => {
        check(sub, [...path, 'routes', i]);
      });
    };
    check(c.route, ['route']);
  });

export type AlertingConfig = z.output<typeof alertingConfigSchema>;
export type ReceiverConfig = z.output<typeof receiverSchema>;
export type ActionConfig = AlertingConfig['actions'][number];

/** The receiver of the root route when none is configured: alerts are shown, nothing is sent. */
export const DEFAULT_RECEIVER = 'default';

export const ROUTE_DEFAULTS = {
  group_by: ['alertname', 'tenant', 'job_id'],
  /** Short: trainwatch promises alerts within a second; the wait only collects a burst into one message. */
  group_wait: 250,
  group_interval: 30_000,
  repeat_interval: 4 * 3_600_000,
} as const;
