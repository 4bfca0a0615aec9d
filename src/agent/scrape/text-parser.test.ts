import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type MetricType, parsePrometheusText, parseSeries, TextFormatError } from './text-parser.js';

const SCRAPE = path.resolve(import.meta.dirname, '../../../testdata/scrape');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  ts: number;
  type: MetricType;
}

function parseAll(text: string): { samples: Sample[]; help: Map<string, string> } {
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  parsePrometheusText(text, {
    sample: (series, value, ts, type) => {
      const p = parseSeries(series);
      samples.push({ name: p.name, labels: Object.fromEntries(p.labels), value, ts, type });
    },
    help: (name, h) => help.set(name, h),
  });
  return { samples, help };
}

describe('Prometheus text format parser', () => {
  it('reads the documentation example: timestamps, escaping, +Inf, histogram and summary', () => {
    const { samples, help } = parseAll(readFileSync(path.join(SCRAPE, 'exposition-spec.txt'), 'utf8'));
    expect(samples).toHaveLength(20);
    expect(samples[0]).toEqual({
      name: 'http_requests_total',
      labels: { method: 'post', code: '200' },
      value: 1027,
      ts: 1395066363000,
      type: 'counter',
    });
    expect(samples[2]!.labels).toEqual({ path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
    expect(samples[3]).toMatchObject({ name: 'metric_without_timestamp_and_labels', value: 12.47 });
    expect(Number.isNaN(samples[3]!.ts)).toBe(true);
    expect(samples[4]).toMatchObject({ value: Number.POSITIVE_INFINITY, ts: -3982045 });
    const buckets = samples.filter((s) => s.name === 'http_request_duration_seconds_bucket');
    expect(buckets.map((b) => b.labels.le)).toEqual(['0.05', '0.1', '0.2', '0.5', '1', '+Inf']);
    expect(buckets.every((b) => b.type === 'histogram')).toBe(true);
    expect(samples.find((s) => s.name === 'http_request_duration_seconds_count')?.type).toBe('histogram');
    const summary = samples.filter((s) => s.name.startsWith('rpc_duration_seconds'));
    expect(summary.every((s) => s.type === 'summary')).toBe(true);
    expect(summary.find((s) => s.name === 'rpc_duration_seconds_sum')?.value).toBe(1.7560473e7);
    expect(help.get('http_requests_total')).toBe('The total number of HTTP requests.');
  });

  it("reads every line of Debian's prometheus-node-exporter output", () => {
    const text = readFileSync(path.join(SCRAPE, 'node-exporter.txt'), 'utf8');
    const { samples } = parseAll(text);
    const sampleLines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(samples).toHaveLength(sampleLines.length);
    const gc = samples.filter((s) => s.name === 'go_gc_duration_seconds');
    expect(gc.map((s) => s.labels.quantile)).toEqual(['0', '0.25', '0.5', '0.75', '1']);
    expect(gc[0]!.type).toBe('summary');
    const cpu = samples.filter((s) => s.name === 'node_cpu_seconds_total');
    expect(cpu.length).toBeGreaterThan(0);
    expect(cpu.every((s) => s.type === 'counter' && s.labels.mode !== undefined)).toBe(true);
  });

  it('reads recorded dcgm-exporter output', () => {
    const { samples } = parseAll(readFileSync(path.join(SCRAPE, 'dcgm-exporter-l4.txt'), 'utf8'));
    expect(samples).toHaveLength(23);
    const util = samples.find((s) => s.name === 'DCGM_FI_DEV_GPU_UTIL')!;
    expect(util.labels).toMatchObject({
      gpu: '0',
      UUID: 'GPU-c2f76b33-7953-256e-8f33-1343419b1a1c',
      modelName: 'NVIDIA L4',
    });
    expect(samples.find((s) => s.name === 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')!.type).toBe('counter');
  });

  it('reads Prometheus 3 quoted UTF-8 names, trailing commas, NaN and spacing', () => {
    const { samples } = parseAll(
      '{"my.metric", "label.with.dots"="a", b="x",} NaN\n' +
        'plain { a = "1" } 2e-3 17\n' +
        '# a comment that is neither HELP nor TYPE\n' +
        'neg -Inf\n',
    );
    expect(samples[0]!.name).toBe('my.metric');
    expect(samples[0]!.labels).toEqual({ 'label.with.dots': 'a', b: 'x' });
    expect(Number.isNaN(samples[0]!.value)).toBe(true);
    expect(samples[1]).toMatchObject({ name: 'plain', labels: { a: '1' }, value: 0.002, ts: 17 });
    expect(samples[2]!.value).toBe(Number.NEGATIVE_INFINITY);
  });

  it.each([
    ['metric{a="1"', 'label block not closed'],
    ['metric 1 2 3', 'unexpected text after the timestamp'],
    ['metric abc', 'is not a number'],
    ['metric 1 1.5', 'not integer milliseconds'],
    ['metric{a="\\x"} 1', 'invalid escape'],
    ['# TYPE m countr', 'unknown type'],
    ['1metric 1', 'invalid metric name'],
    ['metric', 'no value'],
  ])('refuses %j with a message naming the line', (line, message) => {
    const text = `ok 1\n${line}\n`;
    let err: unknown;
    try {
      parseAll(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TextFormatError);
    expect((err as TextFormatError).line).toBe(2);
    expect((err as Error).message).toContain(message);
  });

  it('refuses labels given twice and label values without quotes', () => {
    expect(() => parseSeries('m{a="1",a="2"}')).toThrow(/given twice/);
    expect(() => parseSeries('m{a=1}')).toThrow(/quoted string/);
  });
});
