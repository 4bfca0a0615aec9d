/**
 * Builds the alerting role from its configuration: the store, silences, the receivers' integrations, the
 * routing tree, the dispatcher, the outbox and the hub; runs the periodic upkeep (alert values to disk,
 * retention of history, notifications and expired silences).
 *
 * Two shapes:
 * - embedded (`meta`, SQLite): one process does everything, as it always did.
 * - cluster (`cluster`, PostgreSQL): every process's hub persists what its sources report (a processor's
 *   detectors) and the APIs read the store; the dispatcher, the actions, the outbox sender and the PromQL
 *   rules run only in the process holding `cluster.leadership`, following the store's change feed
 *   (`leader.ts`).
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { JobInfoCache, type JobRepository, type MetaStore } from '../meta/index.js';
import type { Storage } from '../storage/index.js';
import type { AlertingConfig } from './config.js';
import { Dispatcher, type Integration } from './dispatcher.js';
import { type ActionRule, AlertHub, OutboxActions } from './hub.js';
import { DispatchLeader, type Leadership } from './leader.js';
import type { Notifier } from './notifier.js';
import { CommandActionNotifier, type JobLookup, WebhookActionNotifier } from './notifiers/action.js';
import { AlertmanagerNotifier } from './notifiers/alertmanager.js';
import { EmailNotifier } from './notifiers/email.js';
import { PagerDutyNotifier } from './notifiers/pagerduty.js';
import { SlackNotifier } from './notifiers/slack.js';
import { WebhookNotifier } from './notifiers/webhook.js';
import { Outbox } from './outbox.js';
import { type AlertRepository, SqliteAlertRepository } from './repository.js';
import { buildRoute, type Route } from './routing.js';
import { loadRuleFiles, RuleManager, type RuleQueryEvaluator } from './rules/manager.js';
import { Silences } from './silences.js';
import { AlertStore } from './store.js';

/** The alerting stage in a cluster (`meta.kind: postgres`). */
export interface AlertingCluster {
  /** The shared store: `await PgAlertStore.open(pgMeta)` (from `alerting/postgres`). */
  readonly store: AlertRepository;
  /**
   * Given where this process may be the one dispatcher (it runs the processor or query role): the
   * `LeaderElection` it contends with. Absent: this process never dispatches nor sends.
   */
  readonly leadership?: Leadership;
  /** How often the leader polls the change feed (default 250 ms). */
  readonly feedPollMs?: number;
}

export interface AlertingOptions {
  readonly config: AlertingConfig;
  /** Embedded: the SQLite metadata store. Exactly one of `meta` and `cluster`. */
  readonly meta?: MetaStore;
  readonly cluster?: AlertingCluster;
  readonly jobs?: JobRepository;
  readonly logger: Logger;
  readonly registry: Registry;
  /** The address trainwatch listens on, for links when `external_url` is not set. */
  readonly listen: string;
  /** With storage, the PromQL alerting and recording rules of `rule_files` are evaluated. */
  readonly storage?: Storage;
  /**
   * Where the rules' expressions are evaluated: the server's query worker pool, so that they run off the
   * event loop that acknowledges writes. Absent: on this thread.
   */
  readonly ruleEvaluator?: RuleQueryEvaluator;
  readonly now?: () => number;
}

const SILENCE_RETENTION_MS = 5 * 24 * 3_600_000;
const VALUE_FLUSH_MS = 5000;
const UPKEEP_MS = 10 * 60_000;

