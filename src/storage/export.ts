/**
 * Cold export: block data as Parquet files that DuckDB, pyarrow and Spark read directly. One file per block
 * and time range: a column per label name (string, null where a series lacks the label), `timestamp`
 * (TIMESTAMP_MILLIS) and `value` (DOUBLE) for raw blocks, or `min`, `max`, `sum`, `count`, `last` for rollup
 * tiers; one row per sample or per rollup window, series after series in Prometheus order. Staleness markers
 * are not exported (they are not data). Written with hyparquet-writer (snappy), into a temporary name then
 * renamed, so a reader never sees half a file.
 */
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileWriter, ParquetWriter } from 'hyparquet-writer';
import { isStaleNaN } from '../model/batch.js';
import type { LabelMatcher } from '../model/labels.js';
import type { BlockReader, TierName } from './block.js';
import { BlockIterator } from './iterators.js';
import { postingsForMatchers } from './postings.js';
import { AGG_COLUMNS } from './rollup.js';

const ROW_GROUP = 100_000;
const AGG_NAMES = ['min', 'max', 'sum', 'count', 'last'];

export interface ExportResult {
  readonly file: string;
  readonly rows: number;
  readonly series: number;
}

/**
 * Writes the samples of `block` within [from, to] (and matching `matchers`) to `<outDir>/<tier>-<minT>-<maxT>-<seq>.parquet`.
 * Returns undefined when nothing matched.
 */
export async function exportBlock(
  block: BlockReader,
  outDir: string,
  from: number,
  to: number,
  matchers: readonly LabelMatcher[] = [],
): Promise<ExportResult | undefined> {
  const idx = block.index();
  const ids = matchers.length > 0 ? postingsForMatchers(idx, matchers) : idx.allPostings();
  if (ids.length === 0) return undefined;
  const labelNames = new Set<string>();
  for (const id of ids) for (const n of idx.labels(id).names) labelNames.add(n);
  const names = [...labelNames].sort();
  const rollup = block.meta.tier !== 'raw';
  const valueNames = rollup ? AGG_NAMES : ['value'];
  const reserved = new Set(['timestamp', ...valueNames]);
  // A label that collides with a value column keeps its data under a prefixed name.
  const columnName = (n: string) => (reserved.has(n) ? `label_${n}` : n);
  mkdirSync(outDir, { recursive: true });
  const lo = Math.max(from, block.meta.minT);
  const hi = Math.min(to, block.meta.maxT);
  const file = path.join(outDir, `${block.meta.tier}-${lo}-${hi}-${block.meta.seq}.parquet`);
  const tmp = `${file}.tmp`;
  const schema = [
    { name: 'root', num_children: names.length + 1 + valueNames.length },
    ...names.map((n) => ({
      name: columnName(n),
      type: 'BYTE_ARRAY' as const,
      converted_type: 'UTF8' as const,
      repetition_type: 'OPTIONAL' as const,
    })),
    {
      name: 'timestamp',
      type: 'INT64' as const,
      converted_type: 'TIMESTAMP_MILLIS' as const,
      repetition_type: 'REQUIRED' as const,
    },
    ...valueNames.map((n) => ({ name: n, type: 'DOUBLE' as const, repetition_type: 'REQUIRED' as const })),
  ];
  const writer = new ParquetWriter({ writer: fileWriter(tmp), schema, createdBy: 'trainwatch' });
  let labelCols: (string | null)[][] = names.map(() => []);
  let ts: number[] = [];
  let vals: number[][] = valueNames.map(() => []);
  let rows = 0;
  let series = 0;
  const flush = async () => {
    if (ts.length === 0) return;
    await writer.write({
      columnData: [
        ...names.map((n, i) => ({ name: columnName(n), data: labelCols[i]! })),
        { name: 'timestamp', data: ts },
        ...valueNames.map((n, i) => ({ name: n, data: Float64Array.from(vals[i]!) })),
      ],
      rowGroupSize: ROW_GROUP,
    });
    labelCols = names.map(() => []);
    ts = [];
    vals = valueNames.map(() => []);
  };
  for (const id of ids) {
    const labels = idx.labelSet(id);
    const row = names.map((n) => labels[n] ?? null);
    const its = Array.from(
      { length: rollup ? AGG_COLUMNS : 1 },
      (_, c) => new BlockIterator(block, id, c, lo, hi),
    );
    let any = false;
    while (its.every((it) => it.next())) {
      if (!rollup && isStaleNaN(its[0]!.v)) continue;
      for (let i = 0; i < names.length; i++) labelCols[i]!.push(row[i]!);
      ts.push(its[0]!.t);
      for (let c = 0; c < its.length; c++) vals[c]!.push(its[c]!.v);
      rows++;
      any = true;
      if (ts.length >= ROW_GROUP) await flush();
    }
    if (any) series++;
  }
  await flush();
  writer.finish();
  if (rows === 0) {
    const { unlinkSync } = await import('node:fs');
    unlinkSync(tmp);
    return undefined;
  }
  renameSync(tmp, file);
  return { file, rows, series };
}

/** Exports every block of `tier` overlapping [from, to]. */
export async function exportRange(
  blocks: readonly BlockReader[],
  outDir: string,
  from: number,
  to: number,
  tier: TierName,
  matchers: readonly LabelMatcher[] = [],
): Promise<ExportResult[]> {
  const out: ExportResult[] = [];
  for (const b of blocks) {
    if (b.meta.tier !== tier || b.meta.maxT < from || b.meta.minT > to) continue;
    const r = await exportBlock(b, outDir, from, to, matchers);
    if (r) out.push(r);
  }
  return out;
}

/**
 * The automatic export policy (`storage.export_after`): after each maintenance pass, every raw and rollup
 * block whose newest sample is older than `afterMs` and has no Parquet file yet is exported. Files are named
 * by block, so a block replaced by compaction is exported again under its new name (the older files stay
 * valid: the same samples, in smaller files).
 */
export function exportPolicy(outDir: string, afterMs: number, now: () => number = Date.now) {
  return async (blocks: readonly BlockReader[]): Promise<void> => {
    const done = existsSync(outDir) ? new Set(readdirSync(outDir)) : new Set<string>();
    const cutoff = now() - afterMs;
    for (const b of blocks) {
      if (b.meta.maxT >= cutoff) continue;
      const name = `${b.meta.tier}-${b.meta.minT}-${b.meta.maxT}-${b.meta.seq}.parquet`;
      if (done.has(name)) continue;
      await exportBlock(b, outDir, b.meta.minT, b.meta.maxT);
    }
  };
}
