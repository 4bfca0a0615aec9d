/**
 * The alerting answers the dashboard reads, written once: trainwatch's alert list (`GET /api/tw/v1/alerts`,
 * src/alerting/api.ts: twAlert) and Alertmanager v2's silences (`GET /api/v2/silences`,
 * src/alerting/silences.ts: ApiSilence, src/alerting/store.ts: SilenceMatcher). Types only, free of Node
 * imports, so that both the server's and the dashboard's tsconfig compile this file.
 */

export type AlertState = 'firing' | 'pending' | 'resolved';
export type Severity = 'critical' | 'warning' | 'info';

/** An alert of trainwatch's list with history. */
export interface ListedAlert {
  readonly fingerprint: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: AlertState;
  readonly activeAtMs: number;
  readonly firingAtMs: number | null;
  readonly resolvedAtMs: number | null;
  /** null for a non-finite value. */
  readonly value: number | string | null;
  readonly source: 'detector' | 'rule' | string;
  readonly name: string;
  readonly url: string;
  /** Ids of the active silences that mute the alert (empty or absent: not silenced). */
  readonly silencedBy?: readonly string[];
}

/** Alertmanager v2 matcher. */
export interface SilenceMatcher {
  readonly name: string;
  readonly value: string;
  readonly isRegex: boolean;
  readonly isEqual: boolean;
}

export type SilenceState = 'active' | 'pending' | 'expired';

/** Alertmanager API v2 `gettableSilence`. */
export interface ApiSilence {
  readonly id: string;
  readonly status: { readonly state: SilenceState };
  readonly updatedAt: string;
  readonly comment: string;
  readonly createdBy: string;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly matchers: readonly SilenceMatcher[];
}
