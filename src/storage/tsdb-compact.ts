/** The TSDB's cuts (head → block), compaction and retention; see tsdb-lifecycle.ts for the whole picture. */

import { unlinkSync } from 'node:fs';
import path from 'node:path';
import { syncDirSync } from '../model/fs.js';
import type { LabelSet } from '../model/labels.js';
import { ByteWriter } from '../protocol/bytes.js';
import { type BlockMeta, BlockReader, BlockWriter, type ChunkRef, type TierName } from './block.js';
import { encodeChunk, SampleBuffer } from './codec/chunk.js';
import type { HeadChunk } from './head.js';
import { BlockIterator, HeadIterator, MergeIterator } from './iterators.js';
import { AGG_COLUMNS, aggregateSamples, coarsen, ROLLUP_TIERS, RollupColumns, type Tier } from './rollup.js';
import type { SampleIterator } from './storage.js';
import { seriesSortKey } from './symbols.js';

/** The embedded TSDB's reads as they really are: synchronous, from memory and local files. */
import { LEVEL_FACTORS, TsdbLifecycle } from './tsdb-lifecycle.js';

function finishPath(
  w: BlockWriter,
  meta: Omit<BlockMeta, 'series' | 'samples' | 'chunks' | 'minT' | 'maxT'>,
): string {
  w.finish(meta);
  return w.path;
}

function sortKeyOf(labels: LabelSet): string {
  const names = Object.keys(labels).sort();
  return seriesSortKey(
    names,
    names.map((n) => labels[n]!),
  );
}

/** Iterator over a cut's chunks and out-of-order samples (the out-of-order ones win ties). */
function headCutIterator(chunks: HeadChunk[], oooT?: Float64Array, oooV?: Float64Array): SampleIterator {
  return new HeadIterator(
    { sealed: chunks, open: undefined, oooT, oooV },
    Number.NEGATIVE_INFINITY,
    Number.POSITIVE_INFINITY,
  );
}

/** Encodes one column of samples into block chunks of at most BLOCK_CHUNK_SAMPLES. */
function encodeColumn(
  ts: Float64Array,
  vs: Float64Array,
  n: number,
  column: number,
  out: ByteWriter,
): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  for (let from = 0; from < n; from += BLOCK_CHUNK_SAMPLES) {
    const to = Math.min(n, from + BLOCK_CHUNK_SAMPLES);
    out.reset();
    encodeChunk(ts, vs, from, to, out);
    chunks.push({ column, minT: ts[from]!, maxT: ts[to - 1]!, bytes: out.toBytes() });
  }
  return chunks;
}

function encodeRollup(c: RollupColumns, out: ByteWriter): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  for (let col = 0; col < AGG_COLUMNS; col++) chunks.push(...encodeColumn(c.t, c.cols[col]!, c.n, col, out));
  return chunks;
}

/** Samples per block chunk: large enough for the codecs to pay off, small enough to seek cheaply. */
const BLOCK_CHUNK_SAMPLES = 1024;

/** Block writers yield to the event loop after this many series. */
const YIELD_EVERY_SERIES = 2000;

/** Closed files of deleted blocks stay open this long for queries still reading them. */
const DELETED_BLOCK_GRACE_MS = 60_000;

export abstract class TsdbCompactor extends TsdbLifecycle {
  // --------------------------------------------------------------------------------------------------------
  // Cutting the head into blocks

  /**
   * Moves every head sample older than `boundary` into a raw block (and its rollups). The block is written
   * asynchronously, yielding to the event loop, while the head goes on serving those samples (and taking
   * appends); the head lets go of them, and the block joins the store, in one synchronous step at the end.
   */
  protected async cutHead(boundary: number): Promise<void> {
    const cut = this.head.prepareCut(boundary);
    if (cut.length === 0) return;
    const entries = cut.map((c) => ({ c, key: sortKeyOf(c.labels) }));
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let minT = Number.POSITIVE_INFINITY;
    for (const { c } of entries) {
      if (c.chunks.length > 0) minT = Math.min(minT, c.chunks[0]!.minT);
      if (c.oooT && c.oooT.length > 0) minT = Math.min(minT, c.oooT[0]!);
    }
    const range = this.alignedRange(minT, boundary - 1);
    const overlaps = this.blocks.some(
      (b) => b.meta.tier === 'raw' && this.rangesOverlap(range, this.alignedRange(b.meta.minT, b.meta.maxT)),
    );
    const series = entries.map(({ c }) => ({
      labels: c.labels,
      iterator: () => headCutIterator(c.chunks, c.oooT, c.oooV),
    }));
    // Rollups only where this block alone holds the raw data of its windows.
    const tiers = overlaps ? [] : this.tiersFor(range[0], range[1]);
    const written = await this.writeRaw(series, 0, [], tiers, []);
    this.head.finishCut(cut);
    this.blocks.push(...written);
    // A fresh spill file for the new head; the old one (mostly chunks now in the block) goes away once the
    // queries that may still read it are done.
    const old = this.spillFile!;
    this.spillFile = this.newSpillFile();
    this.head.respill(this.spillFile);
    old.unlink();
    setTimeout(() => old.close(), DELETED_BLOCK_GRACE_MS).unref();
    this.sortBlocks();
    this.headMinTime = this.computeHeadMinTime();
  }

