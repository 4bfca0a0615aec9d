import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskLogBus, type DiskLogOptions } from './disk-log.js';

const opened: DiskLogBus[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tw-bus-'));
}

interface LogLine {
  msg: string;
}

async function open(
  dir: string,
  extra: Partial<DiskLogOptions> = {},
  logs: LogLine[] = [],
): Promise<DiskLogBus> {
  const logger = pino({ level: 'warn' }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  const bus = await DiskLogBus.open({
    dir,
    partitions: 2,
    segmentBytes: 1 << 20,
    fsync: 'always',
    fsyncIntervalMs: 50,
    maxQueuedBytes: 8 << 20,
    logger,
    ...extra,
  });
  opened.push(bus);
  return bus;
}

const rec = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Keys that land in partition 0 and 1 of a 2-partition bus. */
function keysByPartition(bus: DiskLogBus): [string, string] {
  let k0: string | undefined;
  let k1: string | undefined;
  for (let i = 0; (!k0 || !k1) && i < 1000; i++) {
    const k = `job-${i}`;
    if (bus.partitionOf(k) === 0) k0 ??= k;
    else k1 ??= k;
  }
  return [k0!, k1!];
}

describe('disk-log bus', () => {
  it('assigns dense offsets per partition and reads them back in order', async () => {
    const bus = await open(tempDir());
    const [k0, k1] = keysByPartition(bus);
    const results = await Promise.all([
      bus.append(k0, rec('a')),
      bus.append(k1, rec('x')),
      bus.append(k0, rec('b')),
      bus.append(k0, rec('c')),
    ]);
    expect(results).toEqual([
      { partition: 0, offset: 0 },
      { partition: 1, offset: 0 },
      { partition: 0, offset: 1 },
      { partition: 0, offset: 2 },
    ]);
    expect((await bus.read(0, 0, 1 << 20)).map((e) => [e.offset, text(e.record)])).toEqual([
      [0, 'a'],
      [1, 'b'],
      [2, 'c'],
    ]);
    expect((await bus.read(0, 1, 1 << 20)).map((e) => text(e.record))).toEqual(['b', 'c']);
    expect(await bus.read(0, 3, 1 << 20)).toEqual([]);
    expect(bus.endOffset(0)).toBe(3);
  });

  it('keeps everything across a reopen, including commits', async () => {
    const dir = tempDir();
    const bus = await open(dir);
    const [k0] = keysByPartition(bus);
    for (let i = 0; i < 100; i++) await bus.append(k0, rec(`r${i}`));
    await bus.commit('processor', 0, 42);
    await bus.close();
    const again = await open(dir);
    expect(again.endOffset(0)).toBe(100);
    expect(again.committed('processor', 0)).toBe(42);
    const all = await again.read(0, 0, 1 << 20);
    expect(all.map((e) => text(e.record))).toEqual(Array.from({ length: 100 }, (_, i) => `r${i}`));
    expect((await again.append(k0, rec('next'))).offset).toBe(100);
  });

  it('rolls segments, reads across them, and drops whole segments below a position', async () => {
    const dir = tempDir();
    const bus = await open(dir, { segmentBytes: 64 << 10 });
    const [k0] = keysByPartition(bus);
    const payload = 'x'.repeat(10_000);
    for (let i = 0; i < 40; i++) await bus.append(k0, rec(`${i}:${payload}`));
    const segments = () => readdirSync(path.join(dir, 'p-000')).filter((f) => f.endsWith('.seg'));
    expect(segments().length).toBeGreaterThan(4);
    const got: number[] = [];
    for (let from = 0; from < 40; ) {
      const batch = await bus.read(0, from, 50_000);
      expect(batch.length).toBeGreaterThan(0);
      for (const e of batch) got.push(Number(text(e.record).split(':')[0]));
      from = batch[batch.length - 1]!.offset + 1;
    }
    expect(got).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await bus.truncateBefore(0, 20);
    expect(bus.startOffset(0)).toBeGreaterThan(0);
    expect(bus.startOffset(0)).toBeLessThanOrEqual(20);
    const rest = await bus.read(0, 0, 1 << 22);
    expect(rest[0]!.offset).toBe(bus.startOffset(0));
    expect(rest[rest.length - 1]!.offset).toBe(39);
  });

  it('deletes what a commit covers without waiting for the active segment to fill', async () => {
    const dir = tempDir();
    const bus = await open(dir, { segmentBytes: 64 << 20, rollCoveredBytes: 64 << 10 });
    const [k0] = keysByPartition(bus);
    const payload = 'x'.repeat(10_000);
    const segBytes = () =>
      readdirSync(path.join(dir, 'p-000'))
        .filter((f) => f.endsWith('.seg'))
        .reduce((a, f) => a + statSync(path.join(dir, 'p-000', f)).size, 0);
    for (let i = 0; i < 20; i++) await bus.append(k0, rec(`${i}:${payload}`));
    // Covers about 150 KB of the one 64 MiB segment: it is closed, and goes once a commit covers its end.
    await bus.truncateBefore(0, 15);
    expect(bus.startOffset(0)).toBe(0);
    for (let i = 20; i < 25; i++) await bus.append(k0, rec(`${i}:${payload}`));
    await bus.truncateBefore(0, 20);
    expect(bus.startOffset(0)).toBe(20);
    expect(segBytes()).toBeLessThan(6 * 10_100);
    expect((await bus.read(0, 0, 1 << 22)).map((e) => e.offset)).toEqual([20, 21, 22, 23, 24]);
    // A commit that covers everything leaves no record on disk; offsets go on where they were.
    await bus.truncateBefore(0, 25);
    expect(bus.startOffset(0)).toBe(25);
    expect(bus.endOffset(0)).toBe(25);
    expect(segBytes()).toBe(8);
    expect(await bus.read(0, 0, 1 << 22)).toEqual([]);
    // A small covered part of the active segment is kept: no roll per commit for a trickle of records.
    await bus.append(k0, rec('25:small'));
    await bus.append(k0, rec('26:small'));
    await bus.truncateBefore(0, 26);
    expect(bus.startOffset(0)).toBe(25);
    expect((await bus.append(k0, rec('27:small'))).offset).toBe(27);
    await bus.close();
    const again = await open(dir);
    expect(again.startOffset(0)).toBe(25);
    expect(again.endOffset(0)).toBe(28);
    expect((await again.read(0, 25, 1 << 20)).map((e) => text(e.record))).toEqual([
      '25:small',
      '26:small',
      '27:small',
    ]);
  });

  it('cuts a torn tail at open with a warning, keeping every good record before it', async () => {
    const dir = tempDir();
    const bus = await open(dir);
    const [k0] = keysByPartition(bus);
    for (let i = 0; i < 10; i++) await bus.append(k0, rec(`good-${i}`));
    await bus.close();
    const seg = path.join(
      dir,
      'p-000',
      readdirSync(path.join(dir, 'p-000')).find((f) => f.endsWith('.seg'))!,
    );
    // A record header promising 100 bytes, followed by only 3: a write interrupted by a crash.
    appendFileSync(seg, Buffer.from([100, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]));
    const logs: LogLine[] = [];
    const again = await open(dir, {}, logs);
    expect(logs.some((l) => /truncating it after its last good record/.test(l.msg))).toBe(true);
    expect(again.endOffset(0)).toBe(10);
    expect((await again.read(0, 0, 1 << 20)).map((e) => text(e.record))).toEqual(
      Array.from({ length: 10 }, (_, i) => `good-${i}`),
    );
    expect((await again.append(k0, rec('after'))).offset).toBe(10);
  });

  it('cuts at a record whose checksum does not match', async () => {
    const dir = tempDir();
    const bus = await open(dir);
    const [k0] = keysByPartition(bus);
    for (let i = 0; i < 5; i++) await bus.append(k0, rec(`r${i}`));
    await bus.close();
    const seg = path.join(
      dir,
      'p-000',
      readdirSync(path.join(dir, 'p-000')).find((f) => f.endsWith('.seg'))!,
    );
    const size = statSync(seg).size;
    // Flip the last byte of the last record's payload.
    const fd = await import('node:fs/promises').then((m) => m.open(seg, 'r+'));
    await fd.write(Buffer.from([0xff]), 0, 1, size - 1);
    await fd.close();
    const again = await open(dir);
    expect(again.endOffset(0)).toBe(4);
  });

  it('survives a segment truncated to nothing', async () => {
    const dir = tempDir();
    const bus = await open(dir);
    await bus.close();
    const seg = path.join(
      dir,
      'p-001',
      readdirSync(path.join(dir, 'p-001')).find((f) => f.endsWith('.seg'))!,
    );
    truncateSync(seg, 2);
    const again = await open(dir);
    const [, k1] = keysByPartition(again);
    expect((await again.append(k1, rec('fresh'))).offset).toBe(0);
  });

  it('refuses to reopen with a different partition count, saying how to fix it', async () => {
    const dir = tempDir();
    await (await open(dir)).close();
    await expect(open(dir, { partitions: 4 })).rejects.toThrow(
      /created with 2 partitions; set bus\.partitions: 2/,
    );
  });

  it('pushes back with a retryable error when its queue is full', async () => {
    const bus = await open(tempDir(), { maxQueuedBytes: 1000 });
    const [k0] = keysByPartition(bus);
    const big = new Uint8Array(600);
    const first = bus.append(k0, big);
    await expect(bus.append(k0, big)).rejects.toMatchObject({
      kind: { code: 'unavailable', retryable: true },
      retryAfterSeconds: 1,
    });
    await first;
    await expect(bus.append(k0, big)).resolves.toMatchObject({ offset: 1 });
  });

  it('wakes a waiting consumer when a record becomes durable', async () => {
    const bus = await open(tempDir());
    const [k0] = keysByPartition(bus);
    const waited = bus.waitFor(0, 0, 10_000);
    await bus.append(k0, rec('hello'));
    await waited;
    expect((await bus.read(0, 0, 100)).length).toBe(1);
  });

  it('handles a record larger than the read chunk', async () => {
    const bus = await open(tempDir(), { segmentBytes: 8 << 20 });
    const [k0] = keysByPartition(bus);
    const big = new Uint8Array(3 << 20).fill(7);
    await bus.append(k0, rec('small'));
    await bus.append(k0, big);
    await bus.append(k0, rec('after'));
    const first = await bus.read(0, 0, 100);
    expect(text(first[0]!.record)).toBe('small');
    const second = await bus.read(0, 1, 100);
    expect(second[0]!.record.length).toBe(3 << 20);
    const third = await bus.read(0, 2, 100);
    expect(text(third[0]!.record)).toBe('after');
  });

  it('ignores stray files in its directory', async () => {
    const dir = tempDir();
    await (await open(dir)).close();
    writeFileSync(path.join(dir, 'p-000', 'notes.txt'), 'hello');
    const again = await open(dir);
    expect(again.endOffset(0)).toBe(0);
  });
});

describe('disk-log bus: damage found at open (issue 16, item 5)', () => {
  function segmentsOf(dir: string, partition = 0): string[] {
    const pdir = path.join(dir, `p-${String(partition).padStart(3, '0')}`);
    return readdirSync(pdir)
      .filter((f) => f.endsWith('.seg'))
      .sort()
      .map((f) => path.join(pdir, f));
  }
  /** Byte position of record `index` in a segment written by `fill` (records of equal length). */
  const positionOf = (index: number, recordLength: number) => 8 + index * (8 + recordLength);
  async function flip(file: string, position: number): Promise<void> {
    const fd = await import('node:fs/promises').then((m) => m.open(file, 'r+'));
    const b = Buffer.alloc(1);
    await fd.read(b, 0, 1, position);
    b[0] = b[0]! ^ 0xff;
    await fd.write(b, 0, 1, position);
    await fd.close();
  }
  async function fill(dir: string, n: number, extra: Partial<DiskLogOptions> = {}) {
    const bus = await open(dir, extra);
    const [k0] = keysByPartition(bus);
    for (let i = 0; i < n; i++) await bus.append(k0, rec(`good-${String(i).padStart(3, '0')}`));
    return { bus, k0 };
  }
  const LEN = 'good-000'.length;

  it('a flipped payload byte loses that record only: its offset stays, every later record is kept', async () => {
    const dir = tempDir();
    const { bus } = await fill(dir, 30);
    await bus.close();
    await flip(segmentsOf(dir)[0]!, positionOf(10, LEN) + 8 + 2);
    const logs: LogLine[] = [];
    const again = await open(dir, {}, logs);
    expect(again.endOffset(0)).toBe(30);
    const entries = await again.read(0, 0, 1 << 20);
    expect(entries.map((e) => e.offset)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => i),
      ...Array.from({ length: 19 }, (_, i) => i + 11),
    ]);
    expect(entries.map((e) => text(e.record))).toContain('good-029');
    expect(again.recoveryLosses().records).toBe(1);
    expect(logs.some((l) => /bus data lost: partition 0: a damaged record at offset 10/.test(l.msg))).toBe(
      true,
    );
    // Reading from the hole on goes on with the next record.
    expect((await again.read(0, 10, 1 << 20))[0]!.offset).toBe(11);
  });

  it('a flipped length byte resynchronises on the next valid record and keeps the rest', async () => {
    const dir = tempDir();
    const { bus } = await fill(dir, 30);
    await bus.close();
    await flip(segmentsOf(dir)[0]!, positionOf(5, LEN) + 1);
    const again = await open(dir);
    const texts = (await again.read(0, 0, 1 << 20)).map((e) => text(e.record));
    expect(texts).toHaveLength(29);
    expect(texts).not.toContain('good-005');
    expect(texts.at(-1)).toBe('good-029');
    expect(again.recoveryLosses().records).toBe(1);
  });

  it('a bad file magic is repaired and the records behind it kept, with the loss reported', async () => {
    const dir = tempDir();
    const { bus } = await fill(dir, 10);
    await bus.close();
    await flip(segmentsOf(dir)[0]!, 1);
    const logs: LogLine[] = [];
    const again = await open(dir, {}, logs);
    expect(again.endOffset(0)).toBe(10);
    expect((await again.read(0, 0, 1 << 20)).map((e) => text(e.record))).toHaveLength(10);
    expect(again.recoveryLosses().problems.join()).toMatch(/damaged file header/);
    expect(logs.some((l) => /bus data lost/.test(l.msg))).toBe(true);
  });

  it('a deleted segment is reported, and offsets at or below a committed one are never handed out again', async () => {
    const dir = tempDir();
    const { bus } = await fill(dir, 30, { segmentBytes: 120 });
    await bus.commit('processor', 0, 30);
    await bus.close();
    const segs = segmentsOf(dir);
    expect(segs.length, segs.join()).toBeGreaterThan(3);
    rmSync(segs[1]!);
    rmSync(segs.at(-1)!);
    const logs: LogLine[] = [];
    const again = await open(dir, { segmentBytes: 120 }, logs);
    expect(again.recoveryLosses().records).toBeGreaterThan(0);
    expect(again.recoveryLosses().problems.join('\n')).toMatch(/are missing/);
    expect(again.recoveryLosses().problems.join('\n')).toMatch(
      /consumer committed 30; new records start at 30/,
    );
    expect(again.endOffset(0)).toBeGreaterThanOrEqual(again.committed('processor', 0));
    const [k0] = keysByPartition(again);
    const fresh = await again.append(k0, rec('after'));
    expect(fresh.offset).toBe(30);
    expect((await again.read(0, 30, 1 << 20)).map((e) => text(e.record))).toEqual(['after']);
    // And still after another restart.
    await again.close();
    const third = await open(dir, { segmentBytes: 120 });
    expect((await third.read(0, 30, 1 << 20)).map((e) => text(e.record))).toEqual(['after']);
    expect((await third.append(k0, rec('later'))).offset).toBe(31);
  });

  it('a damaged record cut off the tail never lets a committed offset be reused', async () => {
    const dir = tempDir();
    const { bus } = await fill(dir, 10);
    await bus.commit('processor', 0, 10);
    await bus.close();
    const seg = segmentsOf(dir)[0]!;
    await flip(seg, statSync(seg).size - 1);
    const again = await open(dir);
    expect(again.endOffset(0)).toBe(10);
    const [k0] = keysByPartition(again);
    expect((await again.append(k0, rec('new'))).offset).toBe(10);
  });
});
