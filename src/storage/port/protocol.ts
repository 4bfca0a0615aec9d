/**
 * The storage role's read (and small append) protocol over a `MessagePort`: how a query worker or the main
 * thread reads a storage shard that lives in another thread (a processor worker owns its shard's TSDB), with
 * the shape of a network protocol (DESIGN.md "Interfaces between roles"): every call has an id, may be
 * cancelled, and answers with data or an error the caller handles.
 *
 * A selection travels as columns, never as one object per sample: each {@link SelectPart} carries whole
 * series — their label sets, an offsets array, and timestamp/value columns (plus the five rollup aggregate
 * columns when a rollup tier answered) — whose `ArrayBuffer`s are transferred, not copied. Large selections
 * arrive in several parts so that the serving thread yields between them (its event loop may acknowledge
 * writes) and the receiver can cancel part-way.
 *
 * Messages, client → server: {@link StorageRequest}. Server → client: {@link StorageResponse}, several `part`s
 * then one `end` for a select, one `result` otherwise, or one `error`.
 */
import type { SeriesBatch } from '../../model/batch.js';
import { type ErrorKind, Errors, TrainwatchError } from '../../model/errors.js';
import type { LabelSet, MatchType } from '../../model/labels.js';
import type { SelectHints } from '../storage.js';

export interface WireMatcher {
  readonly type: MatchType;
  readonly name: string;
  readonly value: string;
}

/** Which data a request reads: one tenant's (or, `null`, every tenant's) within [minT, maxT]. */
export interface WireScope {
  readonly tenant: string | null;
  readonly minT: number;
  readonly maxT: number;
}

export type StorageRequest =
  | {
      readonly op: 'select';
      readonly id: number;
      readonly scope: WireScope;
      readonly matchers: readonly WireMatcher[];
      readonly hints?: SelectHints;
    }
  | {
      readonly op: 'labelNames';
      readonly id: number;
      readonly scope: WireScope;
      readonly matchers: readonly WireMatcher[];
    }
  | {
      readonly op: 'labelValues';
      readonly id: number;
      readonly scope: WireScope;
      readonly name: string;
      readonly matchers: readonly WireMatcher[];
    }
  | { readonly op: 'append'; readonly id: number; readonly tenant: string; readonly batch: SeriesBatch }
  | { readonly op: 'cancel'; readonly id: number };

/**
 * Whole series of a selection, as columns. Series `i` has samples `[offsets[i], offsets[i+1])` of `t` and `v`;
 * `resolutionMs[i]` is 0 for raw samples, else the rollup tier's window (then `agg` holds, for those samples,
 * the min, max, sum, count and last columns, each `t.length` long, one after another).
 */
export interface SelectPart {
  readonly labels: readonly LabelSet[];
  readonly resolutionMs: Float64Array;
  readonly offsets: Uint32Array;
  readonly t: Float64Array;
  readonly v: Float64Array;
  readonly agg?: Float64Array;
}

export type StorageResponse =
  | { readonly id: number; readonly type: 'part'; readonly part: SelectPart }
  | {
      readonly id: number;
      readonly type: 'end';
      readonly warnings: readonly string[];
      readonly err?: WireError;
    }
  | { readonly id: number; readonly type: 'result'; readonly value: unknown }
  | { readonly id: number; readonly type: 'error'; readonly error: WireError };

/** An error as it crosses the port: its message, and its kind when it was a TrainwatchError. */
export interface WireError {
  readonly message: string;
  readonly code?: string;
  readonly retryAfterSeconds?: number;
}

const KINDS_BY_CODE = new Map<string, ErrorKind>(Object.values(Errors).map((k) => [k.code, k]));

export function toWireError(err: unknown): WireError {
  if (err instanceof TrainwatchError)
    return {
      message: err.message,
      code: err.kind.code,
      ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
    };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** The error again, as the kind it had where it was raised (a plain Error when it had none). */
export function fromWireError(e: WireError): Error {
  const kind = e.code ? KINDS_BY_CODE.get(e.code) : undefined;
  return kind ? new TrainwatchError(kind, e.message, e.retryAfterSeconds) : new Error(e.message);
}
