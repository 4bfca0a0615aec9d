/**
 * The storage role's interfaces (DESIGN.md): an {@link Appender} the processor writes through and a
 * {@link Querier} that PromQL and the REST API read through. Everything else about a storage engine — head,
 * chunks, blocks, compaction — stays behind these.
 */
import type { SeriesBatch } from '../model/batch.js';
import type { LabelMatcher, LabelSet } from '../model/labels.js';

/**
 * Walks the samples of one series in timestamp order. Fields are read after a successful `next`/`seek`;
 * no object is created per sample. Not safe for concurrent use.
 */
export interface SampleIterator {
  /** Moves to the next sample; false once exhausted. */
  next(): boolean;
  /** Moves to the first sample with timestamp >= `t` (never backwards); false if there is none. */
  seek(t: number): boolean;
  /** Timestamp (ms) of the current sample. */
  readonly t: number;
  /** Value of the current sample; may be the staleness marker (see model/batch.ts isStaleNaN). */
  readonly v: number;
}

export interface SelectedSeries {
  readonly labels: LabelSet;
  /** A fresh iterator over the series' samples within the querier's time range. */
  iterator(): SampleIterator;
  /**
   * Set when the querier answered from a rollup tier (see {@link SelectHints.stepMs}): each sample then stands
   * for one window of this many ms, stored at the window's last millisecond, and `iterator()`'s `v` is the
   * aggregate that {@link SelectHints.func} asks for (avg_over_time: the window's average).
   */
  readonly resolutionMs?: number;
  /** With `resolutionMs`: every aggregate of each window (exact averages need sum and count). */
  aggregates?(): AggregateIterator;
  /**
   * Optional bulk read: every sample `iterator()` yields, decoded into `out` (its arrays grown as needed, its
   * contents replaced); returns the count. Much cheaper than iterating when a whole range is folded (a
   * dashboard column grid, a range function over the selection). Values keep their exact bit patterns.
   */
  readSamples?(out: SampleArrays): number;
  /**
   * Optional bulk read, with `resolutionMs`: every window {@link aggregates} yields, into `out` (its columns
   * grown as needed, its contents replaced; the columns not asked for in {@link SelectHints.aggregates} may
   * be NaN); returns the count. No allocation per series and no call per window: for callers that fold
   * every window of many series (dashboard heatmaps and bands).
   */
  readAggregates?(out: AggregateArrays): number;
}

/**
 * Growable per-window aggregates for {@link SelectedSeries.readAggregates} (rollup.ts `RollupColumns`
 * implements it): windows `[0..n)` at `t` (each window's last millisecond), `cols[AGG_*]` (min, max, sum,
 * count, last: rollup.ts's column numbers). Reuse one across series.
 */
export interface AggregateArrays {
  n: number;
  t: Float64Array;
  readonly cols: Float64Array[];
  reset(): void;
  /** Room for `n` windows, keeping the first `this.n`. */
  reserve(n: number): void;
  push(t: number, min: number, max: number, sum: number, count: number, last: number): void;
}

/**
 * Growable sample arrays for {@link SelectedSeries.readSamples} (codec/chunk.ts `SampleBuffer` implements it):
 * `t[0..n)` timestamps, `v[0..n)` values; `vb` views `v`'s raw bits. Reuse one across series.
 */
export interface SampleArrays {
  t: Float64Array;
  v: Float64Array;
  vb: Uint32Array;
  n: number;
  /** Room for at least `n` samples, keeping the first `this.n`. */
  ensure(n: number): void;
}

/**
 * One rollup window per step: min, max, sum and count of the raw samples in the window (staleness markers
 * left out) and the last value. `t` is the window's last millisecond. Not safe for concurrent use.
 */
export interface AggregateIterator {
  next(): boolean;
  seek(t: number): boolean;
  readonly t: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
  readonly count: number;
  readonly last: number;
}

/**
 * What a {@link Querier.select} answers: the selected series, ordered by their label sets (as Prometheus
 * orders them), plus what went wrong without failing the whole selection (Prometheus's `SeriesSet.Err()` and
 * `Warnings()`).
 *
 * - A selection that cannot be answered at all rejects its promise (a TrainwatchError: `unavailable` when a
 *   retry may help, e.g. a remote TSDB that did not answer; `badRequest` when it never will).
 * - `err` is set when the answer broke off part-way (a remote read cut short): the series before it are valid,
 *   but the set is incomplete, and a caller that needs the whole answer (PromQL) must fail with it.
 * - `warnings` name partial answers a caller may still show (a shard that timed out, a limit that cut it).
 */
