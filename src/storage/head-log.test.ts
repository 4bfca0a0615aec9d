/**
 * Restarts of the storage: the head log recovered after graceful stops and crashes, in every format it was
 * ever written in, and — when a log does not fit together — recovered as far as it does, with the positions
 * truly covered so that the bus replay brings back the rest.
 *
 * The tests play the bus themselves: every batch appended is kept with its offset, checkpoints cover a prefix
 * of them, and after each restart the batches from `coveredPositions()` on are appended again, as the
 * processor does. The store must then hold exactly what was appended (last write wins per timestamp).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { brotliDecompressSync, crc32 } from 'node:zlib';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import { LabelMatcher } from '../model/labels.js';
import { Tsdb, type TsdbOptions } from './tsdb.js';

const H = 3_600_000;
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tw-headlog-'));
const TESTDATA = path.join(import.meta.dirname, 'testdata');

/** A logger whose lines the test can read. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

function open(dir: string, over: Partial<TsdbOptions> = {}) {
  return Tsdb.open({
    dir,
    blockDurationMs: H,
    outOfOrderWindowMs: H,
    retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
    fsync: false,
    blockCacheBytes: 1 << 20,
    logger: pino({ level: 'silent' }),
    ...over,
  });
}

const bitsOf = (() => {
  const f = new Float64Array(1);
  const u = new BigUint64Array(f.buffer);
  return (v: number) => {
    f[0] = v;
    return u[0]!;
  };
})();

/** Every sample of the tenant as `series → (t → value bits)`. */
function contents(db: Tsdb, tenant = 't'): Map<string, Map<number, bigint>> {
  const out = new Map<string, Map<number, bigint>>();
  for (const s of db
    .localQuerier(tenant, -(2 ** 49), 2 ** 49)
    .select([new LabelMatcher('=~', '__name__', '.+')])) {
    const m = new Map<number, bigint>();
    const it = s.iterator();
    while (it.next()) m.set(it.t, bitsOf(it.v));
    out.set(s.labels.__name__! + (s.labels.s ?? ''), m);
  }
  return out;
}

interface BusBatch {
  series: string[];
  t: number[];
  v: Float64Array;
}

/** The bus and what the store must hold: batches in offset order, the model of their samples. */
class Bus {
  readonly batches: BusBatch[] = [];
  readonly model = new Map<string, Map<number, bigint>>();

  /** Appends `samples` ([series, t, v]) as one batch (one bus record). */
  send(db: Tsdb, samples: [string, number, number][]): void {
    const v = new Float64Array(samples.length);
    samples.forEach((s, i) => {
      v[i] = s[2];
    });
    const batch: BusBatch = { series: samples.map((s) => s[0]), t: samples.map((s) => s[1]), v };
    this.batches.push(batch);
    for (let i = 0; i < v.length; i++) {
      let m = this.model.get(batch.series[i]!);
      if (!m) {
        m = new Map();
        this.model.set(batch.series[i]!, m);
      }
      m.set(batch.t[i]!, bitsOf(v[i]!));
    }
    this.apply(db, batch);
  }

  private apply(db: Tsdb, b: BusBatch): void {
    const builder = new SeriesBatchBuilder();
    // One series entry per run of equal names (order within a series is kept).
    let current = '';
    for (let i = 0; i < b.v.length; i++) {
      if (b.series[i] !== current) {
        current = b.series[i]!;
        builder.addSeries({ __name__: current.replace(/\d+$/, ''), s: current.replace(/^\D+/, '') });
      }
      builder.add(b.t[i]!, b.v[i]!);
    }
    db.appender.append('t', builder.build());
  }

  get position(): Map<number, number> {
    return new Map([[0, this.batches.length]]);
  }

  /** What the processor does after a restart: append every batch from the covered offset on. */
  replay(db: Tsdb): number {
    const from = db.coveredPositions().get(0) ?? 0;
    for (let i = from; i < this.batches.length; i++) this.apply(db, this.batches[i]!);
    return this.batches.length - from;
  }

