/**
 * The dashboard's pure logic (src/ui/lib): URL time ranges, smoothing, heatmap matrices and their live
 * merge, the SSE parser behind authenticated streams, config diffs, curve grouping, alert health and the
 * silences made from alerts, and the fleet table's filters, sort and totals.
 */
import { describe, expect, it } from 'vitest';
import {
  alertLocation,
  alertsFromBody,
  healthByJob,
  healthMatrix,
  matchersMatch,
  silenceMatchersFor,
} from '../../src/ui/lib/alerts.js';
import { colorTable } from '../../src/ui/lib/colors.js';
import { diffConfigs, flattenConfig } from '../../src/ui/lib/config-diff.js';
import { filterJobs, fleetTotals, sortJobs } from '../../src/ui/lib/fleet.js';
import { mergeCurves, mergeSpread, stepAtTime } from '../../src/ui/lib/live-merge.js';
import {
  cellValue,
  decodeMatrix,
  type HeatmapResponse,
  type Matrix,
  mergeMatrix,
  NO_DATA,
} from '../../src/ui/lib/matrix.js';
import { curveStem, groupCurves, isCurveMetric } from '../../src/ui/lib/metrics.js';
import { emaSmooth } from '../../src/ui/lib/smoothing.js';
import { SseParser } from '../../src/ui/lib/sse.js';
import { parseRange, rangeParams, resolveRange } from '../../src/ui/lib/time-range.js';
import type { Alert, Curve, FleetJob, SpreadResponse } from '../../src/ui/lib/types.js';
import { withParams } from '../../src/ui/lib/url.js';

const H = 3_600_000;

describe('time ranges in the URL', () => {
  const fallback = { kind: 'run' } as const;
  it('reads presets, the whole run and absolute ranges, and writes them back', () => {
    expect(parseRange(new URLSearchParams('range=15m'), fallback)).toEqual({
      kind: 'relative',
      key: '15m',
      ms: 900_000,
    });
    expect(parseRange(new URLSearchParams('range=run'), { kind: 'relative', key: '1h', ms: H })).toEqual({
      kind: 'run',
    });
    expect(parseRange(new URLSearchParams('from=1000&to=5000'), fallback)).toEqual({
      kind: 'absolute',
      from: 1000,
      to: 5000,
    });
    expect(
      parseRange(new URLSearchParams('from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z'), fallback),
    ).toEqual({
      kind: 'absolute',
      from: Date.parse('2026-01-01T00:00:00Z'),
      to: Date.parse('2026-01-01T01:00:00Z'),
    });
    expect(parseRange(new URLSearchParams('range=bogus&from=9&to=1'), fallback)).toEqual(fallback);
    for (const spec of [
      { kind: 'relative', key: '7d', ms: 7 * 24 * H },
      { kind: 'run' },
      { kind: 'absolute', from: 5, to: 9 },
    ] as const) {
      const p = new URLSearchParams(withParams('t=1', rangeParams(spec)));
      expect(p.has('t')).toBe(false);
      expect(parseRange(p, { kind: 'relative', key: '5m', ms: 300_000 })).toEqual(spec);
    }
  });

  it('centres the view on ?t= (the link an alert carries)', () => {
    expect(parseRange(new URLSearchParams('t=10000000'), fallback)).toEqual({
      kind: 'absolute',
      from: 10_000_000 - H / 2,
      to: 10_000_000 + H / 2,
    });
    expect(parseRange(new URLSearchParams('t=10000000&range=5m'), fallback)).toEqual({
      kind: 'absolute',
      from: 10_000_000 - 150_000,
      to: 10_000_000 + 150_000,
    });
  });

  it('resolves the whole run from the job, with a minute of margin', () => {
    expect(
      resolveRange({ kind: 'run' }, 100 * H, { startMs: 10 * H, endMs: 12 * H, lastSampleMs: 12 * H }),
    ).toEqual({
      start: 10 * H - 60_000,
      end: 12 * H + 60_000,
    });
    expect(
      resolveRange({ kind: 'run' }, 100 * H, { startMs: 99 * H, endMs: null, lastSampleMs: 100 * H }),
    ).toEqual({
      start: 99 * H - 60_000,
      end: 100 * H,
    });
    expect(resolveRange({ kind: 'relative', key: '1h', ms: H }, 5 * H)).toEqual({ start: 4 * H, end: 5 * H });
  });
});

