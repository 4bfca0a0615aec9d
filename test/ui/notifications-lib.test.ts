/** The notifications page's pure logic: reading typed labels (as amtool takes them) and judging health. */
import { describe, expect, it } from 'vitest';
import {
  fmtDuration,
  healthState,
  type IntegrationHealth,
  parseLabelInput,
} from '../../src/ui/lib/notifications.js';

describe('parseLabelInput', () => {
  it('reads name=value pairs and selectors, quoted or not', () => {
    expect(parseLabelInput('severity=critical alertname="GPU hot"')).toEqual({
      labels: { severity: 'critical', alertname: 'GPU hot' },
    });
    expect(parseLabelInput('{severity="critical", job_id="a\\"b"}')).toEqual({
      labels: { severity: 'critical', job_id: 'a"b' },
    });
    expect(parseLabelInput('a=1,b=2')).toEqual({ labels: { a: '1', b: '2' } });
    expect(parseLabelInput('team=')).toEqual({ labels: { team: '' } });
  });

  it('says what it cannot read', () => {
    expect(parseLabelInput('=oops')).toEqual({ error: 'cannot read "=oops": expected name=value' });
    expect(parseLabelInput('severity=~"crit.*"')).toMatchObject({
      error: expect.stringMatching(/cannot read/),
    });
    expect(parseLabelInput('{a="b"')).toEqual({ error: 'a selector must end with }' });
    expect(parseLabelInput('  ')).toMatchObject({ error: expect.stringMatching(/at least one label/) });
  });
});

describe('healthState', () => {
  const h = (o: Partial<IntegrationHealth>): IntegrationHealth => ({
    delivered: 0,
    failed: 0,
    pending: 0,
    retrying: 0,
    lastDeliveredMs: null,
    lastFailureMs: null,
    lastError: null,
    meanLatencyMs: null,
    maxLatencyMs: null,
    ...o,
  });
  it('judges by the newest outcome', () => {
    expect(healthState(null)).toBe('idle');
    expect(healthState(h({}))).toBe('idle');
    expect(healthState(h({ delivered: 1, lastDeliveredMs: 10 }))).toBe('ok');
    expect(healthState(h({ delivered: 1, failed: 1, lastDeliveredMs: 20, lastFailureMs: 10 }))).toBe('ok');
    expect(healthState(h({ delivered: 1, failed: 1, lastDeliveredMs: 10, lastFailureMs: 20 }))).toBe(
      'failing',
    );
    expect(healthState(h({ pending: 1, retrying: 1, lastFailureMs: 20 }))).toBe('retrying');
  });
});

it('formats durations', () => {
  expect([250, 1200, 45_000, 250_000, 3_600_000, 5_400_000].map(fmtDuration)).toEqual([
    '250ms',
    '1.2s',
    '45s',
    '4m 10s',
    '1h',
    '1h 30m',
  ]);
  expect(fmtDuration(null)).toBe('—');
});