  /**
   * Writes a raw block from series given in sort order, and first the rollup blocks of the tiers `compute`
   * (computed from the same samples), so that a raw block naming a tier always has it. The raw block names
   * `compute` and `inherited` (tiers whose rollups exist already, e.g. when joining blocks that had them).
   * Returns the new blocks, rollups first; the caller adds them to the store.
   */
  protected async writeRaw(
    series: readonly { labels: LabelSet; iterator: () => SampleIterator }[],
    level: number,
    sources: readonly number[],
    compute: readonly Tier[],
    inherited: readonly TierName[],
  ): Promise<BlockReader[]> {
    const rawSeq = this.nextSeq++;
    const raw = new BlockWriter(path.join(this.blocksDir, `raw-${rawSeq}.twb`));
    const tiers = [...compute].sort((a, b) => a.resolutionMs - b.resolutionMs);
    const rollups = tiers.length > 0;
    const tierWriters = tiers.map((t) => ({
      tier: t,
      seq: this.nextSeq++,
      w: undefined as BlockWriter | undefined,
    }));
    for (const tw of tierWriters)
      tw.w = new BlockWriter(path.join(this.blocksDir, `${tw.tier.name}-${tw.seq}.twb`));
    const buf = new SampleBuffer(1024);
    const out = new ByteWriter(1 << 14);
    const cols = tiers.map(() => new RollupColumns());
    const names = [...new Set([...inherited, ...tiers.map((t) => t.name)])].sort(
      (a, b) => ROLLUP_TIERS.findIndex((t) => t.name === a) - ROLLUP_TIERS.findIndex((t) => t.name === b),
    );
    const written: BlockReader[] = [];
    try {
      let since = 0;
      for (const s of series) {
        // Yield now and then: a cut of a large head takes a while and must not stall ingest or queries.
        if (++since === YIELD_EVERY_SERIES) {
          since = 0;
          await new Promise<void>((r) => setImmediate(r));
          if (this.closed) throw new Error('storage closed during a block write');
        }
        const it = s.iterator();
        buf.n = 0;
        while (it.next()) {
          buf.ensure(buf.n + 1);
          buf.t[buf.n] = it.t;
          buf.v[buf.n] = it.v;
          buf.n++;
        }
        if (buf.n === 0) continue;
        const labelNames = Object.keys(s.labels).sort();
        const values = labelNames.map((n) => s.labels[n]!);
        raw.addSeries(labelNames, values, encodeColumn(buf.t, buf.v, buf.n, 0, out), buf.n);
        if (rollups) {
          for (let i = 0; i < tiers.length; i++) {
            const c = cols[i]!;
            c.reset();
            // The finest from the samples; each coarser one from the previous tier's windows when they nest.
            if (i > 0 && tiers[i]!.resolutionMs % tiers[i - 1]!.resolutionMs === 0)
              coarsen(cols[i - 1]!, tiers[i]!.resolutionMs, c);
            else
              aggregateSamples(
                buf.t,
                buf.v,
                buf.n,
                tiers[i]!.resolutionMs,
                Number.NEGATIVE_INFINITY,
                Number.POSITIVE_INFINITY,
                c,
              );
            if (c.n > 0) tierWriters[i]!.w!.addSeries(labelNames, values, encodeRollup(c, out), c.n);
          }
        }
      }
      // Rollups first: a raw block that says it is rolled up always has its rollups on disk.
      for (const tw of tierWriters) {
        if (tw.w!.seriesCount === 0) tw.w!.abort();
        else
          written.push(
            this.track(
              new BlockReader(
                finishPath(tw.w!, {
                  tier: tw.tier.name,
                  seq: tw.seq,
                  rolledUp: true,
                  level,
                  sources: [],
                }),
              ),
            ),
          );
      }
      if (raw.seriesCount === 0) raw.abort();
      else
        written.push(
          this.track(
            new BlockReader(
              finishPath(raw, {
                tier: 'raw',
                seq: rawSeq,
                rolledUp: names.length > 0,
                rollups: names,
                level,
                sources,
              }),
            ),
          ),
        );
      if (this.opts.fsync) syncDirSync(this.blocksDir);
      return written;
    } catch (err) {
      raw.abort();
      for (const tw of tierWriters) tw.w?.abort();
      for (const r of written) r.close();
      throw err;
    }
  }

