/**
 * What `trainwatch export` runs: opens the blocks of a data directory read-only (blocks are immutable, so
 * this is safe while trainwatch runs and compacts: a block deleted meanwhile stays readable through its open
 * file) and exports a time range as Parquet.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { LabelMatcher } from '../model/labels.js';
import { BlockReader, type TierName } from './block.js';
import { type ExportResult, exportRange } from './export.js';

export interface ExportOptions {
  readonly dataDir: string;
  readonly outDir: string;
  readonly from: number;
  readonly to: number;
  readonly tier: TierName;
  readonly tenant?: string;
  readonly metric?: string;
}

export async function exportDataDir(opts: ExportOptions): Promise<ExportResult[]> {
  const dir = path.join(opts.dataDir, 'tsdb', 'blocks');
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.twb'));
  } catch (err) {
    throw new Error(`no trainwatch storage in ${opts.dataDir}: ${(err as Error).message}`);
  }
  const readers = files.map((f) => new BlockReader(path.join(dir, f)));
  // Blocks replaced by a compaction that had not deleted them yet hold the same data: leave them out.
  const replaced = new Set(readers.flatMap((r) => r.meta.sources));
  const live = readers.filter((r) => !replaced.has(r.meta.seq)).sort((a, b) => a.meta.minT - b.meta.minT);
  const matchers: LabelMatcher[] = [];
  if (opts.tenant) matchers.push(new LabelMatcher('=', 'tenant', opts.tenant));
  if (opts.metric) matchers.push(new LabelMatcher('=', '__name__', opts.metric));
  try {
    return await exportRange(live, opts.outDir, opts.from, opts.to, opts.tier, matchers);
  } finally {
    for (const r of readers) r.close();
  }
}
