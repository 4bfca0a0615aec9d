/**
 * The constants and types of the block file format (the box in block.ts is the contract), shared by the
 * writer (block-writer.ts), the index reader (block-index.ts) and the file reader (block.ts). Separate so
 * that those three import the format from one place and not from each other.
 */

export const BLOCK_MAGIC = 'TWBK';
/**
 * Block format written. Read: version 1 (uncompressed index, chunks with their first timestamp), version 2
 * (chunks stored as they are), version 3 (chunks in deflated pages: the chunk codecs leave the value bytes'
 * skewed distribution and repeated chunk headers to a general compressor, about a fifth of a raw block and
 * a third to a half of a rollup block on the bench's data).
 */
export const BLOCK_VERSION = 3;
/** A version-3 page is closed after the series that brings it to this many plain bytes. */
export const PAGE_BYTES = 64 << 10;
export const PAGE_PLAIN = 0;
export const PAGE_DEFLATE = 1;
export const FOOTER_BYTES = 40;

export type TierName = 'raw' | '10s' | '1m' | '1h';

export interface BlockMeta {
  readonly tier: TierName;
  /** Sequence number: higher is newer; for equal (series, timestamp), the newer block's sample wins. */
  readonly seq: number;
  readonly minT: number;
  /** Inclusive. */
  readonly maxT: number;
  readonly series: number;
  readonly samples: number;
  readonly chunks: number;
  /** Raw blocks: whether rollups of this block's range were written (tsdb.ts): `rollups` names the tiers. */
  readonly rolledUp: boolean;
  /**
   * Raw blocks: the tiers whose rollup blocks hold this block's windows (absent in blocks written before it
   * existed: tsdb.ts then finds them at open).
   */
  readonly rollups?: readonly TierName[];
  /** Compaction level: 0 for a block cut from the head. */
  readonly level: number;
  /** Seqs of the blocks this one replaces (compaction); those left behind by a crash are deleted at open. */
  readonly sources: readonly number[];
  /** Cold export (export.ts) already wrote this block's data. */
  readonly exported?: boolean;
}

export interface ChunkRef {
  /** 0 for raw values; 0..4 = min, max, sum, count, last in rollup blocks. */
  readonly column: number;
  readonly minT: number;
  readonly maxT: number;
  readonly bytes: Uint8Array;
}

export class BlockCorruptError extends Error {}
