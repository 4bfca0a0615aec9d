/**
 * The node page's pure parts: PromQL built for any node id (quotes and backslashes escaped), range-query
 * matrices turned into chart lines (gaps for NaN, natural order, all-zero throttle reasons left out), the
 * query step, and node links.
 */
import { describe, expect, it } from 'vitest';
import { matrixLines, nodeCharts, nodeHref, nodeStepMs, promString } from '../../src/ui/lib/node.js';

describe('node page queries', () => {
  it('quotes a node id as a PromQL string, whatever it holds', () => {
    expect(promString('gpu-node-07')).toBe('"gpu-node-07"');
    expect(promString('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"');
  });

  it('selects the node in every query and aggregates by GPU, so a GPU of successive jobs is one line', () => {
    const charts = nodeCharts('n"1', 15_000);
    expect(charts.map((c) => c.id)).toEqual([
      'gpu-util',
      'gpu-memory',
      'gpu-temperature',
      'gpu-power',
      'gpu-sm-clock',
      'gpu-xid',
      'gpu-ecc',
      'gpu-throttle',
      'gpu-pcie',
      'gpu-nvlink',
      'host-network',
    ]);
    for (const c of charts) for (const q of c.queries) expect(q.query, c.id).toContain('{node_id="n\\"1"}');
    const util = charts.find((c) => c.id === 'gpu-util')!;
    expect(util.queries[0]!.query).toBe('max by (gpu) (gpu_utilization_ratio{node_id="n\\"1"})');
    expect(charts.find((c) => c.id === 'gpu-ecc')!.queries[0]!.query).toMatch(/^sum by \(gpu, type\)/);
    // Counters become rates over at least a minute, and at least four steps.
    const net = charts.find((c) => c.id === 'host-network')!;
    expect(net.queries[0]!.query).toContain('rate(host_network_receive_bytes_total{node_id="n\\"1"}[60s])');
    expect(nodeCharts('n', 60_000).find((c) => c.id === 'host-network')!.queries[0]!.query).toContain(
      '[240s]',
    );
  });

  it('turns a range-query matrix into lines: ms times, NaN as gaps, natural order, zero throttles left out', () => {
    const lines = matrixLines(
      [
        { metric: { gpu: '10' }, values: [[100, '0.5']] },
        {
          metric: { gpu: '2' },
          values: [
            [100, '0.25'],
            [115, 'NaN'],
            [130, '+Inf'],
          ],
        },
      ],
      { label: (l) => `gpu ${l.gpu}` },
    );
    expect(lines).toEqual([
      { label: 'gpu 2', x: [100_000, 115_000, 130_000], y: [0.25, null, null] },
      { label: 'gpu 10', x: [100_000], y: [0.5] },
    ]);
    const throttle = nodeCharts('n', 1000).find((c) => c.id === 'gpu-throttle')!.queries[0]!;
    const shown = matrixLines(
      [
        { metric: { gpu: '0', reason: 'gpu_idle' }, values: [[1, '0']] },
        {
          metric: { gpu: '0', reason: 'hw_thermal_slowdown' },
          values: [
            [1, '0'],
            [2, '1'],
          ],
        },
      ],
      throttle,
    );
    expect(shown.map((l) => l.label)).toEqual(['gpu 0 hw_thermal_slowdown']);
  });

  it('asks for about one point per pixel column, at least a second apart', () => {
    expect(nodeStepMs(0, 3600_000, 720)).toBe(5000);
    expect(nodeStepMs(0, 60_000, 1200)).toBe(1000);
  });

  it('links to /nodes/<id> with the range kept', () => {
    expect(nodeHref('rack 3/n1', { from: '1', to: '2', range: null })).toBe(
      '/nodes/rack%203%2Fn1?from=1&to=2',
    );
    expect(nodeHref('n1')).toBe('/nodes/n1');
  });
});
