import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import { LabelMatcher } from '../model/labels.js';
import type { SelectHints } from './storage.js';
import { MemoryStorage, Tsdb, type TsdbOptions } from './tsdb.js';

const logger = pino({ level: 'silent' });
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tw-tsdb-'));
const name = (n: string) => new LabelMatcher('=', '__name__', n);

function open(dir: string, over: Partial<TsdbOptions> = {}) {
  return Tsdb.open({
    dir,
    blockDurationMs: 60_000,
    outOfOrderWindowMs: 3_600_000,
    retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
    fsync: false,
    blockCacheBytes: 1 << 20,
    logger,
    ...over,
  });
}

function batch(series: Record<string, string>, samples: [number, number][]) {
  const b = new SeriesBatchBuilder();
  b.addSeries(series);
  for (const [t, v] of samples) b.add(t, v);
  return b.build();
}

function read(
  db: Tsdb,
  metric: string,
  tenant: string | null = 't',
  minT = -1e15,
  maxT = 1e15,
  hints?: SelectHints,
) {
  return db
    .localQuerier(tenant, minT, maxT)
    .select([name(metric)], hints)
    .map((s) => {
      const it = s.iterator();
      const t: number[] = [];
      // Values stay in a typed array: plain arrays may canonicalise NaN payloads (model/batch.ts).
      const v = new Float64Array(1 << 12);
      while (it.next()) {
        v[t.length] = it.v;
        t.push(it.t);
      }
      return {
        labels: s.labels,
        t,
        v: Array.from(v.subarray(0, t.length)),
        bits: Array.from(v.subarray(0, t.length), bits),
        res: s.resolutionMs,
      };
    });
}

function bits(v: number) {
  const d = new DataView(new ArrayBuffer(8));
  d.setFloat64(0, v);
  return d.getBigUint64(0);
}

describe('tsdb in memory', () => {
  it('returns series in Prometheus order, scoped to the tenant whatever the batch said', async () => {
    const db = new MemoryStorage();
    db.appender.append('t1', batch({ __name__: 'm', b: '2', tenant: 'evil' }, [[1, 1]]));
    db.appender.append('t1', batch({ __name__: 'm', a: '1' }, [[1, 1]]));
    db.appender.append('t1', batch({ __name__: 'm', b: '10' }, [[1, 1]]));
    db.appender.append('t2', batch({ __name__: 'm', a: '1' }, [[1, 9]]));
    const got = read(db, 'm', 't1').map((s) => s.labels);
    expect(got).toEqual([
      { __name__: 'm', a: '1', tenant: 't1' },
      { __name__: 'm', b: '10', tenant: 't1' },
      { __name__: 'm', b: '2', tenant: 't1' },
    ]);
    expect(read(db, 'm', 'evil')).toEqual([]);
    expect(read(db, 'm', null)).toHaveLength(4);
    expect(db.activeSeries('t1')).toBe(3);
  });

  it('lists label names and values of the tenant, narrowed by matchers, from head and blocks', async () => {
    const db = await open(tmp());
    db.appender.append('a', batch({ __name__: 'up', job_id: 'j1', gpu: '0' }, [[1000, 1]]));
    db.appender.append('a', batch({ __name__: 'up', job_id: 'j2' }, [[1000, 1]]));
    db.appender.append('a', batch({ __name__: 'loss', job_id: 'j3', rank: '0' }, [[1000, 1]]));
    db.appender.append('b', batch({ __name__: 'up', job_id: 'secret', zone: 'x' }, [[1000, 1]]));
    // Cut the first ones into a block; then one more series in the head.
    db.appender.append('a', batch({ __name__: 'up', job_id: 'j4' }, [[400_000, 1]]));
    await db.checkpoint(new Map([[0, 1]]));
    expect(db.listBlocks().some((m) => m.tier === 'raw')).toBe(true);
    const q = db.localQuerier('a', 0, 1e9);
    expect(q.labelValues('job_id')).toEqual(['j1', 'j2', 'j3', 'j4']);
    expect(q.labelValues('job_id', [name('up')])).toEqual(['j1', 'j2', 'j4']);
    expect(q.labelNames()).toEqual(['__name__', 'gpu', 'job_id', 'rank', 'tenant']);
    expect(q.labelNames([name('up')])).toEqual(['__name__', 'gpu', 'job_id', 'tenant']);
    expect(db.localQuerier('a', 300_000, 1e9).labelValues('job_id')).toEqual(['j4']);
    expect(db.localQuerier(null, 0, 1e9).labelValues('tenant')).toEqual(['a', 'b']);
    await db.close();
  });

  it('evaluates =, !=, =~ and !~ (anchored, missing label = empty)', () => {
    const db = new MemoryStorage();
    for (const gpu of ['0', '1', '2', '10']) db.appender.append('t', batch({ __name__: 'g', gpu }, [[1, 1]]));
    db.appender.append('t', batch({ __name__: 'g' }, [[1, 1]]));
    const sel = (...m: LabelMatcher[]) =>
      db
        .localQuerier('t', 0, 10)
        .select([name('g'), ...m])
        .map((s) => s.labels.gpu ?? '-');
    expect(sel(new LabelMatcher('=', 'gpu', '1'))).toEqual(['1']);
    // Prometheus order: {gpu="0"} sorts before the series without gpu (gpu < tenant).
    expect(sel(new LabelMatcher('!=', 'gpu', '1'))).toEqual(['0', '10', '2', '-']);
    expect(sel(new LabelMatcher('=~', 'gpu', '1'))).toEqual(['1']); // anchored: not 10
    expect(sel(new LabelMatcher('=~', 'gpu', '1.*'))).toEqual(['1', '10']);
    expect(sel(new LabelMatcher('!~', 'gpu', '1.*'))).toEqual(['0', '2', '-']);
    expect(sel(new LabelMatcher('=', 'gpu', ''))).toEqual(['-']);
    expect(sel(new LabelMatcher('=~', 'gpu', '.+'))).toEqual(['0', '1', '10', '2']);
  });
});