  expectHeldBy(db: Tsdb, what: string): void {
    const got = contents(db);
    const problems: string[] = [];
    for (const [s, m] of this.model) {
      const g = got.get(s);
      for (const [t, bits] of m)
        if (g?.get(t) !== bits)
          problems.push(`${s}@${t}: want ${bits.toString(16)}, got ${g?.get(t)?.toString(16)}`);
    }
    for (const [s, g] of got)
      for (const t of g.keys()) if (!this.model.get(s)?.has(t)) problems.push(`${s}@${t}: extra`);
    expect(problems.slice(0, 10), `${what}: ${problems.length} differences`).toEqual([]);
  }
}

/** Records of a head-log file: [start, end) byte ranges (the 8-byte file header first). */
function records(file: string): { data: Buffer; ranges: [number, number][] } {
  const data = readFileSync(file);
  const ranges: [number, number][] = [];
  let pos = 8;
  while (pos + 8 <= data.length) {
    const end = pos + 8 + data.readUInt32LE(pos);
    if (end > data.length) break;
    ranges.push([pos, end]);
    pos = end;
  }
  return { data, ranges };
}

function headLogs(dir: string): string[] {
  return readdirSync(path.join(dir, 'head'))
    .filter((f) => !f.startsWith('spill-'))
    .sort();
}

describe('head log: restarts after graceful stops', () => {
  it('restarts after stop → start → one sample → stop → start, with head data in sealed and open chunks', async () => {
    const dir = tmp();
    const bus = new Bus();
    // 70 one-second samples per series across an hour boundary: chunks sealed at 120 samples and at the
    // boundary, the last one open; a checkpoint per 10 s, no cut (the head is not 15 min past the hour).
    const T = 100 * H - 40 * 60_000;
    let db = await open(dir);
    for (let k = 0; k < 300; k++) {
      bus.send(db, [
        ['gpu_util0', T + k * 1000, (k % 17) / 16],
        ['gpu_util1', T + k * 1000, 40 + Math.sin(k) * 3.3],
        ['loss0', T + k * 1000 + 7, k === 150 ? STALE_NAN : 1 / (k + 1)],
      ]);
      if (k % 10 === 9) await db.checkpoint(bus.position);
    }
    bus.send(db, [['gpu_util0', T + 250_500, 0.125]]); // out of order: lands in the out-of-order buffer
    await db.checkpoint(bus.position);
    await db.close();

    db = await open(dir);
    expect(db.recovery?.problems).toEqual([]);
    expect(bus.replay(db)).toBe(0);
    bus.expectHeldBy(db, 'after the first restart');
    // One live sample, then a graceful stop without another checkpoint (the closing snapshot holds it).
    bus.send(db, [['loss0', T + 3_000_000, 0.5]]);
    await db.close();

    db = await open(dir);
    expect(db.recovery?.problems).toEqual([]);
    bus.replay(db);
    bus.expectHeldBy(db, 'after the second restart');
    // Again, with a checkpoint after the sample, and a third restart.
    bus.send(db, [['loss0', T + 3_001_000, 0.25]]);
    await db.checkpoint(bus.position);
    await db.close();
    db = await open(dir);
    expect(db.recovery?.problems).toEqual([]);
    bus.replay(db);
    bus.expectHeldBy(db, 'after the third restart');
    await db.close();
  });

  it('keeps every sample through random interleavings of appends, checkpoints, cuts, stops and crashes', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      let rng = seed * 7919;
      const random = () => {
        rng = (rng * 1103515245 + 12345) % 2147483648;
        return rng / 2147483648;
      };
      const dir = tmp();
      const bus = new Bus();
      // One-minute blocks: cuts every few dozen batches; late samples land in already-cut ranges. The clock
      // moves 20 s a step: a checkpoint after two steps without appends finds the head idle and compacts.
      let clock = 0;
      const opts = { blockDurationMs: 60_000, now: () => clock };
      let db = await open(dir, opts);
      const next = [0, 0, 0, 0].map(() => 1_000_000_000_000);
      let pending: Promise<void>[] = [];
      for (let step = 0; step < 160; step++) {
        clock += 20_000;
        const x = random();
        if (x < 0.62) {
          const samples: [string, number, number][] = [];
          for (let s = 0; s < next.length; s++) {
            if (random() < 0.3) continue;
            const n = 1 + Math.floor(random() * 25);
            for (let k = 0; k < n; k++) {
              next[s]! += 1000;
              samples.push([`m${s}`, next[s]!, s === 3 ? Math.floor(random() * 4) : random() * 100]);
            }
            // Now and then a late sample or a new value for a stored timestamp (last write wins).
            if (random() < 0.2)
              samples.push([`m${s}`, next[s]! - 1000 * Math.floor(random() * 90) - 1, random()]);
            if (random() < 0.1) samples.push([`m${s}`, next[s]!, random()]);
          }
          if (samples.length > 0) bus.send(db, samples);
        } else if (x < 0.85) {
          // A checkpoint, sometimes left running while appends go on (as the processor's timer does).
          pending.push(db.checkpoint(bus.position));
          if (random() < 0.5) {
            await Promise.all(pending);
            pending = [];
          }
        } else {
          await Promise.all(pending);
          pending = [];
          // A graceful stop, or a crash: the instance is dropped without its closing snapshot.
          if (random() < 0.6) await db.close();
          db = await open(dir, opts);
          expect(db.recovery?.problems, `seed ${seed}, step ${step}`).toEqual([]);
          bus.replay(db);
          bus.expectHeldBy(db, `seed ${seed}, step ${step}`);
        }
      }
      await Promise.all(pending);
      await db.close();
      db = await open(dir, opts);
      bus.replay(db);
      bus.expectHeldBy(db, `seed ${seed}, end`);
      await db.close();
    }
  }, 120_000);
});