export interface SeriesSet {
  readonly series: readonly SelectedSeries[];
  readonly warnings: readonly string[];
  readonly err?: Error;
}

/** A complete answer with no warnings. */
export function seriesSet(series: readonly SelectedSeries[]): SeriesSet {
  return { series, warnings: NO_WARNINGS };
}

const NO_WARNINGS: readonly string[] = Object.freeze([]);

/**
 * Reads one tenant's data (or every tenant's, for an admin querier) within [minT, maxT].
 * Series carry their `tenant` label like any other label.
 *
 * Every call may cross a network (a remote TSDB behind the query role): it is asynchronous, takes an
 * `AbortSignal` (the query's deadline or the client going away; an aborted call rejects with the signal's
 * reason and stops reading), and may fail. The embedded TSDB answers from memory and its own files.
 */
export interface Querier {
  select(matchers: readonly LabelMatcher[], hints?: SelectHints, signal?: AbortSignal): Promise<SeriesSet>;
  labelNames(matchers?: readonly LabelMatcher[], signal?: AbortSignal): Promise<string[]>;
  labelValues(name: string, matchers?: readonly LabelMatcher[], signal?: AbortSignal): Promise<string[]>;
}

export interface SelectHints {
  /** Narrower time range than the querier's, e.g. one PromQL range selector. */
  readonly minT?: number;
  readonly maxT?: number;
  /**
   * Rollups (optional): the query's resolution step in ms and the range function applied to the selection
   * (`min_over_time`, `max_over_time`, `sum_over_time`, `count_over_time`, `avg_over_time`,
   * `last_over_time`), with its range in ms. With all three, a storage that keeps rollup tiers may answer from
   * the coarsest tier whose resolution divides both step and range (and is at most the step), and says so
   * through {@link SelectedSeries.resolutionMs}. Without them, raw samples are returned.
   */
  readonly stepMs?: number;
  readonly func?: string;
  readonly rangeMs?: number;
  /**
   * With a rollup tier: the aggregates the caller reads through {@link SelectedSeries.aggregates} (all when
   * absent; `count` always). The others may then be NaN, and the storage reads less.
   */
  readonly aggregates?: readonly ('min' | 'max' | 'sum' | 'count' | 'last')[];
  /**
   * The caller's memory budget for this selection, in samples (raw samples, or rollup windows). A storage that
   * materializes the selection (one read across a thread or a network) refuses it with a `budgetExceeded`
   * error (422) as soon as it would hold more, instead of allocating them; a lazy one may leave the counting to
   * the caller, who reads sample by sample.
   */
  readonly maxSamples?: number;
}

export interface AppendStats {
  readonly series: number;
  readonly samples: number;
  /** Samples dropped as exact duplicates of stored ones (same series, timestamp and value). */
  readonly duplicates: number;
}

/**
 * Appends samples. Idempotent: appending an identical (series, timestamp, value) again changes nothing, so
 * the processor may replay the bus after a crash. A different value for a stored timestamp replaces it
 * (last write wins, in bus order), which makes replay deterministic too.
 *
 * Asynchronous, as OpenTelemetry's `ConsumeMetrics(ctx, md) error` is: a remote TSDB takes the batch into its
 * bounded send queue and may make the caller wait when that queue is full (backpressure). Resolving does not
 * mean durable: {@link Storage.checkpoint} says when everything appended so far is. Ownership: the batch's
 * arrays belong to the caller again once the promise settles; an appender copies what it keeps.
 */
export interface Appender {
  /**
   * Appends a batch for `tenant`; sets the `tenant` label of every series to it, whatever the batch said.
   * Rejects with a TrainwatchError (4xx kind) when a limit of the tenant is exceeded; nothing of the batch is
   * then partly applied beyond what the error message states. Rejects with `unavailable` when the storage
   * cannot take writes (disk full, a remote TSDB refusing for longer than its queue holds).
   */
  append(tenant: string, batch: SeriesBatch, signal?: AbortSignal): Promise<AppendStats>;

