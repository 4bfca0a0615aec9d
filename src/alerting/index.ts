export { alertUrl, fingerprint, SEVERITIES, type Severity } from './alert.js';
export { type AlertingApiDeps, promFloat, type RuleGroupsSource, registerAlertingApi } from './api.js';
export { type AlertingConfig, alertingConfigSchema, DEFAULT_RECEIVER, ROUTE_DEFAULTS } from './config.js';
export { AlertHub, type AlertView } from './hub.js';
export type {
  Alert,
  AlertGroup,
  AlertSource,
  AlertState,
  DeliveryOutcome,
  Notifier,
} from './notifier.js';
export { type AlertingService, buildIntegrations, createAlerting } from './service.js';
export { AlertStore } from './store.js';
export { type AlertChange, type AlertRule, type AlertSink, AlertTracker } from './tracker.js';