describe('head log: size', () => {
  it('never holds much more than one snapshot of the head, and exactly one once ingest pauses', async () => {
    const dir = tmp();
    const bus = new Bus();
    const logBytes = () => {
      let n = 0;
      for (const f of headLogs(dir)) n += readFileSync(path.join(dir, 'head', f)).length;
      return n;
    };
    // 400 series, one noisy sample each per checkpoint (as scrapes every second with a checkpoint each
    // second): every delta record repeats per-series framing that a snapshot holds once.
    const T = 100 * H;
    let clock = T;
    const db = await open(dir, { now: () => clock });
    let most = 0;
    let compacted = 0;
    for (let k = 0; k < 150; k++) {
      const samples: [string, number, number][] = [];
      for (let s = 0; s < 400; s++) samples.push([`m${s}`, T + k * 1000, 50 + Math.sin(k * 7 + s) * 13.37]);
      bus.send(db, samples);
      clock += 1000;
      const before = logBytes();
      await db.checkpoint(bus.position);
      if (logBytes() < before) compacted++;
      most = Math.max(most, logBytes());
    }
    expect(compacted).toBeGreaterThan(0);
    const steady = logBytes();
    // Nothing new for a few seconds (between two scrapes): no compaction, and no record either.
    clock += 10_000;
    await db.checkpoint(bus.position);
    expect(logBytes()).toBe(steady);
    expect(records(path.join(dir, 'head', headLogs(dir)[0]!)).ranges.length).toBeGreaterThan(1);
    // Ingest paused (nothing new for 30 s): the next checkpoint leaves one snapshot.
    clock += 30_000;
    await db.checkpoint(bus.position);
    const idle = logBytes();
    expect(headLogs(dir)).toHaveLength(1);
    const snapshot = records(path.join(dir, 'head', headLogs(dir)[0]!));
    expect(snapshot.ranges).toHaveLength(1);
    // Stored compressed (codec 1): label symbols, per-series framing and chunk headers repeat.
    expect(snapshot.data[16]).toBe(1);
    expect(idle).toBeLessThanOrEqual(steady);
    // The deltas never outgrew the snapshot by more than one checkpoint's record.
    expect(most).toBeLessThan(2.2 * idle);
    // Further checkpoints of the idle store (the processor's timer) write nothing.
    await db.checkpoint(bus.position);
    await db.checkpoint(bus.position);
    expect(logBytes()).toBe(idle);
    await db.close();
    expect(logBytes()).toBe(idle);
    const again = await open(dir);
    expect(again.recovery?.problems).toEqual([]);
    expect(bus.replay(again)).toBe(0);
    bus.expectHeldBy(again, 'after compactions and a restart');
    await again.close();
  });
});

