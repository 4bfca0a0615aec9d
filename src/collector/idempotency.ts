/**
 * Drops retried batches: a sender that did not see our answer resends the same (source id, sequence), and
 * that batch must be stored once. The window remembers the newest `perSource` sequence numbers of each
 * source, in memory. After a collector restart the window is empty; a batch retried across the restart is
 * appended again, and storage's idempotent appends keep it from becoming visible twice.
 */

export interface IdempotentOutcome<R> {
  readonly result: R;
  readonly duplicate: boolean;
}

interface SourceWindow {
  readonly seen: Map<number, unknown>;
}

export class IdempotencyWindow {
  private readonly sources = new Map<string, SourceWindow>();
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly perSource: number,
    private readonly maxSources = 100_000,
  ) {}

  /**
   * Runs `work` unless this key already succeeded (then returns the stored result) or is running right now
   * (then waits for that run). A failed run is forgotten so the sender's retry runs again.
   */
  async run<R>(
    tenant: string,
    sourceId: string,
    sequence: number,
    work: () => Promise<R>,
  ): Promise<IdempotentOutcome<R>> {
    const sourceKey = `${tenant}\u0000${sourceId}`;
    const window = this.sources.get(sourceKey);
    if (window?.seen.has(sequence)) return { result: window.seen.get(sequence) as R, duplicate: true };
    const key = `${sourceKey}\u0000${sequence}`;
    const running = this.inflight.get(key);
    if (running) return { result: (await running) as R, duplicate: true };

    const p = work();
    this.inflight.set(key, p);
    try {
      const result = await p;
      this.remember(sourceKey, sequence, result);
      return { result, duplicate: false };
    } finally {
      this.inflight.delete(key);
    }
  }

  private remember(sourceKey: string, sequence: number, result: unknown): void {
    let window = this.sources.get(sourceKey);
    if (window) {
      // Re-insert to keep the map in least-recently-used order.
      this.sources.delete(sourceKey);
    } else {
      window = { seen: new Map() };
      if (this.sources.size >= this.maxSources) this.sources.delete(this.sources.keys().next().value!);
    }
    this.sources.set(sourceKey, window);
    window.seen.set(sequence, result);
    if (window.seen.size > this.perSource) window.seen.delete(window.seen.keys().next().value!);
  }
}
