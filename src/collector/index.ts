export { type CollectorOptions, registerCollector } from './collector.js';
export { IdempotencyWindow } from './idempotency.js';
export type { CollectorDeps, IngestLimits } from './ingest-context.js';
export { type CollectorMetrics, createCollectorMetrics } from './metrics.js';
export { type IngestSummary, type NativeIngestDeps, registerNativeIngest } from './native-route.js';
export { SnappyDecoder, SnappyError, snappyEncode } from './snappy.js';
export { TenantLimits, type TenantLimitsConfig } from './tenant-limits.js';
export { type BatchOrigin, BusWriter } from './to-bus.js';
export { type SeriesLimits, validateBatch } from './validate.js';
