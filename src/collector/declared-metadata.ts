/**
 * Metric metadata that senders declare (remote-write 1.0 `metadata`, remote-write 2.0 per-series `metadata`,
 * OTLP description/unit/kind), remembered per tenant on the thread that decodes the tenant's requests.
 *
 * Off the hot path: a sender repeats the same metadata in every request (remote-write 2.0 on every series),
 * but only an entry that is new or changed leaves the decoder ({@link DeclaredMetadataMemory.take}), as a few
 * plain tuples with the request's result; the main thread batches those into the metadata store
 * (`MetricMetadataStore.noteDeclared`). So a steady sender costs a map lookup per metric family per request.
 *
 * Memory: at most {@link MAX_DECLARED_METRICS_PER_TENANT} metric names per tenant; later names are ignored
 * (they answer with the catalog's metadata or `unknown`), so a sender inventing names cannot grow it unbounded.
 */
import type { DeclaredMetadata, MetricType } from '../model/metric-catalog.js';

export type { DeclaredMetadata };

export const MAX_DECLARED_METRICS_PER_TENANT = 10_000;
const MAX_NAME_CHARS = 1024;
const MAX_HELP_CHARS = 4096;
const MAX_UNIT_CHARS = 256;

/**
 * Remote-write's MetricType enums (1.0 `MetricMetadata.MetricType`, 2.0 `Metadata.MetricType`): same numbers.
 * Its own list, not derived from METRIC_TYPES (twin: model/metric-catalog.ts): positions here are wire numbers.
 */
const REMOTE_WRITE_TYPES: readonly MetricType[] = [
  'unknown',
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'summary',
  'info',
  'stateset',
];

export function metricTypeOfRemoteWrite(code: number): MetricType {
  return REMOTE_WRITE_TYPES[code] ?? 'unknown';
}

/**
 * Used per request, synchronously: `begin(tenant)`, `note(...)` while decoding, then `take()` once the request
 * was decoded, or `rollback()` when it was refused (its entries are forgotten, so a retry declares them again).
 */
export class DeclaredMetadataMemory {
  /** Per tenant: metric name → `type \0 help \0 unit` as last passed on. */
  private readonly byTenant = new Map<string, Map<string, string>>();
  private current: Map<string, string> | undefined;
  private fresh: DeclaredMetadata[] = [];
  /** Per fresh entry: what the memory held before (undefined: nothing), for `rollback`. */
  private before: (string | undefined)[] = [];

  begin(tenant: string): void {
    this.fresh = [];
    this.before = [];
    let m = this.byTenant.get(tenant);
    if (!m) {
      m = new Map();
      this.byTenant.set(tenant, m);
    }
    this.current = m;
  }

  /** Remembers one declaration; an empty one (no type, help or unit) says nothing and is ignored. */
  note(metric: string, type: MetricType, help: string, unit: string): void {
    const m = this.current;
    if (!m || metric === '' || metric.length > MAX_NAME_CHARS) return;
    if (type === 'unknown' && help === '' && unit === '') return;
    const h = help.length > MAX_HELP_CHARS ? help.slice(0, MAX_HELP_CHARS) : help;
    const u = unit.length > MAX_UNIT_CHARS ? unit.slice(0, MAX_UNIT_CHARS) : unit;
    const key = `${type}\u0000${h}\u0000${u}`;
    const prev = m.get(metric);
    if (prev === key) return;
    if (prev === undefined && m.size >= MAX_DECLARED_METRICS_PER_TENANT) return;
    m.set(metric, key);
    this.fresh.push([metric, type, h, u]);
    this.before.push(prev);
  }

  /** The new or changed entries of this request, or undefined when there are none. */
  take(): DeclaredMetadata[] | undefined {
    const out = this.fresh;
    this.fresh = [];
    this.before = [];
    return out.length > 0 ? out : undefined;
  }

  rollback(): void {
    const m = this.current;
    if (m) {
      for (let i = this.fresh.length - 1; i >= 0; i--) {
        const prev = this.before[i];
        if (prev === undefined) m.delete(this.fresh[i]![0]);
        else m.set(this.fresh[i]![0], prev);
      }
    }
    this.fresh = [];
    this.before = [];
  }
}
