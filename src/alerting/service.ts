/**
 * Builds the alerting role from its configuration: the store (SQLite), silences, the receivers'
 * integrations, the routing tree, the dispatcher, the outbox and the hub; runs the periodic upkeep (alert
 * values to disk, retention of history, notifications and expired silences).
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { JobInfoCache, type JobRepository, type MetaStore } from '../meta/index.js';
import type { Storage } from '../storage/index.js';
import type { AlertingConfig } from './config.js';
import { Dispatcher, type Integration } from './dispatcher.js';
import { type ActionRule, AlertHub } from './hub.js';
import type { Notifier } from './notifier.js';
import { CommandActionNotifier, type JobLookup, WebhookActionNotifier } from './notifiers/action.js';
import { AlertmanagerNotifier } from './notifiers/alertmanager.js';
import { EmailNotifier } from './notifiers/email.js';
import { PagerDutyNotifier } from './notifiers/pagerduty.js';
import { SlackNotifier } from './notifiers/slack.js';
import { WebhookNotifier } from './notifiers/webhook.js';
import { Outbox } from './outbox.js';
import { buildRoute } from './routing.js';
import { loadRuleFiles, RuleManager } from './rules/manager.js';
import { Silences } from './silences.js';
import { AlertStore } from './store.js';

export interface AlertingOptions {
  readonly config: AlertingConfig;
  readonly meta: MetaStore;
  readonly jobs?: JobRepository;
  readonly logger: Logger;
  readonly registry: Registry;
  /** The address trainwatch listens on, for links when `external_url` is not set. */
  readonly listen: string;
  /** With storage, the PromQL alerting and recording rules of `rule_files` are evaluated. */
  readonly storage?: Storage;
  readonly now?: () => number;
}

const SILENCE_RETENTION_MS = 5 * 24 * 3_600_000;
const VALUE_FLUSH_MS = 5000;
const UPKEEP_MS = 10 * 60_000;

export interface AlertingService {
  readonly config: AlertingConfig;
  readonly store: AlertStore;
  readonly silences: Silences;
  readonly hub: AlertHub;
  readonly dispatcher: Dispatcher;
  readonly outbox: Outbox;
  /** The rule evaluator, when storage was given. */
  readonly rules: RuleManager | undefined;
  readonly integrations: ReadonlyMap<string, readonly Integration[]>;
  /** Base URL of the dashboard in links sent out. */
  readonly externalUrl: string;
  /** The address the server bound, used for links when `external_url` is not configured. */
  setListenUrl(url: string): void;
  start(): void;
  stop(): Promise<void>;
}

/** Every integration of every receiver, plus one per action. */
export function buildIntegrations(
  config: AlertingConfig,
  jobs: JobLookup | undefined,
): Map<string, Integration[]> {
  const out = new Map<string, Integration[]>();
  for (const r of config.receivers) {
    const list: Integration[] = [];
    const add = (
      kind: string,
      i: number,
      notifier: Notifier,
      sendResolved: boolean,
      resendIntervalMs?: number,
    ) =>
      list.push({
        receiver: r.name,
        name: `${kind}[${i}]`,
        notifier,
        sendResolved,
        ...(resendIntervalMs !== undefined ? { resendIntervalMs } : {}),
      });
    r.webhook_configs.forEach((c, i) => {
      add(
        'webhook',
        i,
        new WebhookNotifier({ url: c.url, maxAlerts: c.max_alerts, headers: c.http_headers }),
        c.send_resolved,
      );
    });
    r.slack_configs.forEach((c, i) => {
      add(
        'slack',
        i,
        new SlackNotifier({
          apiUrl: c.api_url,
          channel: c.channel,
          username: c.username,
          iconEmoji: c.icon_emoji,
        }),
        c.send_resolved,
      );
    });
    r.pagerduty_configs.forEach((c, i) => {
      add('pagerduty', i, new PagerDutyNotifier({ routingKey: c.routing_key, url: c.url }), c.send_resolved);
    });
    r.email_configs.forEach((c, i) => {
      add(
        'email',
        i,
        new EmailNotifier({
          to: c.to,
          from: c.from,
          smarthost: c.smarthost,
          hello: c.hello,
          authUsername: c.auth_username,
          authPassword: c.auth_password,
          requireTls: c.require_tls,
          tlsInsecureSkipVerify: c.tls_insecure_skip_verify,
        }),
        c.send_resolved,
      );
    });
    r.alertmanager_configs.forEach((c, i) => {
      add(
        'alertmanager',
        i,
        new AlertmanagerNotifier({ url: c.url, resendIntervalMs: c.resend_interval }),
        c.send_resolved,
        c.resend_interval,
      );
    });
    out.set(r.name, list);
  }
  for (const a of config.actions) {
    const receiver = `action:${a.name}`;
    const notifier = a.webhook
      ? new WebhookActionNotifier(a.name, a.webhook.url, a.webhook.http_headers, jobs)
      : new CommandActionNotifier(a.name, a.command!.path, a.command!.args, a.command!.timeout, jobs);
    out.set(receiver, [{ receiver, name: 'action', notifier, sendResolved: a.on.includes('resolved') }]);
  }
  return out;
}

