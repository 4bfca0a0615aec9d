/**
 * The alerting contract: what a producer of alerts (the processor's streaming detectors) needs from the
 * alerting stage, and what the alerting stage needs to know of them. Small and free of the stage's machinery
 * (stores, notifiers, rules), so a processor running elsewhere — another worker or another process — loads
 * only this.
 *
 * Imports flow downstream only (processor → alerting): the alerting stage describes here the status report
 * it shows for detectors ({@link DetectorStatus}); the processor produces it and never the other way round.
 */
export { fingerprint, formatSeconds, formatValue, SEVERITIES, type Severity } from './alert.js';
export type { Alert, AlertSource, AlertState } from './notifier.js';
export { durationMs, parseSelector, type SelectorPair } from './parse.js';
export {
  type AlertChange,
  type AlertRule,
  type AlertSink,
  AlertTracker,
  type AlertTrackerSnapshot,
} from './tracker.js';

/** What `/api/tw/v1/detectors` shows about one streaming detector (the processor reports it). */
export interface DetectorStatus {
  readonly name: string;
  readonly description: string;
  readonly enabled: boolean;
  readonly alertnames: readonly string[];
  /** Series or jobs this detector currently looks at. */
  readonly tracked: number;
  readonly samples: number;
  readonly lastEvaluationMs: number | null;
  readonly pending: number;
  readonly firing: number;
  readonly state: 'inactive' | 'pending' | 'firing';
  readonly params: unknown;
}