describe('head log: series that come and go', () => {
  it('renumbers refs and drops dead symbols at cuts, keeping every sample through restarts', async () => {
    const dir = tmp();
    const bus = new Bus();
    const opts = { blockDurationMs: 60_000 };
    let db = await open(dir, opts);
    const maxRefs: number[] = [];
    const maxSymbols: number[] = [];
    // 30 generations of 40 series each, a generation living for two minutes of data; one steady series.
    let t = 1_000_000_000_000;
    for (let gen = 0; gen < 30; gen++) {
      for (let s = 0; s < 12; s++) {
        t += 10_000;
        const samples: [string, number, number][] = [['steady0', t, s]];
        for (let k = 0; k < 40; k++) samples.push([`churn${gen * 40 + k}`, t, gen + k / 100]);
        bus.send(db, samples);
        await db.checkpoint(bus.position);
      }
      maxRefs.push(db.head.nextRef);
      maxSymbols.push(db.head.symbols.size);
      if (gen % 7 === 6) {
        await db.close();
        db = await open(dir, opts);
        expect(db.recovery?.problems).toEqual([]);
        bus.replay(db);
      }
    }
    // Without renumbering, refs and symbols would grow with every generation (1200 series, 1200+ values).
    expect(Math.max(...maxRefs.slice(10))).toBeLessThan(200);
    expect(Math.max(...maxSymbols.slice(10))).toBeLessThan(200);
    bus.expectHeldBy(db, 'at the end');
    await db.close();
    db = await open(dir, opts);
    bus.replay(db);
    bus.expectHeldBy(db, 'after a last restart');
    await db.close();
  });
});

