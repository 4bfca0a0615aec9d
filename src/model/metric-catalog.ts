/**
 * What trainwatch's canonical metrics are (DESIGN.md, "Data model"): type, help and unit as a Prometheus
 * exposition's `# TYPE`, `# HELP` and `# UNIT` lines would declare them. `/api/v1/metadata` answers from here
 * for metrics whose sender declared nothing (the agent and the SDK send no metadata), and from what senders
 * declared (remote-write 1.0 and 2.0 metadata, OTLP description/unit) otherwise.
 *
 * Shared by the agent, the simulator and the query stage, so the names here are the ones they emit.
 */

import { unitOfSuffix } from './metric-units.js';

/**
 * Prometheus's metric types, as `/api/v1/metadata` spells them (model/textparse: MetricType). Twin:
 * collector/declared-metadata.ts:REMOTE_WRITE_TYPES, the same names in remote-write's wire-enum order.
 */
export const METRIC_TYPES = [
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'summary',
  'info',
  'stateset',
  'unknown',
] as const;
export type MetricType = (typeof METRIC_TYPES)[number];

/** One metric's metadata, as an entry of `/api/v1/metadata`'s answer. */
export interface MetricMetadata {
  readonly type: MetricType;
  readonly help: string;
  /** The base unit without the metric name's suffix conventions (`bytes`, `seconds`, `ratio`…), or ''. */
  readonly unit: string;
}

/** One entry a sender declared: metric name, type, help, unit (compact: it crosses threads). */
export type DeclaredMetadata = readonly [metric: string, type: MetricType, help: string, unit: string];

/** The `job` label of the `up` series each agent (and each simulated node) records about itself. */
export const AGENT_UP_JOB = 'trainwatch_agent';

const gauge = (help: string, unit = ''): MetricMetadata => ({ type: 'gauge', help, unit });
const counter = (help: string, unit = ''): MetricMetadata => ({ type: 'counter', help, unit });

