import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Protocols as self-metrics label them. */
export type IngestProtocol = 'native' | 'remote_write' | 'otlp';

/** The collector's self-metrics, shared by every protocol's route (label `protocol`). */
export interface CollectorMetrics {
  readonly samples: Counter<'protocol' | 'tenant'>;
  readonly bytes: Counter<'protocol' | 'tenant'>;
  readonly rejected: Counter<'protocol' | 'reason'>;
  readonly dedupHits: Counter<'protocol'>;
  readonly latency: Histogram<'protocol'>;
  /** Data points received but not stored (native histograms, exemplars), by protocol and kind. */
  readonly notStored: Counter<'protocol' | 'kind'>;
  readonly inflightBytes: Gauge;
  /** Ingest requests being handled (what a collector autoscaler reads). */
  readonly inflightRequests: Gauge;
  readonly activeSeries: Gauge<'tenant'>;
}

export function createCollectorMetrics(registry: Registry): CollectorMetrics {
  return {
    samples: new Counter({
      name: 'trainwatch_ingest_samples_total',
      help: 'Samples accepted (durable in the bus), by protocol and tenant.',
      labelNames: ['protocol', 'tenant'],
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'trainwatch_ingest_bytes_total',
      help: 'Request body bytes accepted, by protocol and tenant.',
      labelNames: ['protocol', 'tenant'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'trainwatch_ingest_rejected_requests_total',
      help: 'Requests refused, by protocol and reason (the limit, or the kind of error).',
      labelNames: ['protocol', 'reason'],
      registers: [registry],
    }),
    dedupHits: new Counter({
      name: 'trainwatch_ingest_dedup_hits_total',
      help: 'Retried batches recognised by their idempotency key and not appended again.',
      labelNames: ['protocol'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'trainwatch_ingest_request_duration_seconds',
      help: 'Time from request received to answer (accepted or refused), by protocol.',
      labelNames: ['protocol'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    notStored: new Counter({
      name: 'trainwatch_ingest_not_stored_total',
      help: 'Data points received but not stored (native histograms, exemplars), by protocol and kind.',
      labelNames: ['protocol', 'kind'],
      registers: [registry],
    }),
    inflightBytes: new Gauge({
      name: 'trainwatch_ingest_inflight_bytes',
      help: 'Request bytes being processed by the collector (bounded by ingest.max_inflight_bytes).',
      registers: [registry],
    }),
    inflightRequests: new Gauge({
      name: 'trainwatch_collector_inflight_requests',
      help: 'Ingest requests being handled (from received to answered): the load a collector autoscaler reads.',
      registers: [registry],
    }),
    activeSeries: new Gauge({
      name: 'trainwatch_ingest_active_series',
      help: 'Series with a sample within limits.active_series_ttl_ms, per tenant, as the collector counts them.',
      labelNames: ['tenant'],
      registers: [registry],
    }),
  };
}
