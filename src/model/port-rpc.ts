/**
 * Calls between threads over one `MessagePort` (or a `Worker` and its `parentPort`), shaped like calls over a
 * network: each has an id, may be cancelled by the caller's AbortSignal, and settles with a value or an error
 * that keeps its kind (a TrainwatchError stays one). One-way notes carry events (an alert changed).
 *
 * Messages keep their order on a port, so a note sent before a call is handled before it: a worker that
 * reports alert changes and then asks for them to be flushed gets them flushed.
 *
 * Large payloads travel by transfer, not copy: a handler returns {@link withTransfer}(value, buffers), a caller
 * passes `transfer` to {@link PortRpc.call}.
 */
import { Errors, fromWireError, TrainwatchError, toWireError, type WireError } from './errors.js';

/** The two ends we talk through: `MessagePort`, `Worker` and `parentPort` all have this shape. */
export interface RpcEndpoint {
  postMessage(value: unknown, transferList?: readonly ArrayBuffer[] | readonly unknown[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

export type RpcHandler = (args: never, signal: AbortSignal) => unknown;
export type RpcHandlers = Readonly<Record<string, RpcHandler>>;

const TRANSFER = Symbol('transfer');

interface Transferring {
  readonly [TRANSFER]: true;
  readonly value: unknown;
  readonly transfer: readonly unknown[];
}

/** A handler's answer whose buffers (or ports) are moved to the caller instead of copied. */
export function withTransfer(value: unknown, transfer: readonly unknown[]): unknown {
  return { [TRANSFER]: true, value, transfer } satisfies Transferring;
}

type Message =
  | { readonly k: 'req'; readonly id: number; readonly m: string; readonly a: unknown }
  | { readonly k: 'res'; readonly id: number; readonly v: unknown }
  | { readonly k: 'err'; readonly id: number; readonly e: WireError }
  | { readonly k: 'cancel'; readonly id: number }
  | { readonly k: 'note'; readonly m: string; readonly a: unknown };

export class PortRpc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly running = new Map<number, AbortController>();
  private closedWith: Error | undefined;
  private readonly listener = (msg: unknown) => this.onMessage(msg as Message);

  constructor(
    private readonly endpoint: RpcEndpoint,
    private readonly handlers: RpcHandlers,
    /** Unknown messages (not of this protocol) go here, e.g. a port handed over alongside. */
    private readonly onOther?: (msg: unknown) => void,
  ) {
    endpoint.on('message', this.listener);
  }

  /** Calls `method` on the other side; rejects with its error, or with the signal's reason once aborted. */
  call<T = unknown>(
    method: string,
    args?: unknown,
    opts: { signal?: AbortSignal; transfer?: readonly unknown[] } = {},
  ): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        this.post({ k: 'cancel', id });
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v as T);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      try {
        this.endpoint.postMessage(
          { k: 'req', id, m: method, a: args } satisfies Message,
          opts.transfer ?? [],
        );
      } catch (err) {
        this.pending.delete(id);
        reject(err as Error);
      }
    });
  }

  /** A one-way message; handled on the other side in order with calls. */
  note(method: string, args?: unknown, transfer?: readonly unknown[]): void {
    if (this.closedWith) return;
    this.post({ k: 'note', m: method, a: args }, transfer);
  }

  /** Fails every call in flight (the other side is gone) and cancels every handler running here. */
  close(reason: Error = new TrainwatchError(Errors.unavailable, 'the other thread went away')): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    this.endpoint.off('message', this.listener);
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
    for (const r of this.running.values()) r.abort(reason);
    this.running.clear();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private post(msg: Message, transfer?: readonly unknown[]): void {
    try {
      this.endpoint.postMessage(msg, transfer ?? []);
    } catch {
      // The port is closed: whoever waited on the other side is gone.
    }
  }

  private onMessage(msg: Message): void {
    if (typeof msg !== 'object' || msg === null || !('k' in msg)) {
      this.onOther?.(msg);
      return;
    }
    switch (msg.k) {
      case 'req': {
        const abort = new AbortController();
        this.running.set(msg.id, abort);
        void this.run(msg.id, msg.m, msg.a, abort.signal);
        return;
      }
      case 'note': {
        const h = this.handlers[msg.m];
        if (!h) return;
        try {
          const r = (h as (a: unknown, s: AbortSignal) => unknown)(msg.a, NEVER_ABORTED);
          if (r instanceof Promise) r.catch(() => {});
        } catch {
          // A note has nobody to answer; its handler logs what matters.
        }
        return;
      }
      case 'cancel':
        this.running.get(msg.id)?.abort(new Error('cancelled by the caller'));
        return;
      case 'res':
        this.pending.get(msg.id)?.resolve(msg.v);
        this.pending.delete(msg.id);
        return;
      case 'err':
        this.pending.get(msg.id)?.reject(fromWireError(msg.e));
        this.pending.delete(msg.id);
        return;
      default:
        this.onOther?.(msg);
    }
  }

  private async run(id: number, method: string, args: unknown, signal: AbortSignal): Promise<void> {
    try {
      const h = this.handlers[method];
      if (!h) throw new Error(`no such call: ${method}`);
      const r = await (h as (a: unknown, s: AbortSignal) => unknown)(args, signal);
      if (r && typeof r === 'object' && TRANSFER in r) {
        const t = r as Transferring;
        this.post({ k: 'res', id, v: t.value }, t.transfer);
      } else this.post({ k: 'res', id, v: r });
    } catch (err) {
      this.post({ k: 'err', id, e: toWireError(err) });
    } finally {
      this.running.delete(id);
    }
  }
}

const NEVER_ABORTED = new AbortController().signal;