describe('EMA smoothing', () => {
  it('is debiased, keeps NaN gaps visible, and is the identity at weight 0', () => {
    const s = emaSmooth([10, 10, 10, Number.NaN, 10], 0.9);
    expect(s[0]).toBeCloseTo(10);
    expect(s[2]).toBeCloseTo(10);
    expect(Number.isNaN(s[3])).toBe(true);
    expect(s[4]).toBeCloseTo(10);
    expect(emaSmooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const step = emaSmooth([0, 0, 0, 10, 10, 10], 0.5);
    expect(step[3]!).toBeGreaterThan(0);
    expect(step[3]!).toBeLessThan(10);
    expect(step[5]!).toBeGreaterThan(step[4]!);
  });
});

function matrix(start: number, step: number, rows: string[], values: number[][]): Matrix {
  const cols = values[0]!.length;
  const cells = new Uint8Array(rows.length * cols);
  for (let i = 0; i < values.length; i++) for (let c = 0; c < cols; c++) cells[i * cols + c] = values[i]![c]!;
  return {
    metric: 'm',
    by: ['job_id'],
    start,
    step,
    cols,
    lo: 0,
    hi: 1,
    cells,
    rows: rows.map((id) => ({
      labels: { job_id: id },
      series: 1,
      mean: null,
      recentMean: null,
      last: null,
      lastT: null,
      z: null,
    })),
  };
}

describe('heatmap matrices', () => {
  it('decodes the server encoding and reads cell values back', () => {
    const bytes = Uint8Array.from([0, 127, 254, NO_DATA]);
    const r: HeatmapResponse = {
      metric: 'gpu_utilization_ratio',
      by: ['rank'],
      start: 0,
      step: 1000,
      cols: 2,
      lo: 0,
      hi: 1,
      encoding: 'u8-base64',
      values: Buffer.from(bytes).toString('base64'),
      rows: [0, 1].map((i) => ({
        labels: { rank: String(i) },
        series: 1,
        mean: null,
        recentMean: null,
        last: null,
        lastT: null,
        z: null,
      })),
    };
    const m = decodeMatrix(r);
    expect(cellValue(m, 0, 0)).toBe(0);
    expect(cellValue(m, 0, 1)).toBeCloseTo(0.5, 2);
    expect(cellValue(m, 1, 0)).toBe(1);
    expect(cellValue(m, 1, 1)).toBeNull();
    expect(() => decodeMatrix({ ...r, cols: 3 })).toThrow(/2 × 3 cells came with 4 bytes/);
  });

  it('splices a live tail in: the tail wins from its first column, new rows join, old columns slide out', () => {
    const old = matrix(
      0,
      10,
      ['a', 'b'],
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
    );
    const tail = matrix(
      30,
      10,
      ['a', 'c'],
      [
        [40, 50],
        [90, 91],
      ],
    );
    const m = mergeMatrix(old, tail, 10);
    expect(m.start).toBe(10);
    expect(m.cols).toBe(4);
    expect(m.rows.map((r) => r.labels.job_id)).toEqual(['a', 'b', 'c']);
    expect([...m.cells]).toEqual([2, 3, 40, 50, 6, 7, 8, NO_DATA, NO_DATA, NO_DATA, 90, 91]);
    expect(() => mergeMatrix(old, { ...tail, step: 5 }, 0)).toThrow(/step 5 into step 10/);
  });

  it('has a colour for every byte and none for no data', () => {
    const t = colorTable('utilization');
    expect(t[NO_DATA]).toBe(0);
    for (let i = 0; i < 255; i++) expect(t[i]! >>> 24).toBe(255);
    expect(t[0]).not.toBe(t[254]);
  });
});

describe('live merges of curves and spreads', () => {
  const curve = (t: number[], v: number[], step: (number | null)[] | null): Curve => ({
    metric: 'train_loss',
    labels: { __name__: 'train_loss', rank: '0' },
    t,
    v,
    step,
  });
  it('appends only newer points and drops those before the window', () => {
    const m = mergeCurves([curve([1, 2, 3], [10, 9, 8], [0, 1, 2])], [curve([3, 4], [8, 7], [2, 3])], 2);
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ t: [2, 3, 4], v: [9, 8, 7], step: [1, 2, 3] });
    const added = mergeCurves([], [curve([5], [1], null)], 0);
    expect(added[0]!.t).toEqual([5]);
  });

  it('replaces spread columns from the tail on', () => {
    const spread = (start: number, mean: (number | null)[]): SpreadResponse => ({
      metric: 'm',
      start,
      step: 10,
      cols: mean.length,
      series: 2,
      t: mean.map((_, i) => start + i * 10),
      min: mean,
      max: mean,
      mean,
      sum: mean,
      count: mean.map((x) => (x === null ? 0 : 2)),
    });
    const m = mergeSpread(spread(0, [1, 2, 3]), spread(20, [30, 40]), 10);
    expect(m.t).toEqual([10, 20, 30]);
    expect(m.mean).toEqual([2, 30, 40]);
  });

  it('finds the step at a time for step-axis alert markers', () => {
    const c = curve([100, 200, 300], [0, 0, 0], [5, null, 7]);
    expect(stepAtTime(c, 50)).toBeNull();
    expect(stepAtTime(c, 250)).toBe(5);
    expect(stepAtTime(c, 1000)).toBe(7);
  });
});

