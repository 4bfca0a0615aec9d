/**
 * The head's vocabulary: its chunk descriptors, snapshots, options, stats and size constants, and the small
 * helpers over them (chunk bytes, bit-exact value comparison, timestamp search). Apart from head-series.ts
 * (the registry) because every head file and the storage around the head (iterators, bulk reads, the head
 * log) use these without needing the registry.
 */
import type { LabelSet } from '../model/labels.js';
import { XOR_MAX_SAMPLE_BITS } from './codec/xor.js';
import type { SpillFile } from './spill.js';

export { lowerBound } from '../model/sorted.js';

/**
 * A sealed, immutable head chunk (Gorilla-encoded). Its `size` bytes are in memory (`bytes`) until the storage
 * spills them to disk (`file` at `offset`, see spill.ts); read them with {@link chunkBytes}. One flat object:
 * a head holds several per series until the next cut.
 */
export interface HeadChunk {
  readonly minT: number;
  readonly maxT: number;
  readonly count: number;
  readonly size: number;
  bytes: Uint8Array | undefined;
  file: SpillFile | undefined;
  offset: number;
}

/** A head chunk held in memory. */
export function memoryChunk(minT: number, maxT: number, count: number, bytes: Uint8Array): HeadChunk {
  return { minT, maxT, count, size: bytes.length, bytes, file: undefined, offset: 0 };
}

/**
 * The bytes of a head chunk, from memory or from its spill file. With `scratch`, a spilled chunk is read into
 * a shared buffer valid until the next such read (for callers that decode it at once).
 */
export function chunkBytes(c: HeadChunk, scratch = false): Uint8Array {
  if (c.bytes) return c.bytes;
  return c.file!.read(c.offset, c.size, scratch);
}

/** See {@link Head.memoryStats}. */
export interface HeadMemoryStats {
  /** Live series, refs handed out (dead ones included) and the column capacity. */
  readonly series: number;
  readonly refs: number;
  readonly capacity: number;
  /** Per-series typed-array columns (series state, open-chunk encoder state, checkpoint bookkeeping, hash index). */
  readonly columnBytes: number;
  /** Label pairs of every series (symbol ids). */
  readonly arenaBytes: number;
  /** Open chunks: the slab's pages. */
  readonly slabBytes: number;
  /** Sealed chunks waiting for the next cut: their descriptors (JS objects), and bytes not spilled yet. */
  readonly sealedLists: number;
  readonly sealedChunks: number;
  readonly sealedInMemoryBytes: number;
  readonly oooBuffers: number;
  readonly oooBytes: number;
  /** Postings: lists (one JS object and typed array each) and their id bytes. */
  readonly postingLists: number;
  readonly postingBytes: number;
  readonly symbols: number;
  readonly symbolChars: number;
  readonly hashEntries: number;
}

/** Out-of-order / overwrite buffer of one series: sorted by timestamp, one entry per timestamp. */
export interface OooBuffer {
  t: Float64Array;
  v: Float64Array;
  n: number;
}

export interface HeadOptions {
  /** Samples older than the series' newest by more than this are refused (counted as too old). */
  readonly oooWindowMs: number;
  /** Chunks never span a multiple of this (the block duration), so that cuts never split a chunk. */
  readonly chunkRangeMs: number;
  /** A chunk is sealed at this many samples. */
  readonly maxChunkSamples?: number;
}

export interface HeadAppendStats {
  series: number;
  samples: number;
  duplicates: number;
  /** Samples refused because they were older than the out-of-order window allows. */
  tooOld: number;
  /** Samples refused because their timestamp is not an integer within ±2^49 ms. */
  invalid: number;
  /** Series created by this batch. */
  created: number;
}

/** Stats with nothing counted yet, for one append. */
export function newHeadAppendStats(): HeadAppendStats {
  return { series: 0, samples: 0, duplicates: 0, tooOld: 0, invalid: 0, created: 0 };
}

/** What a cut moves out of the head for one series. */
export interface CutSeries {
  readonly ref: number;
  readonly labels: LabelSet;
  readonly chunks: HeadChunk[];
  readonly oooT?: Float64Array;
  readonly oooV?: Float64Array;
}

/** A consistent view of one series' head data, taken at select time; later appends do not disturb it. */
export interface HeadSeriesSnapshot {
  readonly sealed: readonly HeadChunk[];
  readonly open: HeadChunk | undefined;
  readonly oooT: Float64Array | undefined;
  readonly oooV: Float64Array | undefined;
}

export const DEFAULT_MAX_CHUNK_SAMPLES = 120;
export const MAX_CHUNK_BYTES = 4096;
/** Bytes one more sample may need (see XOR_MAX_SAMPLE_BITS). */
export const SAMPLE_HEADROOM = (XOR_MAX_SAMPLE_BITS >>> 3) + 2;

/** A chunk sealed since the last checkpoint, with how many of its bytes the head log already holds. */
export interface SealedSinceCheckpoint {
  readonly ref: number;
  readonly chunk: HeadChunk;
  readonly persistedBytes: number;
}

const cmp = new Float64Array(2);
const cmpBits = new Uint32Array(cmp.buffer);

export function sameBits(a: number, b: number): boolean {
  cmp[0] = a;
  cmp[1] = b;
  return cmpBits[0] === cmpBits[2] && cmpBits[1] === cmpBits[3];
}
