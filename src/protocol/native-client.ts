/**
 * Sends native frames to a collector the way every trainwatch sender must: one idempotency key per batch
 * (source id + increasing sequence), retries of the *same* frame with exponential backoff and full jitter,
 * `Retry-After` honoured on 429/503, and no retry of a 4xx that says the batch itself is wrong.
 */
import type { SeriesBatch } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import { type CompressionName, NATIVE_CONTENT_TYPE, NativeEncoder } from './native.js';

export interface NativeClientOptions {
  /** Base URL of the collector, e.g. http://127.0.0.1:9470 */
  readonly url: string;
  readonly token?: string | undefined;
  readonly sourceId: string;
  /** First sequence number; a sender that restarts should continue from a persisted value or a fresh source id. */
  readonly firstSequence?: number;
  readonly compression?: CompressionName;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Give up on a frame after this long (the caller decides what to do with it). */
  readonly giveUpAfterMs?: number;
  readonly requestTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export type SendOutcome =
  | { readonly ok: true; readonly status: number; readonly attempts: number; readonly duplicate: boolean }
  | {
      readonly ok: false;
      readonly status: number;
      readonly attempts: number;
      readonly error: string;
      readonly retryable: boolean;
    };

export class NativeClient {
  private readonly encoder = new NativeEncoder();
  private sequence: number;

  constructor(private readonly opts: NativeClientOptions) {
    this.sequence = opts.firstSequence ?? 0;
  }

  /** Encodes a batch with the next sequence number and sends it until it is accepted, refused, or time runs out. */
  async send(batch: SeriesBatch, events: readonly JobEvent[] = []): Promise<SendOutcome> {
    const frame = this.encoder.encodeFrame(
      { sourceId: this.opts.sourceId, sequence: this.sequence++, batch, events },
      this.opts.compression ?? 'zlib',
    );
    return sendFrame(this.opts, frame);
  }
}

/** Sends one already-encoded frame with retries. Never throws. */
export async function sendFrame(opts: NativeClientOptions, frame: Uint8Array): Promise<SendOutcome> {
  const base = opts.baseDelayMs ?? 200;
  const max = opts.maxDelayMs ?? 30_000;
  const deadline = Date.now() + (opts.giveUpAfterMs ?? 10 * 60_000);
  const headers: Record<string, string> = { 'content-type': NATIVE_CONTENT_TYPE };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const endpoint = `${opts.url.replace(/\/$/, '')}/api/v1/ingest`;
  let attempt = 0;
  for (;;) {
    attempt++;
    let status = 0;
    let error = '';
    let retryAfterMs: number | undefined;
    try {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers,
        body: frame,
        signal: opts.signal
          ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.requestTimeoutMs ?? 30_000)])
          : AbortSignal.timeout(opts.requestTimeoutMs ?? 30_000),
      });
      status = res.status;
      const text = await res.text();
      if (res.ok) {
        let duplicate = false;
        try {
          duplicate = Boolean((JSON.parse(text) as { data?: { duplicate?: boolean } }).data?.duplicate);
        } catch {
          // A 2xx without our JSON body still means stored.
        }
        return { ok: true, status, attempts: attempt, duplicate };
      }
      error = text.slice(0, 500);
      const ra = res.headers.get('retry-after');
      if (ra !== null) retryAfterMs = parseRetryAfter(ra);
      const retryable = status === 429 || status >= 500;
      if (!retryable) return { ok: false, status, attempts: attempt, error, retryable: false };
    } catch (err) {
      error = (err as Error).message;
      if (opts.signal?.aborted)
        return { ok: false, status: 0, attempts: attempt, error: 'aborted', retryable: true };
    }
    // Full jitter: a random delay in [0, min(max, base * 2^attempt)], but never shorter than Retry-After.
    const backoff = Math.random() * Math.min(max, base * 2 ** Math.min(attempt, 20));
    const delay = Math.max(backoff, retryAfterMs ?? 0);
    if (Date.now() + delay > deadline)
      return { ok: false, status, attempts: attempt, error, retryable: true };
    await sleepUnlessAborted(delay, opts.signal);
    if (opts.signal?.aborted)
      return { ok: false, status, attempts: attempt, error: 'aborted', retryable: true };
  }
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string): number | undefined {
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Waits `ms`, or less when `signal` aborts; resolves either way. The abort listener is removed when the time
 * is up: a long-lived signal (the simulator's, for as long as the demo runs) must not collect one per wait.
 */
export function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