/** Canonical metrics by name (a table: its rows look alike by design). */
export const METRIC_CATALOG: ReadonlyMap<string, MetricMetadata> = new Map<string, MetricMetadata>([
  [
    'up',
    gauge('1 while the target (a scrape target, or the agent itself: job "trainwatch_agent") is collected.'),
  ],
  // GPUs (agent: nvidia-smi; importers map DCGM names onto these).
  ['gpu_utilization_ratio', gauge('Fraction of time one or more kernels ran on the GPU.', 'ratio')],
  ['gpu_memory_used_bytes', gauge('GPU memory in use.', 'bytes')],
  ['gpu_memory_total_bytes', gauge('GPU memory installed.', 'bytes')],
  ['gpu_memory_utilization_ratio', gauge('Fraction of time GPU memory was read or written.', 'ratio')],
  ['gpu_process_memory_used_bytes', gauge('GPU memory one process uses.', 'bytes')],
  ['gpu_power_watts', gauge('GPU power draw.', 'watts')],
  ['gpu_power_limit_watts', gauge('GPU power limit.', 'watts')],
  ['gpu_temperature_celsius', gauge('GPU core temperature.', 'celsius')],
  ['gpu_memory_temperature_celsius', gauge('GPU memory (HBM) temperature.', 'celsius')],
  ['gpu_sm_clock_hertz', gauge('GPU streaming-multiprocessor clock.', 'hertz')],
  ['gpu_sm_clock_max_hertz', gauge('Highest SM clock the GPU supports.', 'hertz')],
  ['gpu_memory_clock_hertz', gauge('GPU memory clock.', 'hertz')],
  ['gpu_fan_speed_ratio', gauge('GPU fan speed as a fraction of its maximum.', 'ratio')],
  ['gpu_ecc_errors_total', counter('GPU ECC memory errors, by type (correctable, uncorrectable).')],
  ['gpu_remapped_rows_total', counter('GPU memory rows remapped after errors.')],
  ['gpu_throttled', gauge('1 while the GPU clock is held down for the reason in the `reason` label.')],
  ['gpu_idle', gauge('1 while the GPU is allocated to a job but runs nothing.')],
  ['gpu_up', gauge('1 while the agent reads this GPU.')],
  ['gpu_info', gauge('Constant 1 with the GPU model, driver and UUID as labels.')],
  // Hosts (agent: /proc, /sys).
  ['host_cpu_utilization_ratio', gauge('Fraction of CPU time the host spent busy.', 'ratio')],
  ['host_memory_used_bytes', gauge('Host memory in use.', 'bytes')],
  ['host_memory_total_bytes', gauge('Host memory installed.', 'bytes')],
  ['host_memory_available_bytes', gauge('Host memory available for new work.', 'bytes')],
  ['host_swap_used_bytes', gauge('Swap space in use.', 'bytes')],
  ['host_network_receive_bytes_total', counter('Bytes received by a network device.', 'bytes')],
  ['host_network_transmit_bytes_total', counter('Bytes sent by a network device.', 'bytes')],
  ['host_network_receive_packets_total', counter('Packets received by a network device.')],
  ['host_network_transmit_packets_total', counter('Packets sent by a network device.')],
  ['host_network_receive_errors_total', counter('Receive errors of a network device.')],
  ['host_network_transmit_errors_total', counter('Transmit errors of a network device.')],
  ['host_network_receive_drops_total', counter('Received packets a network device dropped.')],
  ['host_network_transmit_drops_total', counter('Outgoing packets a network device dropped.')],
  ['host_infiniband_receive_bytes_total', counter('Bytes received by an InfiniBand port.', 'bytes')],
  ['host_infiniband_transmit_bytes_total', counter('Bytes sent by an InfiniBand port.', 'bytes')],
  ['host_disk_read_bytes_total', counter('Bytes read from a block device.', 'bytes')],
  ['host_disk_written_bytes_total', counter('Bytes written to a block device.', 'bytes')],
  ['host_filesystem_size_bytes', gauge('Size of a filesystem.', 'bytes')],
  ['host_filesystem_avail_bytes', gauge('Space available to users on a filesystem.', 'bytes')],
  // Training (SDK, tfevents, simulator).
  ['train_step', gauge('Training step the rank has reached.')],
  ['train_loss', gauge('Training loss the script logged.')],
  ['train_accuracy', gauge('Training accuracy the script logged.', 'ratio')],
  ['train_learning_rate', gauge('Learning rate of the optimizer.')],
  ['train_samples_per_second', gauge('Training throughput in samples per second.')],
  ['train_tokens_per_second', gauge('Training throughput in tokens per second.')],
  ['train_step_duration_seconds', gauge('Wall-clock time of the last training step.', 'seconds')],
  // The agent's own metrics (src/agent/agent.ts, selfValues).
  ['trainwatch_agent_buffer_bytes', gauge('Bytes in the agent disk buffer.', 'bytes')],
  ['trainwatch_agent_buffer_frames', gauge('Frames in the agent disk buffer.')],
  ['trainwatch_agent_buffer_samples', gauge('Samples in the agent disk buffer.')],
  ['trainwatch_agent_dropped_frames_total', counter('Frames the agent dropped, by reason.')],
  ['trainwatch_agent_dropped_samples_total', counter('Samples the agent dropped, by reason.')],
  ['trainwatch_agent_buffered_samples_total', counter('Samples the agent buffered, by source.')],
  ['trainwatch_agent_buffer_errors_total', counter('Batches the agent could not write to its buffer.')],
  ['trainwatch_agent_shipped_frames_total', counter('Frames the collector acknowledged.')],
  ['trainwatch_agent_shipped_samples_total', counter('Samples the collector acknowledged.')],
  ['trainwatch_agent_duplicate_frames_total', counter('Frames the collector had already stored.')],
  ['trainwatch_agent_send_retries_total', counter('Sends the agent retried.')],
  ['trainwatch_agent_collector_up', gauge('1 while the last send to the collector succeeded.')],
  ['trainwatch_agent_requests_total', counter('Requests to the collector, by outcome.')],
  ['trainwatch_agent_gpu_collector_up', gauge('1 while nvidia-smi answers.')],
  ['trainwatch_agent_gpus', gauge('GPUs the agent reads.')],
  ['trainwatch_agent_nvidia_smi_restarts_total', counter('Times nvidia-smi was restarted.')],
  ['trainwatch_agent_nvidia_smi_bad_lines_total', counter('nvidia-smi lines the agent could not read.')],
  ['trainwatch_agent_scrape_failures_total', counter('Failed scrapes, by target.')],
  ['trainwatch_agent_tfevents_files', gauge('TensorBoard event files the agent follows.')],
  ['trainwatch_agent_tfevents_records_total', counter('TensorBoard records the agent read.')],
  ['trainwatch_agent_local_frames_total', counter('Frames the SDK endpoint accepted.')],
  ['trainwatch_agent_local_rejected_total', counter('Frames the SDK endpoint refused.')],
  ['trainwatch_agent_cpu_seconds_total', counter('CPU time the agent used.', 'seconds')],
  ['trainwatch_agent_resident_memory_bytes', gauge('Resident memory of the agent.', 'bytes')],
  ['trainwatch_agent_series', gauge('Series the agent records.')],
  // Synthesized per scrape target (src/agent/scrape), as Prometheus does.
  ['scrape_duration_seconds', gauge('Duration of the scrape.', 'seconds')],
  ['scrape_samples_scraped', gauge('Samples the target exposed.')],
]);

/**
 * The catalog's metadata for `name`: the entry of a canonical metric; else, by convention, a counter for
 * `*_total` and a gauge for a value the training script logged (`train_*`), each with the unit its name's
 * suffix says; undefined for any other name.
 */
export function catalogMetadata(name: string): MetricMetadata | undefined {
  const known = METRIC_CATALOG.get(name);
  if (known) return known;
  if (name.endsWith('_total')) {
    const base = name.slice(0, -'_total'.length);
    return counter('', unitOfName(base));
  }
  if (name.startsWith('train_')) return gauge('Value the training script logged.', unitOfName(name));
  return undefined;
}

/** The unit `name`'s suffix says (metric-units.ts, shared with the dashboard), or '' (Prometheus's "no unit"). */
function unitOfName(name: string): string {
  return unitOfSuffix(name) ?? '';
}