  protected alignedRange(minT: number, maxT: number): [number, number] {
    const D = this.opts.blockDurationMs;
    return [Math.floor(minT / D) * D, Math.floor(maxT / D) * D + D - 1];
  }

  protected rangesOverlap(a: [number, number], b: [number, number]): boolean {
    return a[0] <= b[1] && b[0] <= a[1];
  }

  // --------------------------------------------------------------------------------------------------------
  // Maintenance: compaction, retention

  /** One pass: retention, then at most one compaction (so that a checkpoint never waits long). */
  protected async maintain(): Promise<void> {
    this.applyRetention();
    await this.compactOnce();
    if (this.opts.onBlocks) await this.opts.onBlocks(this.blocks);
  }

  protected applyRetention(): void {
    const now = this.now();
    const doomed = this.blocks.filter((b) => {
      const keep = this.opts.retentionMs[b.meta.tier];
      return keep > 0 && b.meta.maxT < now - keep;
    });
    if (doomed.length > 0) {
      this.removeBlocks(doomed);
      this.opts.logger.info(
        { blocks: doomed.map((b) => path.basename(b.path)) },
        'storage: retention deleted blocks',
      );
    }
  }

  protected removeBlocks(doomed: readonly BlockReader[]): void {
    const set = new Set(doomed);
    this.blocks = this.blocks.filter((b) => !set.has(b));
    for (const b of doomed) {
      unlinkSync(b.path);
      // Queries that selected this block may still read it; the open descriptor keeps the data readable.
      setTimeout(() => b.close(), DELETED_BLOCK_GRACE_MS).unref();
    }
  }

  /** Plans and runs one compaction; returns whether one ran. */
  async compactOnce(): Promise<boolean> {
    for (const tier of ['raw', ...this.tiers.map((t) => t.name)] as TierName[]) {
      const blocks = this.blocks.filter((b) => b.meta.tier === tier);
      // 1. Overlapping blocks (late data, or a crash between cut and log rotation): merge them all.
      const group = this.overlapGroup(blocks);
      if (group) {
        await this.compact(tier, group, Math.max(...group.map((b) => b.meta.level)));
        return true;
      }
      // 2. Adjacent blocks inside one aligned range of the next level, once the head has moved past it.
      const D = this.opts.blockDurationMs;
      for (let level = 1; level <= this.maxLevel[tier]; level++) {
        const range = D * LEVEL_FACTORS[level]!;
        const byWindow = new Map<number, BlockReader[]>();
        for (const b of blocks) {
          if (b.meta.level >= level) continue;
          const w = Math.floor(b.meta.minT / range) * range;
          if (b.meta.maxT >= w + range) continue;
          if (w + range > this.cutBoundary) continue;
          const list = byWindow.get(w) ?? [];
          list.push(b);
          byWindow.set(w, list);
        }
        for (const [w, list] of byWindow) {
          // Two or more to join; or one raw block that tiers new at this level can be computed for.
          if (list.length < 2 && !(tier === 'raw' && this.missingTiers(list[0]!, w, w + range - 1))) continue;
          await this.compact(tier, list, level, [w, w + range - 1]);
          return true;
        }
      }
    }
    return false;
  }

  /** Whether raw block `b`, alone in the level window [lo, hi], lacks tiers that window could carry. */
  protected missingTiers(b: BlockReader, lo: number, hi: number): boolean {
    const has = this.tiersOf(b);
    return this.tiersFor(lo, hi).some((t) => !has.has(t.name));
  }

  protected overlapGroup(blocks: readonly BlockReader[]): BlockReader[] | undefined {
    const sorted = [...blocks].sort((a, b) => a.meta.minT - b.meta.minT);
    for (let i = 0; i < sorted.length; i++) {
      let range = this.alignedRange(sorted[i]!.meta.minT, sorted[i]!.meta.maxT);
      const group = [sorted[i]!];
      for (let j = i + 1; j < sorted.length; j++) {
        const r = this.alignedRange(sorted[j]!.meta.minT, sorted[j]!.meta.maxT);
        if (!this.rangesOverlap(range, r)) continue;
        group.push(sorted[j]!);
        range = [Math.min(range[0], r[0]), Math.max(range[1], r[1])];
      }
      if (group.length > 1) return group;
    }
    return undefined;
  }