describe('tsdb: out of order, duplicates, staleness', () => {
  it('merges out-of-order samples, stores identical ones once, and lets the last write win', async () => {
    const db = new MemoryStorage();
    const st = await db.appender.append(
      't',
      batch({ __name__: 'm' }, [
        [30, 3],
        [10, 1],
        [20, 2],
        [20, 2],
        [10, 1.5],
        [30, 3],
      ]),
    );
    expect(st).toEqual({ series: 1, samples: 4, duplicates: 2 });
    expect(read(db, 'm')[0]).toMatchObject({ t: [10, 20, 30], v: [1.5, 2, 3] });
    // Overwrite the newest sample's value: last write wins there too.
    db.appender.append('t', batch({ __name__: 'm' }, [[30, 4]]));
    expect(read(db, 'm')[0]!.v).toEqual([1.5, 2, 4]);
  });

  it('refuses samples older than the out-of-order window', async () => {
    const db = await open(tmp(), { outOfOrderWindowMs: 1000 });
    const st = await db.appender.append(
      't',
      batch({ __name__: 'm' }, [
        [10_000, 1],
        [9500, 2],
        [8000, 3],
      ]),
    );
    expect(st.samples).toBe(2);
    expect(read(db, 'm')[0]!.t).toEqual([9500, 10_000]);
    await db.close();
  });

  it('keeps merging correctly when late data lands in a range already cut into a block', async () => {
    const dir = tmp();
    const db = await open(dir);
    const samples: [number, number][] = [];
    for (let t = 0; t < 300_000; t += 1000) samples.push([t, t / 1000]);
    db.appender.append('t', batch({ __name__: 'm' }, samples));
    await db.checkpoint(new Map([[0, 1]]));
    expect(db.listBlocks().some((b) => b.tier === 'raw')).toBe(true);
    // Late: inside the cut range, one new timestamp, one overwrite, one exact duplicate.
    db.appender.append(
      't',
      batch({ __name__: 'm' }, [
        [500, -1],
        [2000, 99],
        [3000, 3],
      ]),
    );
    const expected = samples.map(([t, v]) => [t, t === 2000 ? 99 : v]);
    expected.splice(1, 0, [500, -1]);
    const check = () => {
      const [s] = read(db, 'm');
      expect(s!.t.map((t, i) => [t, s!.v[i]])).toEqual(expected);
    };
    check();
    // Cut again: the late samples form an overlapping block; compaction merges it; answers stay the same.
    db.appender.append('t', batch({ __name__: 'm' }, [[600_000, 1]]));
    expected.push([600_000, 1]);
    await db.checkpoint(new Map([[0, 2]]));
    check();
    for (let i = 0; i < 5 && (await db.compactOnce()); i++);
    check();
    await db.close();
  });

  it('stores staleness markers and every NaN payload bit-exactly, through blocks and restarts', async () => {
    const dir = tmp();
    let db = await open(dir);
    const weird = new DataView(new ArrayBuffer(8));
    weird.setBigUint64(0, 0x7ff8dead0000beefn);
    const payloadNaN = weird.getFloat64(0);
    // Built straight into the batch's typed arrays: a plain JS array would canonicalise the NaNs.
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 's' }).add(1000, 1).add(2000, STALE_NAN).add(3000, payloadNaN).add(4000, -0);
    db.appender.append('t', b.build());
    await db.checkpoint(new Map([[0, 5]]));
    await db.close();
    db = await open(dir);
    const [s] = read(db, 's');
    expect(s!.t).toEqual([1000, 2000, 3000, 4000]);
    expect(s!.bits).toEqual([bits(1), bits(STALE_NAN), bits(payloadNaN), bits(-0)]);
    await db.close();
  });
});

