export { alertUrl } from './alert.js';
export { type AlertingApiDeps, promFloat, type RuleGroupsSource, registerAlertingApi } from './api.js';
export { type AlertingConfig, alertingConfigSchema, DEFAULT_RECEIVER, ROUTE_DEFAULTS } from './config.js';
export * from './contract.js';
export { AlertHub, type AlertView } from './hub.js';
export type { AlertGroup, DeliveryOutcome, Notifier } from './notifier.js';
export { parseMatcher, parseMatcherList } from './parse.js';
export { type AlertingService, buildIntegrations, createAlerting } from './service.js';
export { AlertStore } from './store.js';
