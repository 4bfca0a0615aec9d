/**
 * The node page's charts as PromQL: one query (or a receive/transmit pair) per chart, over the node's
 * `node_id`, aggregated `by (gpu)` so that a GPU's series of successive jobs (each carries its job's labels)
 * draw as one line. DOM-free, so unit tests run it in Node.
 */
import type { BaseUnit } from './units.js';

/** One line source of a chart: a query, and how a result series is named in the legend. */
export interface NodeQuery {
  readonly query: string;
  /** Legend label of one result series, from its labels (`gpu 3`, `gpu 3 corrected`, `eth0 receive`). */
  readonly label: (labels: Readonly<Record<string, string>>) => string;
  /** Leave out result series that are zero throughout. */
  readonly dropZero?: boolean;
}

export interface NodeChart {
  readonly id: string;
  readonly title: string;
  readonly section: 'gpus' | 'health';
  /** Base unit of the values, for the axis and the legend. */
  readonly unit: BaseUnit;
  readonly perSecond: boolean;
  readonly queries: readonly NodeQuery[];
  /** The metrics the chart draws: it says "not reported" when the node reported none of them. */
  readonly metrics: readonly string[];
  /** What an empty chart means, e.g. which collector reports it. */
  readonly absent: string;
  /** An empty chart of a metric the node did report (the lines that would be all zero are left out). */
  readonly quiet?: string;
}

/** A PromQL string literal: double-quoted, with backslashes, quotes and newlines escaped. */
export function promString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

const gpuLabel = (l: Readonly<Record<string, string>>) => `gpu ${l.gpu ?? '?'}`;
const withSuffix = (suffix: string) => (l: Readonly<Record<string, string>>) => `${gpuLabel(l)} ${suffix}`;

/**
 * Every chart of a node page, for a node and the page's step. Counters become rates over a window of at least
 * a minute and four steps (so that each window holds several samples at any zoom).
 */