describe('head log: files of earlier formats', () => {
  // The generator: testdata/make-head-log-v1.mjs (keep value() in sync with it).
  const T0 = Math.floor(1_700_000_000_000 / H) * H + 50 * 60_000;
  // Bit patterns, not numbers: a signalling NaN such as the staleness marker may be quieted on its way
  // through plain JS values.
  const special = new Float64Array(6);
  special[0] = STALE_NAN;
  special[1] = -0;
  special[2] = Number.POSITIVE_INFINITY;
  special[3] = Number.NEGATIVE_INFINITY;
  special[4] = 5e-324;
  new DataView(special.buffer).setBigUint64(40, 0x7ff8000000000123n, true);
  const specialBits = new BigUint64Array(special.buffer);
  const valueBits = (s: string, i: number) =>
    s === 'a'
      ? bitsOf(i * 0.25)
      : s === 'b'
        ? i >= 100 && i < 106
          ? specialBits[i - 100]!
          : bitsOf(40 + Math.sin(i / 7) * 3.123456789)
        : bitsOf(1000 + i);

  it.each([
    ['2c48b73', 'sealed chunks without a from byte, 0 for never cut'],
    ['1719640', 'sealed chunks without a from byte'],
    ['37d6006', 'sealed chunks continuing bytes logged while open, version still 1'],
  ])(
    'recovers every sample of a version-1 log written by %s (%s) and rewrites it in the current version',
    async (commit) => {
      const dir = tmp();
      mkdirSync(path.join(dir, 'head'), { recursive: true });
      copyFileSync(
        path.join(TESTDATA, `head-log-v1-${commit}.twhl`),
        path.join(dir, 'head', '0000000001.log'),
      );
      let db = await open(dir);
      expect(db.recovery?.problems).toEqual([]);
      expect(db.recovery?.version).toBe(1);
      expect([...db.coveredPositions()]).toEqual([[0, 9]]);
      const check = (what: string) => {
        const got = db
          .localQuerier('fixture', 0, 2 ** 49)
          .select([new LabelMatcher('=~', '__name__', 'fixture_.')])
          .map((s) => {
            const it = s.iterator();
            const t: number[] = [];
            const bits: bigint[] = [];
            while (it.next()) {
              t.push(it.t);
              bits.push(bitsOf(it.v));
            }
            return { name: s.labels.__name__, t, bits };
          });
        const want = (s: string, is: number[]) => ({
          name: `fixture_${s}`,
          t: is.map((i) => T0 + i * 1000),
          bits: is.map((i) => valueBits(s, i)),
        });
        const all = Array.from({ length: 900 }, (_, i) => i);
        expect(got, what).toEqual([
          want('a', all),
          want('b', all),
          want(
            'c',
            all.filter((i) => i % 2 === 0 || i < 800),
          ),
        ]);
      };
      check('recovered');
      // Rewritten at once as a snapshot in the current version; nothing is ever appended to the old file.
      expect(headLogs(dir)).toEqual(['0000000002.log']);
      expect(readFileSync(path.join(dir, 'head', '0000000002.log')).readUInt32LE(4)).toBe(3);
      await db.checkpoint(new Map([[0, 9]]));
      await db.close();
      db = await open(dir);
      expect(db.recovery?.version).toBe(3);
      expect(db.recovery?.problems).toEqual([]);
      check('reopened');
      await db.close();
    },
  );

  it('recovers a version-2 log (payloads stored without a codec byte, uncompressed) and rewrites it in version 3', async () => {
    const dir = tmp();
    const bus = new Bus();
    const T = 60 * H;
    let db = await open(dir);
    for (let k = 0; k < 200; k++) {
      bus.send(db, [
        ['a0', T + k * 1000, Math.sin(k) * 100],
        ['b1', T + k * 1000 + 3, k],
      ]);
      if (k % 20 === 19) await db.checkpoint(bus.position);
    }
    bus.send(db, [['a0', T + 199_500, 0.5]]); // out of order
    await db.checkpoint(bus.position);
    // Crash (no closing snapshot), then rewrite the log as version 2 wrote it: the same payloads, stored as
    // they are, in a file of version 2.
    const [file] = headLogs(dir);
    const { data, ranges } = records(path.join(dir, 'head', file!));
    expect(ranges.length).toBeGreaterThan(1);
    const parts: Buffer[] = [Buffer.from('TWHL'), Buffer.alloc(4)];
    parts[1]!.writeUInt32LE(2);
    for (const [from, to] of ranges) {
      const stored = data.subarray(from + 8, to);
      const payload = stored[0] === 1 ? brotliDecompressSync(stored.subarray(1)) : stored.subarray(1);
      const head = Buffer.alloc(8);
      head.writeUInt32LE(payload.length, 0);
      head.writeUInt32LE(crc32(payload), 4);
      parts.push(head, Buffer.from(payload));
    }
    writeFileSync(path.join(dir, 'head', file!), Buffer.concat(parts));
    db = await open(dir);
    expect(db.recovery?.version).toBe(2);
    expect(db.recovery?.problems).toEqual([]);
    expect(bus.replay(db)).toBe(0);
    bus.expectHeldBy(db, 'from the version-2 log');
    const [rewritten] = headLogs(dir);
    expect(readFileSync(path.join(dir, 'head', rewritten!)).readUInt32LE(4)).toBe(3);
    await db.close();
    db = await open(dir);
    expect(db.recovery?.version).toBe(3);
    bus.expectHeldBy(db, 'after the rewrite');
    await db.close();
  });
});

