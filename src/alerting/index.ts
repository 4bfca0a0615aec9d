export { alertUrl } from './alert.js';
export { type AlertingApiDeps, promFloat, type RuleGroupsSource, registerAlertingApi } from './api.js';
export { type AlertingConfig, alertingConfigSchema, DEFAULT_RECEIVER, ROUTE_DEFAULTS } from './config.js';
export * from './contract.js';
export { AlertHub, type AlertView } from './hub.js';
export { DispatchLeader, type Leadership } from './leader.js';
export type { AlertGroup, DeliveryOutcome, Notifier } from './notifier.js';
export { parseMatcher, parseMatcherList } from './parse.js';
// The PostgreSQL store loads no driver by itself: it runs on the `PgMeta` the caller opened (meta/postgres).
export { ALERTING_PG_MIGRATIONS, PgAlertStore, type PgAlertStoreOptions } from './postgres/index.js';
export type { AlertChangeFeed, AlertRepository } from './repository.js';
export { localRuleEvaluator, type RuleQueryEvaluator } from './rules/manager.js';
export {
  type AlertingCluster,
  type AlertingOptions,
  type AlertingService,
  buildIntegrations,
  createAlerting,
} from './service.js';
export { AlertStore } from './store.js';
