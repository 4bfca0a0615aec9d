/**
 * One shard of the remote-write queue: its bounded ring of samples (typed arrays, no object per sample), the
 * waits for space and for completion, and the completed count behind the queue's watermark (remote-write.ts
 * states the invariants). Separate from the queue, which only routes samples to shards and sends their
 * batches.
 */
import { EMPTY } from './remote-write-series.js';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface AckWaiter {
  readonly target: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class Shard {
  readonly sid: Int32Array;
  readonly t: Float64Array;
  /** Value bits, two 32-bit words per sample (little-endian halves of the float64). */
  readonly vb: Uint32Array;
  /** Encoder scratch per ring slot: the encoded Sample message's length (it depends on the timestamp). */
  readonly sampleLens: Uint8Array;
  /** Ring: samples [head, head + count) modulo capacity, the in-flight request's first. */
  head = 0;
  count = 0;
  /** Samples ever enqueued / completed (acknowledged or dropped); completed never passes enqueued. */
  enqueued = 0;
  completed = 0;
  /** Send without waiting for a full request until `completed` reaches this. */
  flushTarget = 0;
  /** When the oldest unsent sample was enqueued (ms), for the batch deadline. */
  oldestAt = 0;
  body: Uint8Array = EMPTY;
  private wakeLoop: (() => void) | undefined;
  private spaceFree: (() => void) | undefined;
  private readonly ackWaiters: AckWaiter[] = [];

  constructor(
    readonly index: number,
    readonly capacity: number,
    private readonly maxPerSend: number,
  ) {
    this.sid = new Int32Array(capacity);
    this.t = new Float64Array(capacity);
    this.vb = new Uint32Array(capacity * 2);
    this.sampleLens = new Uint8Array(capacity);
  }

  /** Enqueues one sample unless the ring is full. `lo`/`hi` are the value's bits. */
  push(id: number, t: number, lo: number, hi: number, now: number): boolean {
    if (this.count === this.capacity) return false;
    let i = this.head + this.count;
    if (i >= this.capacity) i -= this.capacity;
    this.sid[i] = id;
    this.t[i] = t;
    this.vb[2 * i] = lo;
    this.vb[2 * i + 1] = hi;
    this.count++;
    this.enqueued++;
    if (this.count === 1) {
      this.oldestAt = now;
      this.wake();
    } else if (this.count === this.maxPerSend) this.wake();
    return true;
  }

  wake(): void {
    const w = this.wakeLoop;
    this.wakeLoop = undefined;
    w?.();
  }

  /** The send loop waits here until woken (a sample arrived, a flush, close) or `ms` passed. */
  idle(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, Math.max(0, ms));
      const self = this;
      function done() {
        if (timer !== undefined) clearTimeout(timer);
        if (self.wakeLoop === done) self.wakeLoop = undefined;
        resolve();
      }
      this.wakeLoop = done;
    });
  }

  /** Resolves when the ring has room again (or the signal aborts: then rejects with its reason). */
  space(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.spaceFree = undefined;
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.spaceFree = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
    });
  }

  /** Completes the `n` oldest samples: the ring frees them and waiters up to the new watermark resolve. */
  complete(n: number, pending: Int32Array): void {
    let i = this.head;
    for (let k = 0; k < n; k++) {
      pending[this.sid[i]!]!--;
      if (++i === this.capacity) i = 0;
    }
    this.head = i;
    this.count -= n;
    this.completed += n;
    const free = this.spaceFree;
    this.spaceFree = undefined;
    free?.();
    if (this.ackWaiters.length > 0) {
      let keep = 0;
      for (const w of this.ackWaiters) {
        if (w.target <= this.completed) w.resolve();
        else this.ackWaiters[keep++] = w;
      }
      this.ackWaiters.length = keep;
    }
  }

  whenCompleted(target: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.completed >= target) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.ackWaiters.indexOf(w);
        if (i >= 0) this.ackWaiters.splice(i, 1);
        reject(signal!.reason);
      };
      const w: AckWaiter = {
        target,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.ackWaiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (target > this.flushTarget) this.flushTarget = target;
      this.wake();
    });
  }

  /** Wakes an append waiting for room (the queue closed: it then gives up). */
  releaseSpace(): void {
    const free = this.spaceFree;
    this.spaceFree = undefined;
    free?.();
  }

  failWaiters(err: Error): void {
    for (const w of this.ackWaiters.splice(0)) w.reject(err);
  }
}
