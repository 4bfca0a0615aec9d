/**
 * Tenant scoping for PromQL. A tenant's queries see its series without the `tenant` label: the label is the
 * isolation boundary, not data, and hiding it keeps every query and result identical to what Prometheus gives
 * for the same data (`sum by (job)`, `count without (instance)`, label lists in Grafana). A matcher on
 * `tenant` is checked against the caller's tenant (`{tenant="mine"}` matches everything, any other value
 * nothing) and never reaches storage. Admin queriers (tenant null) see every tenant and keep the label.
 */
import { type LabelMatcher, type LabelSet, WellKnownLabel } from '../../model/labels.js';
import {
  type AggregateArrays,
  type Querier,
  type SampleArrays,
  type SelectedSeries,
  type SelectHints,
  type SeriesSet,
  type Storage,
  seriesSet,
} from '../../storage/index.js';
import type { Queryable } from './engine.js';

const TENANT = WellKnownLabel.tenant;

function stripTenant(labels: LabelSet): LabelSet {
  if (!(TENANT in labels)) return labels;
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels)) if (k !== TENANT) out[k] = labels[k]!;
  return out;
}

/** Splits off matchers on `tenant`; undefined when one of them rejects the caller's tenant. */
function scopeMatchers(tenant: string, matchers: readonly LabelMatcher[]): LabelMatcher[] | undefined {
  const rest: LabelMatcher[] = [];
  for (const m of matchers) {
    if (m.name === TENANT) {
      if (!m.matches(tenant)) return undefined;
      continue;
    }
    rest.push(m);
  }
  return rest;
}

/** A querier that hides the `tenant` label of a tenant-scoped querier. */
export function hideTenantLabel(inner: Querier, tenant: string): Querier {
  return {
    async select(
      matchers: readonly LabelMatcher[],
      hints?: SelectHints,
      signal?: AbortSignal,
    ): Promise<SeriesSet> {
      const scoped = scopeMatchers(tenant, matchers);
      if (!scoped) return seriesSet([]);
      const set = await inner.select(scoped, hints, signal);
      const series = set.series.map((s) => {
        const out: SelectedSeries = {
          labels: stripTenant(s.labels),
          iterator: () => s.iterator(),
          // A rollup answer keeps its resolution and aggregates (see SelectHints.stepMs).
          ...(s.resolutionMs !== undefined ? { resolutionMs: s.resolutionMs } : {}),
          ...(s.aggregates ? { aggregates: () => s.aggregates!() } : {}),
          // Bulk reads pass through: the engine reads raw series with them (no iterator per series).
          ...(s.readSamples ? { readSamples: (into: SampleArrays) => s.readSamples!(into) } : {}),
          ...(s.readAggregates ? { readAggregates: (into: AggregateArrays) => s.readAggregates!(into) } : {}),
        };
        return out;
      });
      return { ...set, series };
    },
    async labelNames(matchers?: readonly LabelMatcher[], signal?: AbortSignal): Promise<string[]> {
      const scoped = scopeMatchers(tenant, matchers ?? []);
      if (!scoped) return [];
      return (await inner.labelNames(scoped, signal)).filter((n) => n !== TENANT);
    },
    async labelValues(
      name: string,
      matchers?: readonly LabelMatcher[],
      signal?: AbortSignal,
    ): Promise<string[]> {
      if (name === TENANT) return [];
      const scoped = scopeMatchers(tenant, matchers ?? []);
      if (!scoped) return [];
      return inner.labelValues(name, scoped, signal);
    },
  };
}

/**
 * What the engine queries for one tenant of a storage (or every tenant when `tenant` is null, for admins).
 * Tenant-scoped queries see no `tenant` label (see the file comment).
 */
export function tenantQueryable(storage: Pick<Storage, 'querier'>, tenant: string | null): Queryable {
  return {
    querier(minT: number, maxT: number): Querier {
      const q = storage.querier(tenant, minT, maxT);
      return tenant === null ? q : hideTenantLabel(q, tenant);
    },
  };
}
