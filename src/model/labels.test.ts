import { describe, expect, it } from 'vitest';
import { isStaleNaN, STALE_NAN } from './batch.js';
import { parseDuration } from './duration.js';
import {
  formatSeries,
  isValidLabelName,
  isValidMetricName,
  LabelMatcher,
  labelsKey,
  matchesAll,
  sanitizeMetricName,
} from './labels.js';

describe('metric and label names', () => {
  it.each([
    ['train/loss', 'train_loss'],
    ['eval/top-1 acc', 'eval_top_1_acc'],
    ['1st_metric', '_1st_metric'],
    ['already_ok:sum', 'already_ok:sum'],
    ['', '_'],
    ['ü', '_'],
  ])('sanitizes %j to %j', (key, name) => {
    expect(sanitizeMetricName(key)).toBe(name);
    expect(isValidMetricName(sanitizeMetricName(key))).toBe(true);
  });

  it('validates names as Prometheus does', () => {
    expect(isValidMetricName('gpu_utilization_ratio')).toBe(true);
    expect(isValidMetricName('a:b')).toBe(true);
    expect(isValidMetricName('9x')).toBe(false);
    expect(isValidLabelName('a:b')).toBe(false);
    expect(isValidLabelName('_x9')).toBe(true);
  });

  it('formats series and keys deterministically', () => {
    expect(formatSeries({ b: '2', __name__: 'm', a: '1' })).toBe('m{a="1", b="2"}');
    expect(labelsKey({ b: '2', a: '1' })).toBe(labelsKey({ a: '1', b: '2' }));
    expect(labelsKey({ a: 'x,b="y"' })).not.toBe(labelsKey({ a: 'x', b: 'y' }));
  });
});

describe('label matchers', () => {
  const labels = { __name__: 'gpu_utilization_ratio', node_id: 'n12', gpu: '3' };
  it('anchors regexes fully, as PromQL does', () => {
    expect(new LabelMatcher('=~', 'node_id', 'n1').matches('n12')).toBe(false);
    expect(new LabelMatcher('=~', 'node_id', 'n1.*').matches('n12')).toBe(true);
    expect(new LabelMatcher('!~', 'node_id', 'n1').matches('n12')).toBe(true);
  });
  it('treats a missing label as empty', () => {
    expect(new LabelMatcher('=', 'rank', '').matches(undefined)).toBe(true);
    expect(new LabelMatcher('!=', 'rank', '').matches(undefined)).toBe(false);
    expect(matchesAll(labels, [new LabelMatcher('=', 'gpu', '3'), new LabelMatcher('=', 'rank', '')])).toBe(
      true,
    );
  });
  it('names the matcher in a bad-regex error', () => {
    expect(() => new LabelMatcher('=~', 'gpu', '(')).toThrow(/gpu=~"\("/);
  });
});

describe('staleness marker', () => {
  it('is recognised by its bits, not as any NaN', () => {
    expect(isStaleNaN(STALE_NAN)).toBe(true);
    expect(isStaleNaN(Number.NaN)).toBe(false);
    expect(isStaleNaN(1)).toBe(false);
    const arr = new Float64Array(1);
    arr[0] = STALE_NAN;
    expect(isStaleNaN(arr[0]!)).toBe(true);
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['2d', 172_800_000],
    ['1500', 1500],
  ])('parses %s', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it('refuses nonsense', () => {
    expect(() => parseDuration('5 minutes')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
  });
});