  /**
   * Merges `inputs` (one tier) into one block at `level`, then deletes them. `window`: the aligned range of
   * the level they are joined into (absent when merging overlapping blocks).
   */
  protected async compact(
    tier: TierName,
    inputs: BlockReader[],
    level: number,
    window?: [number, number],
  ): Promise<void> {
    inputs.sort((a, b) => a.meta.seq - b.meta.seq);
    const started = Date.now();
    // Series of every input, merged in sort order.
    const byKey = new Map<string, { labels: LabelSet; parts: { block: BlockReader; id: number }[] }>();
    for (const b of inputs) {
      const idx = b.index();
      for (let id = 0; id < idx.seriesCount; id++) {
        const { names, values } = idx.labels(id);
        const key = seriesSortKey(names, values);
        let e = byKey.get(key);
        if (!e) {
          e = { labels: idx.labelSet(id), parts: [] };
          byKey.set(key, e);
        }
        e.parts.push({ block: b, id });
      }
    }
    const keys = [...byKey.keys()].sort();
    const sources = inputs.map((b) => b.meta.seq);
    if (tier === 'raw') {
      // Rollups are (re)computed only where no other raw block holds data of the same windows.
      const merged = this.alignedRange(
        Math.min(...inputs.map((b) => b.meta.minT)),
        Math.max(...inputs.map((b) => b.meta.maxT)),
      );
      const range = window ?? merged;
      const others = this.blocks.filter((b) => b.meta.tier === 'raw' && !inputs.includes(b));
      const clear = !others.some((b) =>
        this.rangesOverlap(range, this.alignedRange(b.meta.minT, b.meta.maxT)),
      );
      const joining = window !== undefined && this.overlapGroup(inputs) === undefined;
      // Joining adjacent blocks keeps the tiers every one of them has (their rollups exist) and computes the
      // tiers the joined range newly allows (1 h windows once 10-min blocks make an hour); merging overlapping
      // ones recomputes every tier of the merged range.
      let inherited: TierName[] = [];
      if (joining) {
        const sets = inputs.map((b) => this.tiersOf(b));
        inherited = this.tiers.map((t) => t.name).filter((n) => sets.every((x) => x.has(n)));
      }
      const compute = clear
        ? this.tiersFor(range[0], range[1]).filter((t) => !inherited.includes(t.name))
        : [];
      const series = keys.map((k) => {
        const e = byKey.get(k)!;
        return {
          labels: e.labels,
          iterator: () =>
            new MergeIterator(e.parts.map((p) => new BlockIterator(p.block, p.id, 0, -Infinity, Infinity))),
        };
      });
      // Yield once so the event loop breathes between planning and writing.
      await new Promise<void>((r) => setImmediate(r));
      const written = await this.writeRaw(series, level, sources, compute, inherited);
      this.blocks.push(...written);
    } else {
      const seq = this.nextSeq++;
      const w = new BlockWriter(path.join(this.blocksDir, `${tier}-${seq}.twb`));
      const out = new ByteWriter(1 << 14);
      const cols = new RollupColumns();
      try {
        for (const k of keys) {
          const e = byKey.get(k)!;
          const its = Array.from(
            { length: AGG_COLUMNS },
            (_, c) =>
              new MergeIterator(e.parts.map((p) => new BlockIterator(p.block, p.id, c, -Infinity, Infinity))),
          );
          cols.reset();
          while (its.every((it) => it.next()))
            cols.push(its[0]!.t, its[0]!.v, its[1]!.v, its[2]!.v, its[3]!.v, its[4]!.v);
          if (cols.n === 0) continue;
          const names = Object.keys(e.labels).sort();
          w.addSeries(
            names,
            names.map((n) => e.labels[n]!),
            encodeRollup(cols, out),
            cols.n,
          );
        }
        if (w.seriesCount === 0) w.abort();
        else
          this.blocks.push(
            this.track(new BlockReader(finishPath(w, { tier, seq, rolledUp: true, level, sources }))),
          );
        if (this.opts.fsync) syncDirSync(this.blocksDir);
      } catch (err) {
        w.abort();
        throw err;
      }
    }
    this.sortBlocks();
    this.removeBlocks(inputs);
    this.opts.logger.info(
      { tier, inputs: sources, level, ms: Date.now() - started },
      'storage: compacted blocks',
    );
  }
}