export interface AlertingService {
  readonly config: AlertingConfig;
  /** The embedded SQLite store (undefined in a cluster). */
  readonly store: AlertStore | undefined;
  /** The store every part uses. */
  readonly repository: AlertRepository;
  readonly silences: Silences;
  readonly hub: AlertHub;
  /** The dispatcher: always embedded; in a cluster, the current term's while this process leads. */
  readonly dispatcher: Dispatcher | undefined;
  /** The cluster's leader side, where this process may lead. */
  readonly leader: DispatchLeader | undefined;
  readonly outbox: Outbox;
  /** The rule evaluator, when storage was given. */
  readonly rules: RuleManager | undefined;
  readonly integrations: ReadonlyMap<string, readonly Integration[]>;
  /** The routing tree the dispatcher routes with. */
  readonly route: Route;
  /** Base URL of the dashboard in links sent out. */
  readonly externalUrl: string;
  /** The address the server bound, used for links when `external_url` is not configured. */
  setListenUrl(url: string): void;
  /** Loads silences and open alerts, then starts the timers (and, in a cluster, contending to dispatch). */
  start(): Promise<void>;
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
  if ((opts.meta === undefined) === (opts.cluster === undefined))
    throw new Error('createAlerting needs exactly one of meta (embedded SQLite) and cluster (PostgreSQL)');
  const sqlite = opts.meta ? new AlertStore(opts.meta) : undefined;
  const repository: AlertRepository = sqlite ? new SqliteAlertRepository(sqlite) : opts.cluster!.store;
  const cluster = opts.cluster;
  const leadership = cluster?.leadership;
  const silences = new Silences(repository);
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
  const route = buildRoute(config.route);
  const outbox = new Outbox(
    repository,
    byKey,
    {
      backoffBaseMs: config.outbox.backoff_base,
      backoffMaxMs: config.outbox.backoff_max,
      maxAgeMs: config.outbox.max_age,
      timeoutMs: config.outbox.timeout,
      now,
      ...(leadership ? { mayDeliver: () => leadership.isLeader } : {}),
    },
    logger,
    opts.registry,
  );
  const flushes = new Counter({
    name: 'trainwatch_alert_group_flushes_total',
    help: 'Alert group flushes by receiver: each decides whether the receiver must be told something (group_wait, then every group_interval).',
    labelNames: ['receiver'],
    registers: [opts.registry],
  });
  const newDispatcher = () => {
    const d = new Dispatcher(route, integrations, repository, silences, logger, {
      externalUrl,
      now,
      flushes,
    });
    d.onEnqueue = () => outbox.wake();
    // A leader that lost its lease queues nothing more: its successor decides from the shared log.
    if (leadership) d.mayNotify = () => leadership.isLeader;
    return d;
  };
  const actionRules: ActionRule[] = config.actions.map((a) => ({
    name: a.name,
    matchers: a.matchers,
    on: a.on,
  }));
  const actions =
    actionRules.length > 0 && (!cluster || leadership)
      ? new OutboxActions(repository, silences, actionRules, () => outbox.wake(), logger)
      : undefined;
  // Embedded: one dispatcher for the process's life, fed by the hub. Cluster: the leader's, per term.
  const localDispatcher = cluster ? undefined : newDispatcher();
  const hub = new AlertHub(
    repository,
    silences,
    localDispatcher,
    cluster ? undefined : actions,
    logger,
    opts.registry,
    {
      now,
      openFromStore: cluster !== undefined,
    },
  );
  if (localDispatcher) localDispatcher.beforeNotify = () => hub.flush();
  // Invalid rule files stop the start, with promtool's messages (as Prometheus refuses them).
  const ruleFiles = opts.storage ? loadRuleFiles(config.rule_files) : undefined;
  const newRules = () =>
    opts.storage && ruleFiles
      ? new RuleManager(ruleFiles, {
          files: config.rule_files,
          defaultIntervalMs: config.evaluation_interval,
          storage: opts.storage,
          ...(opts.ruleEvaluator ? { evaluator: opts.ruleEvaluator } : {}),
          hub,
          logger,
          externalUrl: () => externalUrl,
          now,
        })
      : undefined;
  // Embedded: rules always run here. Cluster: only on the leader, one manager per term.
  let rules = cluster ? undefined : newRules();
  const leader =
    cluster && leadership && cluster.store.changes
      ? new DispatchLeader({
          store: repository,
          feed: cluster.store.changes,
          leadership,
          silences,
          newDispatcher,
          actions,
          logger,
          now,
          ...(cluster.feedPollMs !== undefined ? { pollIntervalMs: cluster.feedPollMs } : {}),
          onTerm: async (leading) => {
            if (leading) {
              outbox.wake();
              const r = newRules();
              if (r) {
                // Rule alerts resume where the previous leader left them.
                await hub.start('rule');
                rules = r;
                r.start();
              }
            } else {
              rules?.stop();
              rules = undefined;
            }
          },
        })
      : undefined;
  if (cluster && leadership && !cluster.store.changes)
    throw new Error('alerting: cluster.store has no change feed (a dispatcher leader needs one)');
  let valueTimer: NodeJS.Timeout | undefined;
  let changeTimer: NodeJS.Timeout | undefined;
  let upkeepTimer: NodeJS.Timeout | undefined;
  const upkeep = async () => {
    // In a cluster the leader alone prunes: one process does the deletes.
    if (cluster && !leadership?.isLeader) return;
    try {
      const t = now();
      await repository.pruneResolved(t - config.history_retention);
      await repository.pruneNotifications(t - config.outbox.retention);
      await silences.prune(t, SILENCE_RETENTION_MS);
    } catch (err) {
      logger.error({ err }, 'alerting upkeep failed');
    }
  };
  return {
    config,
    store: sqlite,
    repository,
    silences,
    hub,
    get dispatcher() {
      return localDispatcher ?? leader?.dispatcher;
    },
    leader,
    outbox,
    get rules() {
      return rules;
    },
    integrations,
    route,
    get externalUrl() {
      return externalUrl;
    },
    setListenUrl(url: string) {
      if (config.external_url !== undefined) return;
      externalUrl = url.replace(/\/+$/, '');
      if (localDispatcher) localDispatcher.externalUrl = externalUrl;
      const d = leader?.dispatcher;
      if (d) d.externalUrl = externalUrl;
    },
    async start() {
      await silences.reload();
      // A cluster's processor loads no open alerts (see AlertHub.start); the leader loads rule alerts per term.
      if (!cluster) await hub.start();
      if (!cluster || leadership) outbox.start();
      rules?.start();
      leader?.start();
      valueTimer = setInterval(() => void hub.flushValues(), VALUE_FLUSH_MS);
      valueTimer.unref?.();
      // Alert changes wait in memory at most this long before they are written (hub.ts, "Persistence").
      changeTimer = setInterval(() => void hub.flush(), config.persist_interval);
      changeTimer.unref?.();
      await upkeep();
      upkeepTimer = setInterval(() => void upkeep(), UPKEEP_MS);
      upkeepTimer.unref?.();
      const receivers = [...integrations.entries()].map(
        ([r, l]) => `${r}(${l.map((i) => i.name).join(',')})`,
      );
      logger.info(
        {
          receivers,
          externalUrl,
          mode: cluster ? (leadership ? 'cluster, may lead' : 'cluster') : 'embedded',
        },
        'alerting started',
      );
    },
    async stop() {
      clearInterval(valueTimer);
      clearInterval(changeTimer);
      clearInterval(upkeepTimer);
      rules?.stop();
      localDispatcher?.stop();
      await leader?.stop();
      await hub.flushValues();
      await outbox.stop();
      for (const list of integrations.values())
        for (const i of list) (i.notifier as { close?: () => void }).close?.();
    },
  };
}
