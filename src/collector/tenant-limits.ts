/**
 * Per-tenant ingest state shared by every protocol: the tenant's series registry (active-series limit) and
 * its samples-per-second token bucket. One tenant at its limits is refused; every other tenant is not.
 */
import { Errors, twError } from '../model/errors.js';
import { type RegistryLimits, SeriesRegistry } from './series-registry.js';

export interface TenantLimitsConfig extends RegistryLimits {
  /** Sustained samples per second per tenant. */
  readonly samplesPerSecond: number;
  /** Samples a tenant may send at once above the sustained rate. */
  readonly samplesBurst: number;
}

/**
 * A token bucket of samples. A request takes all its samples at once; it passes when the bucket holds them
 * (or is full: a request larger than the burst is not refused forever, it leaves the bucket in debt).
 */
export class TokenBucket {
  private tokens: number;
  private updatedMs: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.updatedMs = nowMs;
  }

  /** Takes `n` tokens and returns 0, or takes nothing and returns the seconds until `n` would pass. */
  take(n: number, nowMs: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.updatedMs) / 1000) * this.rate);
    this.updatedMs = nowMs;
    const need = Math.min(n, this.burst);
    if (this.tokens >= need) {
      this.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil((need - this.tokens) / this.rate));
  }
}

export interface TenantState {
  readonly registry: SeriesRegistry;
  readonly bucket: TokenBucket;
}

export class TenantLimits {
  private readonly tenants = new Map<string, TenantState>();

  constructor(readonly config: TenantLimitsConfig) {}

  get(tenant: string, nowMs = Date.now()): TenantState {
    let state = this.tenants.get(tenant);
    if (!state) {
      state = {
        registry: new SeriesRegistry(tenant, this.config, nowMs),
        bucket: new TokenBucket(this.config.samplesPerSecond, this.config.samplesBurst, nowMs),
      };
      this.tenants.set(tenant, state);
    }
    return state;
  }

  /** Active series per tenant, for self-metrics. */
  activeSeries(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [tenant, s] of this.tenants) out.set(tenant, s.registry.live);
    return out;
  }

  /** Charges `samples` to the tenant's rate limit; throws 429 with Retry-After when over it. */
  chargeSamples(
    state: TenantState,
    tenant: string,
    samples: number,
    firstSeries: string,
    nowMs: number,
  ): void {
    const wait = state.bucket.take(samples, nowMs);
    if (wait > 0) {
      throw twError(
        Errors.tooManyRequests,
        `limit limits.samples_per_second exceeded: tenant ${tenant} may send ${this.config.samplesPerSecond} samples/s ` +
          `(burst ${this.config.samplesBurst}); this request has ${samples} samples (first series: ${firstSeries}); retry in ${wait} s`,
        wait,
      );
    }
  }
}