describe('tsdb: durability', () => {
  it('reopens with every checkpointed sample and the covered bus positions', async () => {
    const dir = tmp();
    let db = await open(dir);
    const rows: [number, number][] = [];
    for (let i = 0; i < 2000; i++) {
      const t = i * 500;
      db.appender.append('t', batch({ __name__: 'm', k: String(i % 7) }, [[t, i]]));
      rows.push([t, i]);
      if (i % 300 === 0) await db.checkpoint(new Map([[3, i]]));
    }
    await db.checkpoint(new Map([[3, 2000]]));
    const before = read(db, 'm');
    // Reopen as after a crash (the log is a snapshot and a chain of deltas, chunks sealed across them), then
    // after a clean close (one snapshot).
    const crashed = await open(dir);
    expect(crashed.coveredPositions().get(3)).toBe(2000);
    expect(read(crashed, 'm')).toEqual(before);
    await crashed.close();
    db = await open(dir);
    expect(db.coveredPositions().get(3)).toBe(2000);
    expect(read(db, 'm')).toEqual(before);
    expect(before.reduce((n, s) => n + s.t.length, 0)).toBe(2000);
    await db.close();
  });

  it('keeps sealed head chunks on disk, not in memory, and reads them back exactly', async () => {
    const dir = tmp();
    let db = await open(dir, { blockDurationMs: 3_600_000 });
    const samples: [number, number][] = [];
    for (let i = 0; i < 1000; i++) samples.push([i * 1000, Math.sin(i) * 1e6]);
    db.appender.append('t', batch({ __name__: 'sp' }, samples));
    await db.checkpoint(new Map([[0, 1]]));
    const sealed = db.head.sealedOf(0);
    expect(sealed.length).toBeGreaterThanOrEqual(8);
    expect(sealed.every((c) => c.bytes === undefined && c.file !== undefined)).toBe(true);
    const expectSamples = (d: Tsdb) => {
      const [s] = read(d, 'sp');
      expect(s!.t).toEqual(samples.map(([t]) => t));
      expect(s!.v).toEqual(samples.map(([, v]) => v));
    };
    expectSamples(db);
    // A cut moves the older chunks into a block and the rest into a fresh spill file.
    db.appender.append('t', batch({ __name__: 'sp' }, [[3_600_000 + 1_000_000, 1]]));
    samples.push([3_600_000 + 1_000_000, 1]);
    await db.checkpoint(new Map([[0, 2]]));
    expectSamples(db);
    // After a crash the spill files are dropped and the chunks come back from the head log.
    db = await open(dir, { blockDurationMs: 3_600_000 });
    expectSamples(db);
    expect(readdirSync(path.join(dir, 'head')).filter((f) => f.startsWith('spill-'))).toHaveLength(1);
    await db.close();
  });

  it('after a cut, keeps in the head log only what the head still holds, not the chunks the block took', async () => {
    const dir = tmp();
    const db = await open(dir, { blockDurationMs: 60_000 });
    const fileBytes = (sub: string, re: RegExp) =>
      readdirSync(path.join(dir, sub))
        .filter((f) => re.test(f))
        .reduce((a, f) => a + statSync(path.join(dir, sub, f)).size, 0);
    // 200 series, one sample a second for 150 s, a checkpoint every 5 s: one cut (of [0, 60 s)) once the
    // head's newest sample is half a block past the boundary; the log is compacted between checkpoints too.
    let offset = 0;
    for (let k = 0; k < 150; k++) {
      const b = new SeriesBatchBuilder();
      for (let s = 0; s < 200; s++)
        b.addSeries({ __name__: 'cut', s: String(s) }).add(k * 1000, Math.sin(k + s) * 1e3);
      db.appender.append('t', b.build());
      if (k % 5 === 4) await db.checkpoint(new Map([[0, ++offset]]));
    }
    const raw = fileBytes('blocks', /^raw-\d+\.twb$/);
    expect(
      db
        .listBlocks()
        .filter((b) => b.tier === 'raw')
        .map((b) => b.maxT),
    ).toEqual([59_000]);
    // The head holds 90 of the 150 s; its log holds those once (a snapshot, compressed), nothing of the block.
    const log = fileBytes('head', /\.log$/);
    expect(log).toBeLessThan(raw * (90 / 60) * 1.3);
    await db.close();
    const reopened = await open(dir, { blockDurationMs: 60_000 });
    const [first] = read(reopened, 'cut');
    expect(first!.t).toEqual(Array.from({ length: 150 }, (_, k) => k * 1000));
    await reopened.close();
  });

  it('truncates a torn head-log tail and opens with what the last complete checkpoint covered', async () => {
    const dir = tmp();
    let db = await open(dir, { blockDurationMs: 3_600_000 });
    db.appender.append('t', batch({ __name__: 'm' }, [[1, 1]]));
    await db.checkpoint(new Map([[0, 1]]));
    db.appender.append('t', batch({ __name__: 'm' }, [[2, 2]]));
    await db.checkpoint(new Map([[0, 2]]));
    // A crash: no close (a clean close would leave one compact snapshot instead).
    const logDir = path.join(dir, 'head');
    const file = path.join(logDir, readdirSync(logDir)[0]!);
    truncateSync(file, statSync(file).size - 3);
    db = await open(dir, { blockDurationMs: 3_600_000 });
    expect(db.coveredPositions().get(0)).toBe(1);
    expect(read(db, 'm')[0]!.t).toEqual([1]);
    // And it goes on appending after the cut.
    db.appender.append('t', batch({ __name__: 'm' }, [[2, 2]]));
    await db.checkpoint(new Map([[0, 2]]));
    await db.close();
    db = await open(dir, { blockDurationMs: 3_600_000 });
    expect(read(db, 'm')[0]!.t).toEqual([1, 2]);
    await db.close();
  });

  it('answers queries with every sample while a cut is being written, and after', async () => {
    const db = await open(tmp());
    const b = new SeriesBatchBuilder();
    for (let s = 0; s < 5000; s++) {
      b.addSeries({ __name__: 'c', s: String(s) });
      for (let t = 0; t < 100_000; t += 10_000) b.add(t, s + t);
    }
    db.appender.append('t', b.build());
    const late = new SeriesBatchBuilder();
    late.addSeries({ __name__: 'c', s: 'marker' }).add(1_000_000, 1);
    db.appender.append('t', late.build());
    const count = () => read(db, 'c').reduce((n, s) => n + s.t.length, 0);
    expect(count()).toBe(50_001);
    let done = false;
    const cp = db.checkpoint(new Map([[0, 1]])).then(() => {
      done = true;
    });
    let observed = 0;
    while (!done) {
      expect(count()).toBe(50_001);
      observed++;
      await new Promise((r) => setImmediate(r));
    }
    await cp;
    expect(observed).toBeGreaterThan(1); // the cut yielded to the event loop while writing
    expect(db.listBlocks().some((m) => m.tier === 'raw' && m.series === 5000)).toBe(true);
    expect(count()).toBe(50_001);
    expect(db.activeSeries()).toBe(1);
    await db.close();
  });

  it('gives a clear error for a data directory it cannot write', async () => {
    // A file where the directory should be: refused even as root (permissions would not stop root).
    const dir = tmp();
    writeFileSync(path.join(dir, 'tsdb'), 'not a directory');
    await expect(open(path.join(dir, 'tsdb'))).rejects.toThrow(/cannot write to the data directory .*tsdb/);
  });

  it('stops accepting writes with a clear error when a write fails, and harms nothing stored', async () => {
    const dir = tmp();
    const db = await open(dir);
    db.appender.append(
      't',
      batch({ __name__: 'm' }, [
        [1000, 1],
        [2000, 2],
      ]),
    );
    await db.checkpoint(new Map([[0, 1]]));
    // The head-log directory becomes unusable (as a full or failing disk would make it); the next rotation fails.
    rmSync(path.join(dir, 'head'), { recursive: true });
    writeFileSync(path.join(dir, 'head'), '');
    db.appender.append('t', batch({ __name__: 'm' }, [[400_000, 3]]));
    await expect(db.checkpoint(new Map([[0, 2]]))).rejects.toThrow(/storage stopped accepting writes/);
    await expect(db.appender.append('t', batch({ __name__: 'm' }, [[500_000, 4]]))).rejects.toThrow(
      /storage stopped accepting writes.*resumes by itself/,
    );
    await expect(db.checkpoint(new Map([[0, 3]]))).rejects.toThrow(/stopped accepting writes/);
    // What was covered stays covered; reads go on.
    expect(db.coveredPositions().get(0)).toBe(1);
    expect(read(db, 'm')[0]!.t).toEqual([1000, 2000, 400_000]);
    await db.close();
  });

  it('resumes by itself once it can write again, and what it stores then survives a restart', async () => {
    const dir = tmp();
    const db = await open(dir, { writeProbeIntervalMs: 0 });
    db.appender.append('t', batch({ __name__: 'm' }, [[1000, 1]]));
    await db.checkpoint(new Map([[0, 1]]));
    rmSync(path.join(dir, 'head'), { recursive: true });
    writeFileSync(path.join(dir, 'head'), '');
    db.appender.append('t', batch({ __name__: 'm' }, [[400_000, 2]]));
    await expect(db.checkpoint(new Map([[0, 2]]))).rejects.toThrow(/storage stopped accepting writes/);
    expect(db.writeFailure).toBeDefined();
    // Space is back (here: the directory is usable again). No restart.
    rmSync(path.join(dir, 'head'));
    mkdirSync(path.join(dir, 'head'));
    expect(db.writeFailure).toBeUndefined();
    await db.appender.append('t', batch({ __name__: 'm' }, [[600_000, 3]]));
    await db.checkpoint(new Map([[0, 3]]));
    expect(db.coveredPositions().get(0)).toBe(3);
    await db.close();
    const again = await open(dir);
    expect(read(again, 'm')[0]!.t).toEqual([1000, 400_000, 600_000]);
    await again.close();
  });
});