export function nodeCharts(nodeId: string, stepMs: number): NodeChart[] {
  const sel = `{node_id=${promString(nodeId)}}`;
  const window = `${Math.max(60, Math.ceil((4 * stepMs) / 1000))}s`;
  const perGpu = (metric: string, agg = 'max') => `${agg} by (gpu) (${metric}${sel})`;
  const gauge = (
    id: string,
    title: string,
    metric: string,
    unit: BaseUnit,
    section: NodeChart['section'] = 'gpus',
  ): NodeChart => ({
    id,
    title,
    section,
    unit,
    perSecond: false,
    queries: [{ query: perGpu(metric), label: gpuLabel }],
    metrics: [metric],
    absent: 'The agent reads it from nvidia-smi.',
  });
  const pair = (id: string, title: string, rx: string, tx: string, absent: string): NodeChart => ({
    id,
    title,
    section: 'health',
    unit: 'bytes',
    perSecond: true,
    queries: [
      { query: perGpu(rx, 'sum'), label: withSuffix('receive') },
      { query: perGpu(tx, 'sum'), label: withSuffix('transmit') },
    ],
    metrics: [rx, tx],
    absent,
  });
  return [
    gauge('gpu-util', 'GPU utilization', 'gpu_utilization_ratio', 'ratio'),
    gauge('gpu-memory', 'GPU memory used', 'gpu_memory_used_bytes', 'bytes'),
    gauge('gpu-temperature', 'Temperature', 'gpu_temperature_celsius', 'celsius'),
    gauge('gpu-power', 'Power', 'gpu_power_watts', 'watts'),
    gauge('gpu-sm-clock', 'SM clock', 'gpu_sm_clock_hertz', 'hertz'),
    {
      id: 'gpu-xid',
      title: 'XID errors',
      section: 'health',
      unit: 'count',
      perSecond: false,
      queries: [{ query: perGpu('gpu_xid_errors_total', 'sum'), label: gpuLabel }],
      metrics: ['gpu_xid_errors_total'],
      absent: "The agent counts XIDs from the kernel log (NVRM: Xid …), or dcgm-exporter's XID field.",
    },
    {
      id: 'gpu-ecc',
      title: 'ECC errors',
      section: 'health',
      unit: 'count',
      perSecond: false,
      queries: [
        {
          query: `sum by (gpu, type) (gpu_ecc_errors_total${sel})`,
          label: (l) => `${gpuLabel(l)} ${l.type ?? ''}`.trim(),
        },
      ],
      metrics: ['gpu_ecc_errors_total'],
      absent: 'GPUs without ECC memory (or with ECC disabled) report none.',
    },
    {
      id: 'gpu-throttle',
      title: 'Clock throttling',
      section: 'health',
      unit: 'count',
      perSecond: false,
      queries: [
        {
          query: `max by (gpu, reason) (gpu_throttled${sel})`,
          label: (l) => `${gpuLabel(l)} ${l.reason ?? ''}`.trim(),
          // nvidia-smi reports nine reasons per GPU: those never active in the range stay out of the legend.
          dropZero: true,
        },
      ],
      metrics: ['gpu_throttled'],
      absent: 'nvidia-smi reports the active throttle reasons.',
      quiet: 'No GPU of this node was throttled in this range.',
    },
    pair(
      'gpu-pcie',
      'PCIe throughput',
      'gpu_pcie_receive_bytes_per_second',
      'gpu_pcie_transmit_bytes_per_second',
      'The agent reads PCIe throughput with nvidia-smi dmon (or dcgm-exporter).',
    ),
    pair(
      'gpu-nvlink',
      'NVLink throughput',
      'gpu_nvlink_receive_bytes_per_second',
      'gpu_nvlink_transmit_bytes_per_second',
      'NVLink throughput comes from dcgm-exporter (DCGM_FI_PROF_NVLINK_*_BYTES); PCIe-only GPUs have none.',
    ),
    {
      id: 'host-network',
      title: 'Network',
      section: 'health',
      unit: 'bytes',
      perSecond: true,
      queries: [
        {
          query: `sum by (device) (rate(host_network_receive_bytes_total${sel}[${window}]))`,
          label: (l) => `${l.device ? `${l.device} ` : ''}receive`,
        },
        {
          query: `sum by (device) (rate(host_network_transmit_bytes_total${sel}[${window}]))`,
          label: (l) => `${l.device ? `${l.device} ` : ''}transmit`,
        },
        {
          query: `sum by (device) (rate(host_infiniband_receive_bytes_total${sel}[${window}]))`,
          label: (l) => `${l.device ? `${l.device} ` : 'InfiniBand '}receive`,
        },
        {
          query: `sum by (device) (rate(host_infiniband_transmit_bytes_total${sel}[${window}]))`,
          label: (l) => `${l.device ? `${l.device} ` : 'InfiniBand '}transmit`,
        },
      ],
      metrics: [
        'host_network_receive_bytes_total',
        'host_network_transmit_bytes_total',
        'host_infiniband_receive_bytes_total',
        'host_infiniband_transmit_bytes_total',
      ],
      absent: 'The agent reads /proc/net/dev and /sys/class/infiniband.',
    },
  ];
}

/** The step of a node page's queries: about one point per `points` across the range, at least a second. */
export function nodeStepMs(start: number, end: number, points: number): number {
  return Math.max(1000, Math.ceil((end - start) / Math.max(1, points) / 1000) * 1000);
}

export interface LineSeries {
  readonly label: string;
  readonly x: number[];
  readonly y: (number | null)[];
}

/**
 * A range query's matrix as chart lines: times in ms, values as numbers (NaN and infinities as gaps),
 * sorted by label in natural order (gpu 2 before gpu 10).
 */
export function matrixLines(
  result: readonly { metric: Record<string, string>; values: [number, string][] }[],
  q: Pick<NodeQuery, 'label' | 'dropZero'>,
): LineSeries[] {
  return result
    .filter((r) => !q.dropZero || r.values.some(([, v]) => Number(v) !== 0))
    .map((r) => ({
      label: q.label(r.metric),
      x: r.values.map(([t]) => Math.round(t * 1000)),
      y: r.values.map(([, v]) => {
        const n = Number(v);
        return Number.isFinite(n) ? n : null;
      }),
    }))
    .sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true }));
}

/** `/nodes/<id>` with the page's range parameters kept (so a link from a job keeps its window). */
export function nodeHref(
  nodeId: string,
  params?: Readonly<Record<string, string | null | undefined>>,
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v) q.set(k, v);
  const s = q.toString();
  return `/nodes/${encodeURIComponent(nodeId)}${s ? `?${s}` : ''}`;
}