describe('head log: a log that does not fit together', () => {
  /** A crashed store's log: a snapshot and one delta per batch, open chunks continued across deltas. */
  async function crashedLog(dir: string, bus: Bus) {
    const db = await open(dir);
    const T = 50 * H;
    for (let k = 0; k < 8; k++) {
      const samples: [string, number, number][] = [];
      for (let i = 0; i < 50; i++) {
        const t = T + (k * 50 + i) * 1000;
        samples.push(['job_loss0', t, 2 - t / 1e12], ['gpu_power1', t, 300 + ((k * 7 + i * 3) % 11)]);
      }
      bus.send(db, samples);
      await db.checkpoint(bus.position);
    }
    // Dropped without close: no closing snapshot.
    return path.join(dir, 'head', headLogs(dir)[0]!);
  }

  it('recovers everything that fits when a record is missing, names what did not, and replays from the positions before it', async () => {
    const dir = tmp();
    const bus = new Bus();
    const file = await crashedLog(dir, bus);
    // Take record 3 out: the records after it continue open chunks with bytes the log no longer holds.
    const { data, ranges } = records(file);
    expect(ranges.length).toBe(8);
    writeFileSync(file, Buffer.concat([data.subarray(0, ranges[3]![0]), data.subarray(ranges[3]![1])]));

    const { logger, lines } = capture();
    const db = await open(dir, { logger });
    const problems = db.recovery!.problems;
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]!.record).toBe(3);
    expect(
      problems.some((p) => /continues \d+ bytes of an open chunk the log does not hold/.test(p.what)),
    ).toBe(true);
    expect(problems.every((p) => /job_loss|gpu_power/.test(p.series ?? ''))).toBe(true);
    // Record 2 (which covers 3 batches) is the last before the first problem: the bus replays from there.
    expect([...db.coveredPositions()]).toEqual([[0, 3]]);
    expect([...db.recovery!.loggedPositions]).toEqual([[0, 8]]);
    const warning = lines.find((l) => l.includes('could not be recovered'));
    expect(warning).toBeDefined();
    expect(warning).toMatch(/job_loss|gpu_power/);
    // The damaged file is kept aside; the log restarted from a snapshot of what was recovered.
    expect(headLogs(dir)).toEqual(['0000000001.log.damaged', '0000000002.log']);
    expect(bus.replay(db)).toBe(5);
    bus.expectHeldBy(db, 'after the replay');
    await db.checkpoint(bus.position);
    await db.close();

    const again = await open(dir);
    expect(again.recovery!.problems).toEqual([]);
    bus.expectHeldBy(again, 'after another restart');
    await again.close();
  });

  it('drops a record whose symbols or series do not fit, and every record after it', async () => {
    const dir = tmp();
    const bus = new Bus();
    const file = await crashedLog(dir, bus);
    // Record 1 again after record 4: its chunks could not continue, and its frame (no new series) fits, so
    // corrupt the frame instead: a delta that declares a series ref already taken.
    const { data, ranges } = records(file);
    const snapshot = data.subarray(ranges[0]![0], ranges[0]![1]);
    // A second snapshot in the middle of a file is never written: it ends what can be trusted.
    writeFileSync(
      file,
      Buffer.concat([data.subarray(0, ranges[5]![0]), snapshot, data.subarray(ranges[5]![0])]),
    );
    const db = await open(dir);
    const problems = db.recovery!.problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]!.what).toMatch(
      /^record 5 at byte \d+ and the 3 after it: a snapshot after the first record/,
    );
    expect([...db.coveredPositions()]).toEqual([[0, 5]]);
    bus.replay(db);
    bus.expectHeldBy(db, 'after the replay');
    await db.close();
  });

  it('moves a log of a newer format aside and starts from the bus', async () => {
    const dir = tmp();
    const bus = new Bus();
    const file = await crashedLog(dir, bus);
    const data = readFileSync(file);
    data.writeUInt32LE(9, 4);
    writeFileSync(file, data);
    const { logger, lines } = capture();
    const db = await open(dir, { logger });
    expect(lines.some((l) => l.includes('written by a newer trainwatch'))).toBe(true);
    expect(headLogs(dir)).toContain('0000000001.log.v9');
    expect([...db.coveredPositions()]).toEqual([]);
    expect(bus.replay(db)).toBe(8);
    bus.expectHeldBy(db, 'after the replay');
    await db.close();
  });
});
