/**
 * Issue 17 items 9 and 10, the pure parts: one tick generator for every time chart of a page, heatmap
 * colours fitted to the data (robust range, not zero to the total), and units of metrics and queries from
 * metadata and name suffixes.
 */
import { describe, expect, it } from 'vitest';
import { dataExtent, rangeColorTable, robustRange, scalePosition } from '../../src/ui/lib/color-scale.js';
import { colorTable } from '../../src/ui/lib/colors.js';
import { NO_DATA } from '../../src/ui/lib/matrix.js';
import { MIN_TICK_SPACING_PX, timeTicks } from '../../src/ui/lib/time-axis.js';
import {
  type BaseUnit,
  formatWithUnit,
  type MetricMetadata,
  metricsOfQuery,
  rangeFormatter,
  type Unit,
  unitFromName,
  unitOfMetric,
  unitOfQuery,
} from '../../src/ui/lib/units.js';

const GiB = 2 ** 30;
const unit = (base: BaseUnit, perSecond = false): Unit => ({ base, perSecond, source: 'name' });

/** A matrix as the server scales GPU memory: bytes from zero to the largest value. */
function memoryMatrix(rowsGiB: readonly number[], cols: number) {
  const hi = Math.max(...rowsGiB) * GiB;
  const cells = new Uint8Array(rowsGiB.length * cols);
  rowsGiB.forEach((g, r) => {
    for (let c = 0; c < cols; c++) cells[r * cols + c] = Math.round(((g * GiB) / hi) * 254);
  });
  return { cells, lo: 0, hi };
}

describe('heatmap colour range', () => {
  it('spreads ranks of 72 to 74 GiB over the colour scale, where zero-to-max paints them alike', () => {
    const m = memoryMatrix([72, 72.5, 73, 73.5, 74, 74, 73, 72], 50);
    const range = robustRange(m)!;
    expect(range.lo).toBeGreaterThan(71.5 * GiB);
    expect(range.hi).toBeLessThanOrEqual(74.2 * GiB);
    const lut = rangeColorTable('viridis', m, range);
    const colours = new Set(Array.from(m.cells, (b) => lut[b]));
    expect(colours.size).toBeGreaterThanOrEqual(5);
    // The old table (bytes straight through) spent the top twentieth of its colours on all of them.
    const old = colorTable('viridis');
    const first = Math.min(...m.cells);
    expect(first).toBeGreaterThan(240);
    expect(lut[first]).toBe(old[0]);
    expect(lut[Math.max(...m.cells)]).toBe(old[254]);
  });

  it('keeps one outlier cell from flattening the rest (2nd–98th percentile)', () => {
    const cols = 100;
    const cells = new Uint8Array(cols);
    for (let c = 0; c < cols; c++) cells[c] = 100 + (c % 20);
    cells[7] = 254; // one spike
    cells[8] = 0;
    const r = robustRange({ cells, lo: 0, hi: 254 })!;
    expect(r.lo).toBeGreaterThanOrEqual(100);
    expect(r.hi).toBeLessThanOrEqual(119);
  });

  it('ignores no-data cells, answers null without data, and paints constant data one colour', () => {
    expect(robustRange({ cells: new Uint8Array(10).fill(NO_DATA), lo: 0, hi: 1 })).toBeNull();
    const flat = { cells: new Uint8Array([NO_DATA, 50, 50, NO_DATA]), lo: 0, hi: 254 };
    const r = robustRange(flat)!;
    expect(r).toEqual({ lo: 50, hi: 50 });
    expect(scalePosition(50, r)).toBe(0.5);
    expect(rangeColorTable('viridis', flat, r)[NO_DATA]).toBe(0);
    expect(dataExtent(flat)).toEqual({ lo: 50, hi: 50, levels: 0 });
  });

  it('clamps values outside the range to its ends', () => {
    expect(scalePosition(-5, { lo: 0, hi: 10 })).toBe(0);
    expect(scalePosition(15, { lo: 0, hi: 10 })).toBe(1);
    expect(scalePosition(2.5, { lo: 0, hi: 10 })).toBe(0.25);
  });
});

