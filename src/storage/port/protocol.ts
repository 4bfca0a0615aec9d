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
import type { WireError } from '../../model/errors.js';

export { fromWireError, toWireError, type WireError } from '../../model/errors.js';

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
