export { type CollectorOptions, registerCollector } from './collector.js';
export {
  type DeclaredMetadata,
  DeclaredMetadataMemory,
  MAX_DECLARED_METRICS_PER_TENANT,
} from './declared-metadata.js';
export { IdempotencyWindow } from './idempotency.js';
export type { CollectorDeps, DeclaredMetadataSink, IngestLimits } from './ingest-context.js';
export { type IngestEngine, LocalIngest } from './ingest-decoder.js';
export { IngestWorkers, workerOfTenant } from './ingest-workers.js';
export { type CollectorMetrics, createCollectorMetrics } from './metrics.js';
export { type IngestSummary, type NativeIngestDeps, registerNativeIngest } from './native-route.js';
export { SnappyDecoder, SnappyError, snappyEncode } from './snappy.js';
export { TenantLimits, type TenantLimitsConfig } from './tenant-limits.js';
export { type BatchOrigin, BusWriter } from './to-bus.js';
export { type SeriesLimits, validateBatch } from './validate.js';
