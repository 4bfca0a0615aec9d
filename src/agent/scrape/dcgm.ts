/**
 * NVIDIA dcgm-exporter's metric names mapped onto DESIGN.md's canonical names. The scraper ships every DCGM
 * series under its original name too (so existing DCGM dashboards and queries keep working) and adds the
 * canonical series, converted to base units, with dcgm-exporter's GPU labels renamed to trainwatch's
 * (`UUID` → `gpu_uuid`; `gpu` stays the index).
 *
 * Field meanings and units: NVIDIA/dcgm-exporter etc/default-counters.csv and etc/dcp-metrics-included.csv.
 */

export interface DcgmMapping {
  readonly metric: string;
  /** Multiplies the DCGM value into the canonical unit. */
  readonly scale: number;
  readonly labels?: Readonly<Record<string, string>>;
  /** nvidia-smi reads this too: when the agent reads the same GPUs with nvidia-smi, it does not add it twice. */
  readonly alsoFromNvidiaSmi?: boolean;
  /** A bit mask expanded into one 0/1 series per reason (clock throttle reasons). */
  readonly throttleMask?: boolean;
}

const MIB = 1024 * 1024;

/** DCGM field → canonical metric (a table: its rows look alike by design). */
export const DCGM_MAP: Readonly<Record<string, DcgmMapping>> = {
  DCGM_FI_DEV_GPU_UTIL: { metric: 'gpu_utilization_ratio', scale: 0.01, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_MEM_COPY_UTIL: { metric: 'gpu_memory_utilization_ratio', scale: 0.01, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_ENC_UTIL: { metric: 'gpu_encoder_utilization_ratio', scale: 0.01 },
  DCGM_FI_DEV_DEC_UTIL: { metric: 'gpu_decoder_utilization_ratio', scale: 0.01 },
  DCGM_FI_DEV_FB_USED: { metric: 'gpu_memory_used_bytes', scale: MIB, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_FB_FREE: { metric: 'gpu_memory_free_bytes', scale: MIB },
  DCGM_FI_DEV_FB_TOTAL: { metric: 'gpu_memory_total_bytes', scale: MIB, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_FB_RESERVED: { metric: 'gpu_memory_reserved_bytes', scale: MIB },
  DCGM_FI_DEV_POWER_USAGE: { metric: 'gpu_power_watts', scale: 1, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: { metric: 'gpu_energy_joules_total', scale: 0.001 },
  DCGM_FI_DEV_GPU_TEMP: { metric: 'gpu_temperature_celsius', scale: 1, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_MEMORY_TEMP: { metric: 'gpu_memory_temperature_celsius', scale: 1, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_SM_CLOCK: { metric: 'gpu_sm_clock_hertz', scale: 1e6, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_MEM_CLOCK: { metric: 'gpu_memory_clock_hertz', scale: 1e6, alsoFromNvidiaSmi: true },
  DCGM_FI_DEV_PCIE_REPLAY_COUNTER: { metric: 'gpu_pcie_replays_total', scale: 1 },
  // NVML's PCIe throughput fields count KB in DCGM's default CSV.
  DCGM_FI_DEV_PCIE_TX_THROUGHPUT: { metric: 'gpu_pcie_transmit_bytes_total', scale: 1024 },
  DCGM_FI_DEV_PCIE_RX_THROUGHPUT: { metric: 'gpu_pcie_receive_bytes_total', scale: 1024 },
  DCGM_FI_DEV_XID_ERRORS: { metric: 'gpu_xid_last_error', scale: 1 },
  DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: {
    metric: 'gpu_ecc_errors_total',
    scale: 1,
    labels: { type: 'corrected' },
    alsoFromNvidiaSmi: true,
  },
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: {
    metric: 'gpu_ecc_errors_total',
    scale: 1,
    labels: { type: 'uncorrected' },
    alsoFromNvidiaSmi: true,
  },
  DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS: {
    metric: 'gpu_remapped_rows_total',
    scale: 1,
    labels: { type: 'uncorrectable' },
  },
  DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS: {
    metric: 'gpu_remapped_rows_total',
    scale: 1,
    labels: { type: 'correctable' },
  },
  DCGM_FI_DEV_ROW_REMAP_FAILURE: { metric: 'gpu_row_remap_failed', scale: 1 },
  DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL: { metric: 'gpu_nvlink_bandwidth_total', scale: 1 },
  DCGM_FI_DEV_CLOCK_THROTTLE_REASONS: {
    metric: 'gpu_throttled',
    scale: 1,
    throttleMask: true,
    alsoFromNvidiaSmi: true,
  },
  DCGM_FI_PROF_GR_ENGINE_ACTIVE: { metric: 'gpu_graphics_engine_active_ratio', scale: 1 },
  DCGM_FI_PROF_SM_ACTIVE: { metric: 'gpu_sm_active_ratio', scale: 1 },
  DCGM_FI_PROF_SM_OCCUPANCY: { metric: 'gpu_sm_occupancy_ratio', scale: 1 },
  DCGM_FI_PROF_PIPE_TENSOR_ACTIVE: { metric: 'gpu_tensor_active_ratio', scale: 1 },
  DCGM_FI_PROF_PIPE_FP64_ACTIVE: { metric: 'gpu_fp64_active_ratio', scale: 1 },
  DCGM_FI_PROF_PIPE_FP32_ACTIVE: { metric: 'gpu_fp32_active_ratio', scale: 1 },
  DCGM_FI_PROF_PIPE_FP16_ACTIVE: { metric: 'gpu_fp16_active_ratio', scale: 1 },
  DCGM_FI_PROF_DRAM_ACTIVE: { metric: 'gpu_dram_active_ratio', scale: 1 },
  DCGM_FI_PROF_PCIE_TX_BYTES: { metric: 'gpu_pcie_transmit_bytes_per_second', scale: 1 },
  DCGM_FI_PROF_PCIE_RX_BYTES: { metric: 'gpu_pcie_receive_bytes_per_second', scale: 1 },
  DCGM_FI_PROF_NVLINK_TX_BYTES: { metric: 'gpu_nvlink_transmit_bytes_per_second', scale: 1 },
  DCGM_FI_PROF_NVLINK_RX_BYTES: { metric: 'gpu_nvlink_receive_bytes_per_second', scale: 1 },
};

/**
 * DCGM reports "blank" values (no reading) with sentinels: int32 0x7ffffff0.., int64 0x7ffffffffffffff0..
 * (e.g. 9223372036854775794 for a memory temperature the GPU does not have, as in NVIDIA/dcgm-exporter's
 * README) and fp64 2^47... They give no canonical sample.
 */
export function isDcgmBlank(v: number): boolean {
  return (
    (v >= 2147483632 && v <= 2147483647) ||
    v >= 9223372036854775000 ||
    (v >= 140737488355328 && v <= 140737488355336)
  );
}

/**
 * The canonical labels for a DCGM series: `gpu` (index) and `gpu_uuid` from `UUID`; Kubernetes `pod`,
 * `namespace`, `container` when dcgm-exporter attributed the GPU to a pod (non-empty). Device details
 * (`device`, `modelName`, `pci_bus_id`, `Hostname`, driver version) stay on the original series only.
 */
export function dcgmGpuLabels(labels: readonly (readonly [string, string])[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of labels) {
    if (k === 'gpu') out.gpu = v;
    else if (k === 'UUID' || k === 'uuid') out.gpu_uuid = v;
    else if ((k === 'pod' || k === 'namespace' || k === 'container') && v !== '') out[k] = v;
    else if (k === 'GPU_I_ID' || k === 'GPU_I_PROFILE')
      out[k === 'GPU_I_ID' ? 'mig_instance' : 'mig_profile'] = v;
  }
  return out;
}