describe('tsdb: rollups and retention', () => {
  const fill = (db: Tsdb, from: number, to: number) => {
    const s: [number, number][] = [];
    for (let t = from; t < to; t += 1000) s.push([t, Math.sin(t / 7000) * 100 + (t % 13)]);
    db.appender.append('t', batch({ __name__: 'r' }, s));
    return s;
  };

  it('answers range functions from the coarsest tier that fits the step, exactly, joining stored and fresh windows', async () => {
    const dir = tmp();
    const db = await open(dir);
    const raw = fill(db, 0, 900_000);
    await db.checkpoint(new Map([[0, 1]]));
    for (let i = 0; i < 10 && (await db.compactOnce()); i++);
    expect(db.listBlocks().some((b) => b.tier === '1m')).toBe(true);
    expect(db.chooseTier({ func: 'max_over_time', stepMs: 300_000, rangeMs: 60_000 })?.name).toBe('1m');
    expect(db.chooseTier({ func: 'max_over_time', stepMs: 30_000, rangeMs: 30_000 })?.name).toBe('10s');
    expect(db.chooseTier({ func: 'rate', stepMs: 300_000, rangeMs: 60_000 })).toBeUndefined();
    expect(db.chooseTier({ func: 'max_over_time', stepMs: 5000, rangeMs: 5000 })).toBeUndefined();
    for (const [func, agg] of [
      ['max_over_time', (xs: number[]) => Math.max(...xs)],
      ['min_over_time', (xs: number[]) => Math.min(...xs)],
      ['count_over_time', (xs: number[]) => xs.length],
      ['avg_over_time', (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length],
    ] as const) {
      const [s] = read(db, 'r', 't', 0, 899_999, { func, stepMs: 60_000, rangeMs: 60_000 });
      expect(s!.res).toBe(60_000);
      expect(s!.t).toHaveLength(15);
      s!.t.forEach((t, i) => {
        const window = raw.filter(([x]) => x > t - 60_000 && x <= t).map(([, v]) => v);
        expect(s!.v[i]).toBeCloseTo(agg(window), 9);
      });
    }
    await db.close();
  });

  it('with 10-minute blocks, computes the hour tier when an hour of blocks is joined, and answers from it', async () => {
    const dir = tmp();
    const db = await open(dir, { blockDurationMs: 600_000 });
    const H = 3_600_000;
    // Two hours and a quarter, appended in 10-minute steps with a checkpoint each (a cut every 10 minutes).
    const raw: [number, number][] = [];
    for (let from = 0; from < 2 * H + 900_000; from += 600_000) {
      raw.push(...fill(db, from, from + 600_000));
      await db.checkpoint(new Map([[0, from]]));
    }
    for (let i = 0; i < 40 && (await db.compactOnce()); i++);
    expect(db.tiers.map((t) => t.name)).toEqual(['10s', '1m', '1h']);
    const rawBlocks = db.blockReaders().filter((b) => b.meta.tier === 'raw');
    // The two full hours were joined into level-1 blocks that carry the hour tier; later ranges do not yet.
    const hourly = rawBlocks.filter((b) => b.meta.level === 1);
    expect(hourly.map((b) => [b.meta.minT, b.meta.maxT])).toEqual([
      [0, H - 1000],
      [H, 2 * H - 1000],
    ]);
    for (const b of hourly) expect([...db.tiersOf(b)]).toEqual(['10s', '1m', '1h']);
    expect(db.listBlocks().filter((b) => b.tier === '1h').length).toBeGreaterThan(0);
    expect(db.chooseTier({ func: 'sum_over_time', stepMs: H, rangeMs: H })?.name).toBe('1h');
    const [s] = read(db, 'r', 't', 0, 2 * H + 899_999, { func: 'sum_over_time', stepMs: H, rangeMs: H });
    expect(s!.res).toBe(H);
    // The stored hours and the last quarter aggregated from raw data, each exact.
    expect(s!.t).toEqual([H - 1, 2 * H - 1, 3 * H - 1]);
    s!.t.forEach((t, i) => {
      const window = raw.filter(([x]) => x > t - H && x <= Math.min(t, 2 * H + 899_999)).map(([, v]) => v);
      expect(s!.v[i]).toBeCloseTo(
        window.reduce((a, b) => a + b, 0),
        6,
      );
    });
    await db.close();
  });

  it('answers each series from the rollups up to its own head data: a late sample re-aggregates only its series', async () => {
    const dir = tmp();
    const db = await open(dir);
    const rawA = fill(db, 0, 600_000);
    const b: [number, number][] = [];
    for (let t = 0; t < 600_000; t += 1000) b.push([t, 1]);
    db.appender.append('t', batch({ __name__: 'r', s: 'b' }, b));
    await db.checkpoint(new Map([[0, 1]]));
    for (let i = 0; i < 10 && (await db.compactOnce()); i++);
    // A late sample of series b, into a minute already cut and rolled up: it waits in b's head.
    db.appender.append('t', batch({ __name__: 'r', s: 'b' }, [[30_500, 100]]));
    const hints = {
      func: 'sum_over_time',
      stepMs: 60_000,
      rangeMs: 60_000,
      aggregates: ['sum', 'count'],
    } as const;
    const sel = db.localQuerier('t', 0, 599_999).select([name('r')], hints);
    expect(sel.map((s) => [s.labels.s, s.resolutionMs])).toEqual([
      ['b', 60_000],
      [undefined, 60_000],
    ]);
    const [SB, SA] = sel as [(typeof sel)[number], (typeof sel)[number]];
    const windows = (s: (typeof sel)[number]) => {
      const it = s.aggregates!();
      const out: [number, number, number][] = [];
      while (it.next()) out.push([it.t, it.sum, it.count]);
      return out;
    };
    expect(windows(SB)[0]).toEqual([59_999, 160, 61]);
    expect(
      windows(SB)
        .slice(1)
        .every(([, sum, n]) => sum === 60 && n === 60),
    ).toBe(true);
    windows(SA).forEach(([t, sum, n]) => {
      const w = rawA.filter(([x]) => x > t - 60_000 && x <= t).map(([, v]) => v);
      expect(n).toBe(w.length);
      expect(sum).toBeCloseTo(
        w.reduce((x, y) => x + y, 0),
        9,
      );
    });
    // min and max were not asked for: not read (NaN) where the windows come from the rollup blocks.
    const it = SA.aggregates!();
    expect(it.next() && Number.isNaN(it.min) && Number.isNaN(it.max)).toBe(true);
    await db.close();
  });

  it('deletes whole blocks past each tier’s retention and keeps the coarser tiers', async () => {
    const dir = tmp();
    let now = 1_000_000;
    const db = await open(dir, {
      now: () => now,
      retentionMs: { raw: 600_000, '10s': 0, '1m': 0, '1h': 0 },
    });
    fill(db, 0, 600_000);
    await db.checkpoint(new Map([[0, 1]]));
    expect(db.listBlocks().filter((b) => b.tier === 'raw').length).toBeGreaterThan(0);
    now = 2_000_000;
    fill(db, 1_400_000, 1_500_000);
    await db.checkpoint(new Map([[0, 2]]));
    const raw = db.listBlocks().filter((b) => b.tier === 'raw');
    expect(raw.every((b) => b.maxT >= now - 600_000)).toBe(true);
    expect(db.listBlocks().some((b) => b.tier === '1m' && b.maxT < 600_000)).toBe(true);
    // Old data is still answered from the rollups.
    const [s] = read(db, 'r', 't', 0, 599_999, { func: 'max_over_time', stepMs: 60_000, rangeMs: 60_000 });
    expect(s!.t).toHaveLength(10);
    await db.close();
  });
});
