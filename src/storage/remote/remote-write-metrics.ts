/**
 * The remote-write queue's self-metrics: counters per queue name, and gauges that read every live queue of a
 * registry at scrape time. Separate from the queue so that its send path reads as the protocol it follows.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

import type { RemoteWriteQueue } from './remote-write.js';

export interface QueueMetrics {
  readonly sent: Counter.Internal;
  readonly retried: Counter.Internal;
  readonly failed: Counter;
  readonly dropped: Counter;
  readonly latency: Histogram.Internal<string>;
}

/** Live queues per registry: the pending-samples and shards gauges read them at scrape time. */
export const liveQueues = new WeakMap<Registry, Set<RemoteWriteQueue>>();

export function metricsFor(registry: Registry, name: string, queue: RemoteWriteQueue): QueueMetrics {
  let queues = liveQueues.get(registry);
  if (!queues) {
    queues = new Set();
    liveQueues.set(registry, queues);
  }
  queues.add(queue);
  const live = queues;
  const get = <T>(metricName: string, make: () => T): T =>
    (registry.getSingleMetric(metricName) as T | undefined) ?? make();
  get(
    'trainwatch_remote_write_samples_pending',
    () =>
      new Gauge({
        name: 'trainwatch_remote_write_samples_pending',
        help: 'Samples enqueued for remote write and not yet acknowledged or dropped (queue depth).',
        labelNames: ['remote_name'],
        registers: [registry],
        collect() {
          for (const q of live) this.set({ remote_name: q.name }, q.pendingSamples());
        },
      }),
  );
  get(
    'trainwatch_remote_write_shards',
    () =>
      new Gauge({
        name: 'trainwatch_remote_write_shards',
        help: 'Shards (concurrent requests) of each remote-write queue.',
        labelNames: ['remote_name'],
        registers: [registry],
        collect() {
          for (const q of live) this.set({ remote_name: q.name }, q.shardCount);
        },
      }),
  );
  const counter = (metricName: string, help: string, labelNames: string[]) =>
    get(metricName, () => new Counter({ name: metricName, help, labelNames, registers: [registry] }));
  const sent = counter(
    'trainwatch_remote_write_samples_sent_total',
    'Samples acknowledged by the remote TSDB.',
    ['remote_name'],
  );
  const retried = counter(
    'trainwatch_remote_write_samples_retried_total',
    'Samples resent after a recoverable failure (network error, 5xx, 429).',
    ['remote_name'],
  );
  const failed = counter(
    'trainwatch_remote_write_samples_failed_total',
    'Samples in requests that failed, by reason (network, http_5xx, http_429, http_4xx); recoverable ones are retried.',
    ['remote_name', 'reason'],
  );
  const dropped = counter(
    'trainwatch_remote_write_samples_dropped_total',
    'Samples given up on, by reason: http_4xx (refused by the TSDB), invalid_timestamp, closed (pending at shutdown).',
    ['remote_name', 'reason'],
  );
  const latency = get(
    'trainwatch_remote_write_send_duration_seconds',
    () =>
      new Histogram({
        name: 'trainwatch_remote_write_send_duration_seconds',
        help: 'Duration of one remote-write request, failed ones included.',
        labelNames: ['remote_name'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
  );
  return {
    sent: sent.labels(name),
    retried: retried.labels(name),
    failed,
    dropped,
    latency: latency.labels(name),
  };
}