describe('one time axis', () => {
  it('puts ticks on whole local minutes at least MIN_TICK_SPACING_PX apart, the same for the same input', () => {
    const start = Date.UTC(2026, 11, 7, 11, 3, 17);
    const end = start + 24 * 60_000;
    const a = timeTicks(start, end, 1200);
    expect(a).toEqual(timeTicks(start, end, 1200));
    expect(a.t.length).toBeGreaterThanOrEqual(4);
    for (const t of a.t) {
      expect(t).toBeGreaterThanOrEqual(start);
      expect(t).toBeLessThanOrEqual(end);
      expect(new Date(t).getSeconds()).toBe(0);
    }
    expect((a.step / (end - start)) * 1200).toBeGreaterThanOrEqual(MIN_TICK_SPACING_PX);
    expect(a.labels[0]).toMatch(/^\d\d:\d\d$/);
  });

  it('labels seconds when ticks are seconds apart, and dates when days apart', () => {
    const t0 = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(timeTicks(t0, t0 + 60_000, 1000).labels[0]).toMatch(/^\d\d:\d\d:\d\d$/);
    expect(timeTicks(t0, t0 + 30 * 86_400_000, 800).labels[0]).toMatch(/^[A-Z][a-z]{2} \d+$/);
    expect(timeTicks(t0, t0, 800).t).toEqual([]);
  });
});

describe('units', () => {
  it('reads units from name suffixes, counters included', () => {
    expect(unitFromName('gpu_memory_used_bytes')).toBe('bytes');
    expect(unitFromName('train_step_duration_seconds')).toBe('seconds');
    expect(unitFromName('gpu_utilization_ratio')).toBe('ratio');
    expect(unitFromName('gpu_temperature_celsius')).toBe('celsius');
    expect(unitFromName('gpu_power_watts')).toBe('watts');
    expect(unitFromName('gpu_sm_clock_hertz')).toBe('hertz');
    expect(unitFromName('host_network_receive_bytes_total')).toBe('bytes');
    expect(unitFromName('http_requests_total')).toBe('count');
    expect(unitFromName('train_loss')).toBeNull();
  });

  it('prefers metadata’s unit, and falls back on the name for unknown or empty ones', () => {
    const meta: MetricMetadata = {
      tokens_in_flight: [{ type: 'gauge', help: 'x', unit: 'bytes' }],
      gpu_power_watts: [{ type: 'unknown', help: '', unit: '' }],
      otel_duration: [{ type: 'histogram', help: '', unit: 's' }],
      weird_celsius: [{ type: 'gauge', help: '', unit: 'unknown' }],
    };
    expect(unitOfMetric('tokens_in_flight', meta)).toEqual({
      base: 'bytes',
      perSecond: false,
      source: 'metadata',
    });
    expect(unitOfMetric('gpu_power_watts', meta)).toEqual({
      base: 'watts',
      perSecond: false,
      source: 'name',
    });
    expect(unitOfMetric('otel_duration', meta)?.base).toBe('seconds');
    expect(unitOfMetric('weird_celsius', meta)?.source).toBe('name');
    expect(unitOfMetric('train_loss', {})).toBeNull();
  });

  it('finds the metrics of a query, and its unit: per second under rate, none when mixed', () => {
    expect(
      metricsOfQuery('sum by (job_id) (rate(host_network_receive_bytes_total{job_id="a"}[5m]))'),
    ).toEqual(['host_network_receive_bytes_total']);
    expect(unitOfQuery('sum by (job_id) (rate(host_network_receive_bytes_total[5m]))')).toEqual({
      base: 'bytes',
      perSecond: true,
      source: 'name',
    });
    expect(unitOfQuery('avg by (job_id) (gpu_utilization_ratio)')?.base).toBe('ratio');
    expect(unitOfQuery('gpu_power_watts / gpu_memory_used_bytes')).toBeNull();
    expect(unitOfQuery('count(gpu_power_watts)')).toBeNull();
    expect(unitOfQuery('up')).toBeNull();
  });

  it('formats values with their units', () => {
    expect(formatWithUnit(73.5 * GiB, unit('bytes'))).toBe('73.5 GiB');
    expect(formatWithUnit(0.452, unit('ratio'))).toBe('45.2%');
    expect(formatWithUnit(0.0123, unit('seconds'))).toBe('12.3 ms');
    expect(formatWithUnit(1.98e9, unit('hertz'))).toBe('1.98 GHz');
    expect(formatWithUnit(350, unit('watts'))).toBe('350 W');
    expect(formatWithUnit(71, unit('celsius'))).toBe('71 °C');
    expect(formatWithUnit(2048, unit('bytes', true))).toBe('2 KiB/s');
    expect(formatWithUnit(1234, null)).toBe('1.23k');
    // Range ends are told apart: 71.98 and 72.03 GiB are not both "72 GiB".
    const f = rangeFormatter(71.98 * GiB, 72.03 * GiB, unit('bytes'));
    expect(f(71.98 * GiB)).not.toBe(f(72.03 * GiB));
    expect(f(71.98 * GiB)).toBe('71.98 GiB');
  });
});
