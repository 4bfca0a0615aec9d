export type { Alert, AlertGroup, AlertState, DeliveryOutcome, Notifier } from './notifier.js';