export function createAlerting(opts: AlertingOptions): AlertingService {
  const { config, logger } = opts;
  const now = opts.now ?? Date.now;
  const store = new AlertStore(opts.meta);
  const silences = new Silences(store);
  // The action notifiers look jobs up synchronously; the repository is async (PostgreSQL), so they read a
  // cache that loads on first lookup: the first action of a job may carry `job: null`.
  const jobCache = opts.jobs
    ? new JobInfoCache(opts.jobs, {
        now,
        onError: (err) => logger.warn({ err }, 'job lookup for alert actions failed'),
      })
    : undefined;
  const jobLookup: JobLookup | undefined = jobCache
    ? (tenant, jobId) => jobCache.peek(tenant, jobId)
    : undefined;
  const integrations = buildIntegrations(config, jobLookup);
  const byKey = new Map<string, Integration>();
  for (const list of integrations.values())
    for (const i of list) byKey.set(`${i.receiver}\u0000${i.name}`, i);
  let externalUrl = (config.external_url ?? `http://${opts.listen}`).replace(/\/+$/, '');
  const dispatcher = new Dispatcher(buildRoute(config.route), integrations, store, silences, logger, {
    externalUrl,
    now,
  });
  const outbox = new Outbox(
    store,
    byKey,
    {
      backoffBaseMs: config.outbox.backoff_base,
      backoffMaxMs: config.outbox.backoff_max,
      maxAgeMs: config.outbox.max_age,
      timeoutMs: config.outbox.timeout,
      now,
    },
    logger,
    opts.registry,
  );
  dispatcher.onEnqueue = () => outbox.wake();
  const actions: ActionRule[] = config.actions.map((a) => ({ name: a.name, matchers: a.matchers, on: a.on }));
  const hub = new AlertHub(store, silences, dispatcher, actions, logger, opts.registry, now);
  dispatcher.beforeNotify = () => hub.flush();
  // Invalid rule files stop the start, with promtool's messages (as Prometheus refuses them).
  const rules = opts.storage
    ? new RuleManager(loadRuleFiles(config.rule_files), {
        files: config.rule_files,
        defaultIntervalMs: config.evaluation_interval,
        storage: opts.storage,
        hub,
        logger,
        externalUrl: () => externalUrl,
        now,
      })
    : undefined;
  let valueTimer: NodeJS.Timeout | undefined;
  let changeTimer: NodeJS.Timeout | undefined;
  let upkeepTimer: NodeJS.Timeout | undefined;
  const upkeep = () => {
    try {
      const t = now();
      store.pruneResolved(t - config.history_retention);
      store.pruneNotifications(t - config.outbox.retention);
      silences.prune(t, SILENCE_RETENTION_MS);
    } catch (err) {
      logger.error({ err }, 'alerting upkeep failed');
    }
  };
  return {
    config,
    store,
    silences,
    hub,
    dispatcher,
    outbox,
    rules,
    integrations,
    get externalUrl() {
      return externalUrl;
    },
    setListenUrl(url: string) {
      if (config.external_url !== undefined) return;
      externalUrl = url.replace(/\/+$/, '');
      dispatcher.externalUrl = externalUrl;
    },
    start() {
      hub.start();
      outbox.start();
      rules?.start();
      valueTimer = setInterval(() => hub.flushValues(), VALUE_FLUSH_MS);
      valueTimer.unref?.();
      // Alert changes wait in memory at most this long before they are written (hub.ts, "Persistence").
      changeTimer = setInterval(() => hub.flush(), config.persist_interval);
      changeTimer.unref?.();
      upkeep();
      upkeepTimer = setInterval(upkeep, UPKEEP_MS);
      upkeepTimer.unref?.();
      const receivers = [...integrations.entries()].map(
        ([r, l]) => `${r}(${l.map((i) => i.name).join(',')})`,
      );
      logger.info({ receivers, externalUrl }, 'alerting started');
    },
    async stop() {
      clearInterval(valueTimer);
      clearInterval(changeTimer);
      clearInterval(upkeepTimer);
      rules?.stop();
      dispatcher.stop();
      hub.flushValues();
      await outbox.stop();
      for (const list of integrations.values())
        for (const i of list) (i.notifier as { close?: () => void }).close?.();
    },
  };
}
