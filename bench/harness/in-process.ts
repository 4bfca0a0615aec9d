/**
 * What the in-process storage and ingest micro-benchmarks (storage-append, storage-large, storage-memory,
 * processor-path, ingest-decode) share: the per-GPU metric names of their synthetic fleet, and a TSDB opened
 * the way they all measure it (2 h blocks, 1 h out-of-order window, no downsampling, warn-level log).
 */
import pino from 'pino';
import { Tsdb } from '../../src/storage/tsdb.js';

/**
 * The GPU metrics an agent reports per GPU, in the order the benchmarks write them. Not src/simulator/fleet.ts's
 * GPU_METRICS (the agent's full health set): these benchmarks' figures were taken with these seven.
 */
export const GPU_METRICS = [
  'gpu_utilization_ratio',
  'gpu_memory_used_bytes',
  'gpu_memory_total_bytes',
  'gpu_power_watts',
  'gpu_temperature_celsius',
  'gpu_sm_clock_hertz',
  'gpu_ecc_errors_total',
] as const;

/** Per GPU: its GPU metrics and the training loss. */
export const GPU_AND_TRAIN_METRICS = [...GPU_METRICS, 'train_loss'] as const;

/** A TSDB in `dir` for a benchmark: `fsync` and the block cache as the benchmark measures them. */
export function openBenchTsdb(dir: string, opts: { fsync: boolean; blockCacheBytes: number }): Promise<Tsdb> {
  return Tsdb.open({
    dir,
    blockDurationMs: 2 * 3_600_000,
    outOfOrderWindowMs: 3_600_000,
    retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
    fsync: opts.fsync,
    blockCacheBytes: opts.blockCacheBytes,
    logger: pino({ level: 'warn' }),
  });
}
