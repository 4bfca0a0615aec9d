export { IdempotencyWindow } from './idempotency.js';
export { type CollectorMetrics, createCollectorMetrics } from './metrics.js';
export { type IngestSummary, type NativeIngestDeps, registerNativeIngest } from './native-route.js';
export { type BatchOrigin, BusWriter } from './to-bus.js';
export { type SeriesLimits, validateBatch } from './validate.js';
