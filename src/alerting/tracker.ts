/**
 * The alert lifecycle of one alert source, in the source's own clock (event time for detectors, evaluation
 * time for rules): a condition that becomes true makes an alert *pending*; once it has held for `for` the
 * alert is *firing*; when it stops holding (and `keep_firing_for` has passed) the alert is *resolved*. A
 * pending alert whose condition stops holding is dropped, as Prometheus drops it.
 *
 * The tracker reports every change to its sink (the alert hub persists, groups and notifies). Its state is
 * plain data ({@link AlertTracker.snapshot}) so the processor can checkpoint it with its bus offsets: after a
 * crash, replaying the bus from that checkpoint re-derives exactly the changes that followed, with the same
 * timestamps, so that the hub recognises them and nothing is notified twice.
 *
 * Not safe for concurrent use; the processor calls it from one event loop.
 */
import type { LabelSet } from '../model/labels.js';
import { alertUrl } from './alert.js';
import type { Alert, AlertSource } from './notifier.js';

/** What the tracker needs to know about the rule or detector behind an alert. */
export interface AlertRule {
  readonly name: string;
  readonly forMs: number;
  readonly keepFiringForMs: number;
  readonly source: AlertSource;
  /** Detector name or `file:group` of a rule. */
  readonly origin: string;
}

/** `pending`: new; `firing`: for elapsed; `resolved`: ended after firing; `dropped`: ended while pending. */
export type AlertChange = 'pending' | 'firing' | 'resolved' | 'dropped';

export interface AlertSink {
  transition(alert: Alert, change: AlertChange): void;
  /** The value of an active alert at `atMs` (called at most once per second of the source's clock). */
  value?(alert: Alert, atMs: number): void;
}

interface TrackedAlert {
  fingerprint: string;
  labels: LabelSet;
  annotations: Record<string, string>;
  name: string;
  forMs: number;
  keepFiringForMs: number;
  source: AlertSource;
  origin: string;
  state: 'pending' | 'firing';
  activeAtMs: number;
  firingAtMs: number | null;
  lastTrueMs: number;
  value: number;
  lastValueReportMs: number;
}

export type AlertTrackerSnapshot = readonly TrackedAlert[];

const VALUE_REPORT_EVERY_MS = 1000;

export class AlertTracker {
  private readonly alerts = new Map<string, TrackedAlert>();

  constructor(private readonly sink: AlertSink) {}

  get size(): number {
    return this.alerts.size;
  }

  /**
   * The condition of the alert identified by `fp` (its labels' fingerprint) holds at `t` with `value`.
   * `annotate` renders the annotations; it runs only when the alert is created or starts firing.
   */
  activate(
    fp: string,
    rule: AlertRule,
    labels: LabelSet,
    t: number,
    value: number,
    annotate: (value: number) => Record<string, string>,
  ): void {
    let a = this.alerts.get(fp);
    if (!a) {
      a = {
        fingerprint: fp,
        labels,
        annotations: annotate(value),
        name: rule.name,
        forMs: rule.forMs,
        keepFiringForMs: rule.keepFiringForMs,
        source: rule.source,
        origin: rule.origin,
        state: 'pending',
        activeAtMs: t,
        firingAtMs: null,
        lastTrueMs: t,
        value,
        lastValueReportMs: t,
      };
      this.alerts.set(fp, a);
      if (rule.forMs <= 0) {
        a.state = 'firing';
        a.firingAtMs = t;
        this.sink.transition(toAlert(a), 'firing');
      } else {
        this.sink.transition(toAlert(a), 'pending');
      }
      return;
    }
    a.lastTrueMs = Math.max(a.lastTrueMs, t);
    a.value = value;
    if (a.state === 'pending' && t - a.activeAtMs >= a.forMs) {
      a.state = 'firing';
      a.firingAtMs = t;
      a.annotations = annotate(value);
      a.lastValueReportMs = t;
      this.sink.transition(toAlert(a), 'firing');
    } else if (this.sink.value && t - a.lastValueReportMs >= VALUE_REPORT_EVERY_MS) {
      // The annotations are rendered again from the current value (as Prometheus re-renders its templates at
      // each evaluation): "out of memory in about 5m" must not keep saying what it said when it began.
      a.lastValueReportMs = t;
      a.annotations = annotate(value);
      this.sink.value(toAlert(a), t);
    }
  }

  /** The condition no longer holds at `t`. A firing alert resolves once `keep_firing_for` has passed. */
  deactivate(fp: string, t: number): void {
    const a = this.alerts.get(fp);
    if (!a) return;
    if (a.state === 'firing' && t - a.lastTrueMs < a.keepFiringForMs) return;
    this.end(a, t);
  }

  /** Ends the alert at once, whatever `keep_firing_for` says (its job finished, its series went away). */
  end(fpOrAlert: string | TrackedAlert, t: number): void {
    const a = typeof fpOrAlert === 'string' ? this.alerts.get(fpOrAlert) : fpOrAlert;
    if (!a) return;
    this.alerts.delete(a.fingerprint);
    if (a.state === 'pending') {
      this.sink.transition(
        { ...toAlert(a), state: 'resolved', resolvedAtMs: Math.max(t, a.activeAtMs) },
        'dropped',
      );
    } else {
      this.sink.transition(
        { ...toAlert(a), state: 'resolved', resolvedAtMs: Math.max(t, a.activeAtMs) },
        'resolved',
      );
    }
  }

  /** Ends every alert whose labels satisfy `pred` (e.g. all alerts of a finished job). */
  endWhere(pred: (labels: LabelSet) => boolean, t: number): void {
    for (const a of [...this.alerts.values()]) if (pred(a.labels)) this.end(a, t);
  }

  has(fp: string): boolean {
    return this.alerts.has(fp);
  }

  get(fp: string): Alert | undefined {
    const a = this.alerts.get(fp);
    return a ? toAlert(a) : undefined;
  }

  active(): Alert[] {
    return [...this.alerts.values()].map(toAlert);
  }

  /** Alerts by name, for detector status (`pending`/`firing` counts). */
  countByOrigin(): Map<string, { pending: number; firing: number }> {
    const out = new Map<string, { pending: number; firing: number }>();
    for (const a of this.alerts.values()) {
      let c = out.get(a.origin);
      if (!c) {
        c = { pending: 0, firing: 0 };
        out.set(a.origin, c);
      }
      c[a.state]++;
    }
    return out;
  }

  snapshot(): AlertTrackerSnapshot {
    return [...this.alerts.values()].map((a) => ({ ...a }));
  }

  /** Restores a snapshot without reporting anything: the hub already knows these alerts. */
  restore(snapshot: AlertTrackerSnapshot): void {
    this.alerts.clear();
    for (const a of snapshot) this.alerts.set(a.fingerprint, { ...a });
  }
}

function toAlert(a: TrackedAlert): Alert {
  return {
    labels: a.labels,
    annotations: a.annotations,
    state: a.state,
    activeAtMs: a.activeAtMs,
    firingAtMs: a.firingAtMs,
    resolvedAtMs: null,
    fingerprint: a.fingerprint,
    url: alertUrl(a.labels, a.activeAtMs),
    value: a.value,
    source: a.source,
    name: a.name,
    origin: a.origin,
  };
}
