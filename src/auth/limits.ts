/**
 * Rate limits of the access layer, in memory per process:
 * - `TokenRateLimiter`: a token's own `rateLimitPerSecond` (a bucket of one second's requests), 429 with
 *   Retry-After beyond it.
 * - `LoginLimiter`: failed logins per user name and client address, and per client address, within a window;
 *   beyond them 429 before any password is checked (argon2 costs CPU: the limit also bounds that).
 */
import { Errors, type TrainwatchError, twError } from '../model/errors.js';

export class TokenRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  /** Takes one request from `id`'s bucket; throws 429 (Retry-After) when it is empty. */
  take(id: string, perSecond: number, nowMs: number): void {
    const capacity = Math.max(1, perSecond);
    const b = this.buckets.get(id) ?? { tokens: capacity, atMs: nowMs };
    b.tokens = Math.min(capacity, b.tokens + ((nowMs - b.atMs) / 1000) * perSecond);
    b.atMs = nowMs;
    if (b.tokens < 1) {
      this.buckets.set(id, b);
      const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
      throw twError(
        Errors.tooManyRequests,
        `token ${id} is over its rate limit of ${perSecond} requests per second; retry after ${retryAfter} s`,
        retryAfter,
      );
    }
    b.tokens -= 1;
    this.buckets.set(id, b);
    // Bounded: tokens idle long enough to have a full bucket again need no entry.
    if (this.buckets.size > 100_000) {
      for (const [k, v] of this.buckets) if (nowMs - v.atMs > 60_000) this.buckets.delete(k);
    }
  }
}

export interface LoginLimits {
  /** Failures per user name and client address within the window; the next attempt gets 429. */
  readonly maxFailures: number;
  readonly windowMs: number;
}

/** Per client address, whatever the names tried: this many times the per-name limit. */
const PER_ADDRESS_FACTOR = 10;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly limits: LoginLimits) {}

  /** Throws 429 when `name` from `ip`, or `ip` alone, failed too often within the window. */
  check(name: string, ip: string, nowMs: number): void {
    const refusal =
      this.over(`${name}\u0000${ip}`, this.limits.maxFailures, nowMs) ??
      this.over(`\u0000${ip}`, this.limits.maxFailures * PER_ADDRESS_FACTOR, nowMs);
    if (refusal) throw refusal;
  }

  fail(name: string, ip: string, nowMs: number): void {
    for (const key of [`${name}\u0000${ip}`, `\u0000${ip}`]) {
      const list = this.recent(key, nowMs);
      list.push(nowMs);
      this.failures.set(key, list);
    }
    if (this.failures.size > 100_000) {
      for (const key of [...this.failures.keys()])
        if (this.recent(key, nowMs).length === 0) this.failures.delete(key);
    }
  }

  /** A successful login forgets the name's failures from that address. */
  succeed(name: string, ip: string): void {
    this.failures.delete(`${name}\u0000${ip}`);
  }

  private recent(key: string, nowMs: number): number[] {
    return (this.failures.get(key) ?? []).filter((t) => nowMs - t < this.limits.windowMs);
  }

  private over(key: string, max: number, nowMs: number): TrainwatchError | undefined {
    const list = this.recent(key, nowMs);
    if (list.length < max) return undefined;
    const retryAfter = Math.max(1, Math.ceil((list[0]! + this.limits.windowMs - nowMs) / 1000));
    return twError(
      Errors.tooManyRequests,
      `too many failed logins (auth.login_max_failures: ${max} within auth.login_failure_window); retry after ${retryAfter} s`,
      retryAfter,
    );
  }
}