describe('SSE parsing (fetch-based streams, so a token can go in a header)', () => {
  it('assembles events across chunk boundaries and line endings, skipping comments', () => {
    const events: { event: string; data: string }[] = [];
    const p = new SseParser((e) => events.push({ event: e.event, data: e.data }));
    p.push(': hello\n\nda');
    p.push('ta: {"t":1}\n');
    p.push('\n');
    p.push('event: error\r\ndata: a\r\ndata: b\r');
    p.push('\n\r\n');
    p.push('data: x\r\r'); // the last \r may be half of \r\n: the event waits for the next byte
    expect(events).toHaveLength(2);
    p.push('data: y\n\n');
    expect(events).toEqual([
      { event: 'message', data: '{"t":1}' },
      { event: 'error', data: 'a\nb' },
      { event: 'message', data: 'x' },
      { event: 'message', data: 'y' },
    ]);
  });
});

describe('config diff', () => {
  it('flattens nested configs and marks keys where runs disagree or one lacks the key', () => {
    expect(flattenConfig({ opt: { lr: 1, betas: [0.9, 0.99] }, empty: {} })).toEqual({
      'opt.lr': 1,
      'opt.betas': [0.9, 0.99],
      empty: {},
    });
    const d = diffConfigs([
      { lr: 0.1, layers: 2, opt: { name: 'adam' } },
      { lr: 0.2, layers: 2, opt: { name: 'adam' }, seed: 1 },
    ]);
    expect(d.map((r) => [r.key, r.differs])).toEqual([
      ['layers', false],
      ['lr', true],
      ['opt.name', false],
      ['seed', true],
    ]);
    expect(diffConfigs([{ a: 1 }, { a: '1' }])[0]!.differs).toBe(true);
  });
});

describe('training curves', () => {
  it('groups train/eval splits into charts, loss first, and leaves system metrics out', () => {
    expect(isCurveMetric('gpu_utilization_ratio')).toBe(false);
    expect(isCurveMetric('train_tokens_per_second')).toBe(false);
    expect(isCurveMetric('my_custom_metric')).toBe(true);
    expect(isCurveMetric('job_id:gpu_utilization_ratio:avg')).toBe(false);
    expect(curveStem('eval_accuracy')).toBe('accuracy');
    const groups = groupCurves([
      'eval_accuracy',
      'train_loss',
      'grad_norm_total',
      'eval_loss',
      'train_accuracy',
      'train_learning_rate',
      'gpu_power_watts',
    ]);
    expect(groups.map((g) => [g.title, g.metrics])).toEqual([
      ['Loss', ['train_loss', 'eval_loss']],
      ['Accuracy', ['train_accuracy', 'eval_accuracy']],
      ['Learning rate', ['train_learning_rate']],
      ['Grad norm total', ['grad_norm_total']],
    ]);
  });
});

const alert = (
  labels: Record<string, string>,
  state: Alert['state'],
  at: number,
  resolved: number | null = null,
): Alert => ({
  fingerprint: JSON.stringify(labels),
  labels: { alertname: 'X', ...labels },
  annotations: {},
  state,
  activeAtMs: at,
  firingAtMs: state === 'pending' ? null : at,
  resolvedAtMs: resolved,
  value: 1,
  source: 'detector',
  name: labels.alertname ?? 'X',
  url: '',
});

