/**
 * The alerts page's logic (src/ui/lib/alert-list.ts, behind its hooks and list components): counts per
 * state with silenced alerts apart, the state filter and order, groups in the order of their causes, which
 * silence mutes an alert, silences in list order, the silence form's checks, detectors' details.
 */
import { describe, expect, it } from 'vitest';
import {
  alertCounts,
  detectorDetails,
  detectorLastEvaluation,
  groupsInOrder,
  matcherText,
  SILENCED_ELSEWHERE,
  shownAlerts,
  silenceFormValid,
  silenceOf,
  sortSilences,
} from '../../src/ui/lib/alert-list.js';
import type { Alert, Matcher, Silence } from '../../src/ui/lib/types.js';

function alert(name: string, state: Alert['state'], at: number, labels: Record<string, string> = {}): Alert {
  return {
    fingerprint: `${name}-${JSON.stringify(labels)}`,
    labels: { alertname: name, ...labels },
    annotations: {},
    state,
    activeAtMs: at,
    firingAtMs: state === 'pending' ? null : at,
    resolvedAtMs: state === 'resolved' ? at + 1 : null,
    value: null,
    source: 'detector',
    name,
    url: '',
  };
}

const eq = (name: string, value: string): Matcher => ({ name, value, isRegex: false, isEqual: true });

function silence(id: string, state: string, endsAt: string, matchers: Matcher[] = []): Silence {
  return {
    id,
    matchers,
    startsAt: '2026-01-01T00:00:00Z',
    endsAt,
    createdBy: 'ada',
    comment: 'c',
    status: { state },
  };
}

describe('the alert list', () => {
  const critical = alert('GPUXid', 'firing', 10, { severity: 'critical', job_id: 'j1' });
  const warningOld = alert('StepTimeSlow', 'firing', 5, { severity: 'warning', job_id: 'j2' });
  const warningNew = alert('LossSpike', 'pending', 20, { severity: 'warning', job_id: 'j3' });
  const resolved = alert('TrainingNaN', 'resolved', 30, { severity: 'critical', job_id: 'j4' });
  const silenced = {
    ...alert('GPUIdle', 'firing', 40, { severity: 'info', job_id: 'j5' }),
    silencedBy: ['s1'],
  };
  const all = [resolved, warningOld, silenced, critical, warningNew];

  it('counts each state, silenced active alerts apart', () => {
    expect(alertCounts(all)).toEqual({ firing: 2, pending: 1, resolved: 1, silenced: 1 });
  });

  it('keeps what the filter asks for: active first, then by severity, then the newest', () => {
    expect(shownAlerts(all, 'active').map((a) => a.name)).toEqual([
      'GPUXid',
      'LossSpike',
      'StepTimeSlow',
      'GPUIdle',
    ]);
    expect(shownAlerts(all, 'resolved').map((a) => a.name)).toEqual(['TrainingNaN']);
    expect(shownAlerts(all, 'pending').map((a) => a.name)).toEqual(['LossSpike']);
    expect(shownAlerts(all, 'all').at(-1)!.name).toBe('TrainingNaN');
  });

  it('folds consequences under their cause and keeps the groups in the order of their causes', () => {
    const throttle = alert('GPUThermalThrottle', 'firing', 1, {
      severity: 'warning',
      node_id: 'n1',
      gpu: '3',
      job_id: 'j1',
    });
    const straggler = alert('StragglerRank', 'firing', 2, {
      severity: 'warning',
      node_id: 'n1',
      gpu: '3',
      job_id: 'j1',
    });
    const other = alert('TrainingNaN', 'firing', 3, { severity: 'critical', job_id: 'j9' });
    const groups = groupsInOrder(shownAlerts([throttle, straggler, other], 'active'));
    expect(groups.map((g) => g.cause.name)).toEqual(['TrainingNaN', 'GPUThermalThrottle']);
    expect(groups[1]!.consequences.map((a) => a.name)).toEqual(['StragglerRank']);
  });

  it('names the loaded silence that mutes an alert, or says the server knows of one', () => {
    const s1 = silence('s1', 'active', '2026-01-02T00:00:00Z', [eq('alertname', 'GPUXid')]);
    const expired = silence('s0', 'expired', '2026-01-01T01:00:00Z', [eq('alertname', 'StepTimeSlow')]);
    expect(silenceOf(critical, [expired, s1])).toBe(s1);
    expect(silenceOf(warningOld, [expired, s1])).toBeUndefined();
    expect(silenceOf(silenced, [s1])).toBe(SILENCED_ELSEWHERE);
  });
});

describe('silences', () => {
  it('lists active, then pending, then expired, the latest end first', () => {
    const list = sortSilences([
      silence('e', 'expired', '2026-01-05T00:00:00Z'),
      silence('a1', 'active', '2026-01-02T00:00:00Z'),
      silence('p', 'pending', '2026-01-09T00:00:00Z'),
      silence('a2', 'active', '2026-01-03T00:00:00Z'),
    ]);
    expect(list.map((s) => s.id)).toEqual(['a2', 'a1', 'p', 'e']);
  });

  it('writes matchers as Alertmanager does', () => {
    expect(matcherText(eq('job_id', 'j1'))).toBe('job_id="j1"');
    expect(matcherText({ name: 'gpu', value: '[0-3]', isRegex: true, isEqual: false })).toBe('gpu!~"[0-3]"');
  });

  it('sends a silence only with named matchers that match something, a comment and an author', () => {
    expect(silenceFormValid([eq('alertname', 'GPUXid')], 'flaky GPU', 'ada')).toBe(true);
    expect(silenceFormValid([], 'c', 'ada')).toBe(false);
    expect(silenceFormValid([eq('', 'x')], 'c', 'ada')).toBe(false);
    // Every value empty: it would mute every alert.
    expect(silenceFormValid([eq('alertname', '')], 'c', 'ada')).toBe(false);
    expect(silenceFormValid([{ ...eq('alertname', ''), isRegex: true }], 'c', 'ada')).toBe(true);
    expect(silenceFormValid([eq('alertname', 'x')], ' ', 'ada')).toBe(false);
    expect(silenceFormValid([eq('alertname', 'x')], 'c', '')).toBe(false);
  });
});

describe('detectors', () => {
  it('reads the last evaluation in ms or RFC 3339, and shows the other fields', () => {
    expect(detectorLastEvaluation({ lastEvaluationMs: 1234 })).toBe(1234);
    expect(detectorLastEvaluation({ lastEvaluation: '2026-01-01T00:00:00Z' })).toBe(Date.UTC(2026, 0, 1));
    expect(detectorLastEvaluation({ lastEvaluation: 'never' })).toBeNull();
    expect(detectorLastEvaluation({})).toBeNull();
    expect(detectorDetails({ name: 'stall', state: 'ok', windowSeconds: 60, jobs: { seen: 3 } })).toBe(
      'windowSeconds: 60 · jobs: {"seen":3}',
    );
  });
});