  /**
   * Optional fast path of an in-process storage, for a caller that keeps dense ids of its own for the series
   * it writes (the processor's series table): the storage remembers its own ref for each caller id in a
   * {@link SeriesRefCache} it made, so appending a known series skips the label lookup (Prometheus's
   * `Append` returning a ref for the next append). Same semantics, errors and ownership as {@link append}.
   * A remote storage leaves it out; callers then use {@link append}.
   */
  appendKeyed?(
    tenant: string,
    batch: KeyedSeriesBatch,
    cache: SeriesRefCache,
    signal?: AbortSignal,
  ): Promise<AppendStats>;

  /** A new, empty cache for {@link appendKeyed}; present exactly when `appendKeyed` is. */
  newSeriesRefCache?(): SeriesRefCache;
}

/**
 * A columnar batch whose series are named by the caller's dense ids (`keys`) rather than by label sets: entry
 * `i` is series `keys[i]` with samples `[offsets[i], offsets[i + 1])`, as in {@link SeriesBatch}. `labels[key]`
 * is that series' label set; the storage reads it only for a key its cache does not know yet.
 *
 * Invariant (the caller's): a key names the same (tenant, labels) in every call until the caller tells the
 * cache {@link SeriesRefCache.forget}; only then may it reuse the key for another series.
 */
export interface KeyedSeriesBatch {
  readonly seriesCount: number;
  readonly keys: Int32Array;
  readonly labels: readonly (LabelSet | undefined)[];
  /**
   * Optional: the same labels as ids of the caller's interned strings, which the storage then reads instead of
   * `labels` for a key its cache does not know (no string hashing per label of a new series).
   */
  readonly labelIds?: KeyedLabelIds;
  readonly offsets: Uint32Array;
  readonly timestamps: Float64Array;
  readonly values: Float64Array;
  readonly sampleCount: number;
}

/**
 * The caller's interned label strings: `strings[id]` never changes meaning while the caller's
 * {@link SeriesRefCache} lives (ids are never renumbered nor reused).
 */
export interface KeyedLabelIds {
  readonly strings: readonly string[];
  /**
   * The labels of `key` as (name id, value id) pairs, without the `tenant` label: a view valid until the
   * caller's next change to its keys (the storage reads it at once).
   */
  pairsOf(key: number): Int32Array;
}

/**
 * The storage's memory of its own series ref per caller key (see {@link Appender.appendKeyed}). Owned by one
 * caller; the storage checks each remembered ref before use (a cut or a renumbering invalidates refs), so a
 * stale entry costs one lookup, never a wrong series.
 */
export interface SeriesRefCache {
  /** The caller is about to reuse `key` for another series. */
  forget(key: number): void;
}

/** The stats of several appends (a batch split over shards) as one. */
export function sumAppendStats(stats: readonly AppendStats[]): AppendStats {
  let series = 0;
  let samples = 0;
  let duplicates = 0;
  for (const s of stats) {
    series += s.series;
    samples += s.samples;
    duplicates += s.duplicates;
  }
  return { series, samples, duplicates };
}

/** Bus offsets (next offset to read, per partition) that a storage's durable state covers. */
export type BusPositions = ReadonlyMap<number, number>;

export interface Storage {
  readonly appender: Appender;

  /** A querier over [minT, maxT] ms for one tenant, or every tenant when `tenant` is null (admin only). */
  querier(tenant: string | null, minT: number, maxT: number): Querier;

  /**
   * Makes everything appended so far durable and records that it covers the bus up to `positions`.
   * Resolves once that is on disk. The processor commits bus offsets only after this resolved.
   */
  checkpoint(positions: BusPositions): Promise<void>;

  /**
   * What the durable state covers: where the processor resumes reading the bus after a restart, unless the
   * bus's committed offset for its consumer group is further (the processor takes the greater of the two).
   * Partitions absent from the map are covered from offset 0 (nothing of them is durable). A storage that
   * keeps no positions of its own (a remote TSDB, which is durable once it acknowledged a write) answers an
   * empty map: the consumer group's committed offsets are then the whole truth.
   */
  coveredPositions(): BusPositions;

  close(): Promise<void>;

  /** Series with data in memory (the head) for `tenant`, or for every tenant; cheap. Optional. */
  activeSeries?(tenant?: string): number;
}