describe('alert health', () => {
  it('counts active alerts by severity per job and ignores resolved ones', () => {
    const h = healthByJob(
      [
        alert({ job_id: 'a', severity: 'critical' }, 'firing', 1),
        alert({ job_id: 'a', severity: 'warning' }, 'firing', 1),
        alert({ job_id: 'a', severity: 'warning' }, 'pending', 1),
        alert({ job_id: 'b', severity: 'critical' }, 'resolved', 1, 2),
        alert({ job_id: 'c', severity: 'info', tenant: 'other' }, 'firing', 1),
      ],
      'default',
    );
    expect(h.get('default/a')).toMatchObject({ critical: 1, warning: 1, pending: 1, worst: 3 });
    expect(h.has('default/b')).toBe(false);
    expect(h.get('other/c')).toMatchObject({ info: 1, worst: 1 });
  });

  it('paints the worst firing severity over each column an alert covers', () => {
    const cells = healthMatrix(
      [
        alert({ job_id: 'a', severity: 'warning' }, 'resolved', 10, 25),
        alert({ job_id: 'a', severity: 'critical' }, 'firing', 30),
        alert({ job_id: 'b', severity: 'critical' }, 'pending', 0),
      ],
      ['default/a', 'default/b'],
      0,
      10,
      5,
      'default',
    );
    expect([...cells]).toEqual([0, 2, 2, 3, 3, 0, 0, 0, 0, 0]);
  });

  it('makes a silence from an alert: every label but severity, exact matches that select the alert', () => {
    const labels = { alertname: 'Straggler', severity: 'warning', job_id: 'j', rank: '7', tenant: 'default' };
    const m = silenceMatchersFor(labels);
    expect(m.map((x) => x.name)).toEqual(['alertname', 'job_id', 'rank', 'tenant']);
    expect(m.every((x) => x.isEqual && !x.isRegex)).toBe(true);
    expect(matchersMatch(m, labels)).toBe(true);
    expect(matchersMatch(m, { ...labels, rank: '6' })).toBe(false);
    expect(matchersMatch([{ name: 'rank', value: '6|7', isRegex: true, isEqual: true }], labels)).toBe(true);
    expect(matchersMatch([{ name: 'rank', value: '7', isRegex: false, isEqual: false }], labels)).toBe(false);
    expect(alertLocation(labels)).toBe('rank 7');
    expect(alertLocation({ node_id: 'n1', gpu: '3' })).toBe('node n1 · GPU 3');
  });

  it('reads the alerts list of the contract and refuses anything else', () => {
    expect(alertsFromBody({ status: 'success', data: { alerts: [alert({}, 'firing', 1)] } })).toHaveLength(1);
    expect(alertsFromBody({ status: 'success', data: [] })).toEqual([]);
    expect(() => alertsFromBody({ status: 'success', data: { nope: 1 } })).toThrow(
      /without a list of alerts/,
    );
  });
});

function job(id: string, over: Partial<FleetJob> = {}): FleetJob {
  return {
    tenant: 'default',
    jobId: id,
    name: id,
    project: 'p',
    owner: 'ann',
    framework: 'pytorch',
    worldSize: 8,
    config: {},
    tags: [],
    status: 'running',
    startMs: 0,
    endMs: null,
    lastSampleMs: 0,
    metricKeys: {},
    gpus: 8,
    meanGpuUtilization: 0.9,
    step: 1,
    loss: 1,
    samplesPerSecond: null,
    tokensPerSecond: null,
    busyGpus: 8,
    idleGpus: 0,
    ...over,
  };
}

describe('fleet table', () => {
  const jobs = [
    job('a', { owner: 'bob', tags: ['llm'], meanGpuUtilization: 0.5, busyGpus: 6, idleGpus: 2 }),
    job('b', { status: 'failed', loss: 'NaN', meanGpuUtilization: null }),
    job('c', { tokensPerSecond: 100 }),
  ];
  const health = healthByJob([alert({ job_id: 'c', severity: 'critical' }, 'firing', 0)], 'default');
  const none = { q: '', status: '', tenant: '', owner: '', tag: '', alerting: false } as const;

  it('filters by search, status, owner, tag and alerting', () => {
    expect(filterJobs(jobs, { ...none, q: 'LLM' }, health).map((j) => j.jobId)).toEqual(['a']);
    expect(filterJobs(jobs, { ...none, status: 'failed' }, health).map((j) => j.jobId)).toEqual(['b']);
    expect(filterJobs(jobs, { ...none, owner: 'ann' }, health).map((j) => j.jobId)).toEqual(['b', 'c']);
    expect(filterJobs(jobs, { ...none, alerting: true }, health).map((j) => j.jobId)).toEqual(['c']);
  });

  it('sorts with missing values last in either direction', () => {
    expect(sortJobs(jobs, 'util', 'desc', health).map((j) => j.jobId)).toEqual(['c', 'a', 'b']);
    expect(sortJobs(jobs, 'util', 'asc', health).map((j) => j.jobId)).toEqual(['a', 'c', 'b']);
    expect(sortJobs(jobs, 'health', 'desc', health)[0]!.jobId).toBe('c');
    expect(sortJobs(jobs, 'loss', 'desc', health)[0]!.jobId).toBe('b');
  });

  it('totals busy, idle and alerting GPUs of running jobs', () => {
    expect(fleetTotals(jobs, health)).toMatchObject({
      running: 2,
      gpus: 16,
      busyGpus: 14,
      idleGpus: 2,
      alertingGpus: 8,
      alertingJobs: 1,
    });
  });
});
