/**
 * The embedded TSDB of `storage.kind: embedded`, opened the same way in the main thread (one shard,
 * `processor.workers: 0`) and in each processor worker (one shard per worker), and the shard layout of the
 * data directory.
 *
 * Layout: one shard lives in `<data-dir>/tsdb/` (as every earlier build wrote it); N > 1 shards live in
 * `<data-dir>/tsdb/shard-<i>/`, with the count in `<data-dir>/tsdb/SHARDS`. A series stays in the shard of its
 * bus partition (partition mod N), so the count is fixed once data exists: a data directory written with a
 * different count keeps it (resharding is not supported yet) and says so in the log.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { exportPolicy, Tsdb } from '../storage/index.js';

export function openEmbeddedTsdb(
  config: Config,
  dir: string,
  exportDir: string,
  logger: Logger,
): Promise<Tsdb> {
  const sc = config.storage;
  return Tsdb.open({
    dir,
    blockDurationMs: sc.block_duration,
    outOfOrderWindowMs: sc.out_of_order_window,
    retentionMs: sc.retention,
    fsync: config.bus.fsync !== 'never',
    blockCacheBytes: sc.block_cache_bytes,
    logger,
    onBlocks: sc.export_after > 0 ? exportPolicy(path.resolve(exportDir), sc.export_after) : undefined,
  });
}

/** Where the automatic export writes: `storage.export_dir`, else `<data-dir>/export`. */
export function exportDirOf(config: Config, dataDir: string): string {
  return config.storage.export_dir ?? path.join(dataDir, 'export');
}

export interface ShardLayout {
  readonly dirs: readonly string[];
  /** Set when the data directory decided a count other than the one asked for. */
  readonly note?: string;
}

/** The shard directories for `wanted` shards, or for the count the data directory already holds. */
export function shardLayout(dataDir: string, wanted: number): ShardLayout {
  const root = path.join(dataDir, 'tsdb');
  const countFile = path.join(root, 'SHARDS');
  const dirsFor = (n: number) =>
    n === 1 ? [root] : Array.from({ length: n }, (_, i) => path.join(root, `shard-${i}`));
  if (existsSync(countFile)) {
    const stored = Number(readFileSync(countFile, 'utf8').trim());
    if (Number.isInteger(stored) && stored >= 1) {
      return stored === wanted
        ? { dirs: dirsFor(stored) }
        : {
            dirs: dirsFor(stored),
            note: `the data directory holds ${stored} storage shards; keeping ${stored} processor workers instead of ${wanted} (resharding is not supported yet)`,
          };
    }
  }
  const singleShardData =
    existsSync(root) && readdirSync(root).some((f) => !f.startsWith('shard-') && f !== 'SHARDS');
  if (singleShardData && wanted !== 1)
    return {
      dirs: [root],
      note: `the data directory holds one storage shard (written by an earlier build or with one worker); keeping 1 processor worker instead of ${wanted} (resharding is not supported yet)`,
    };
  mkdirSync(root, { recursive: true });
  writeFileSync(countFile, `${wanted}\n`);
  return { dirs: dirsFor(wanted) };
}
