import { appendFileSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { AgentIdentity } from './identity.js';
import { type DropReason, SegmentQueue, type SegmentQueueOptions } from './segment-queue.js';

function dir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tw-queue-'));
}

function frame(i: number, size = 100): Uint8Array {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

interface Drops {
  frames: Record<string, number>;
  samples: Record<string, number>;
}

async function open(
  d: string,
  extra: Partial<SegmentQueueOptions> = {},
  drops?: Drops,
): Promise<SegmentQueue> {
  return SegmentQueue.open({
    dir: d,
    maxBytes: 1 << 20,
    segmentBytes: 4096,
    ttlMs: 600_000,
    fsync: 'always',
    logger: silentLogger,
    onDrop: (reason: DropReason, frames, samples) => {
      if (!drops) return;
      drops.frames[reason] = (drops.frames[reason] ?? 0) + frames;
      drops.samples[reason] = (drops.samples[reason] ?? 0) + samples;
    },
    ...extra,
  });
}

/** Reads and acks everything buffered; returns the frame numbers in order. */
async function drain(q: SegmentQueue): Promise<number[]> {
  const out: number[] = [];
  const abort = new AbortController();
  for (;;) {
    if (q.stats().records === 0) break;
    const rec = await q.next(abort.signal);
    if (!rec) break;
    out.push(Buffer.from(rec.frame).readUInt32LE(0));
    q.ack(rec);
  }
  return out;
}

describe('SegmentQueue', () => {
  it('hands out frames in order across segments, and deletes consumed segments', async () => {
    const d = dir();
    const q = await open(d);
    await Promise.all(Array.from({ length: 100 }, (_, i) => q.append(frame(i), 10)));
    expect(q.stats()).toMatchObject({ records: 100, samples: 1000 });
    expect(readdirSync(d).filter((f) => f.endsWith('.seg')).length).toBeGreaterThan(2);
    expect(await drain(q)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(q.stats().records).toBe(0);
    expect(readdirSync(d).filter((f) => f.endsWith('.seg')).length).toBe(1);
    await q.close();
  });

  it('keeps what was not acknowledged across a restart, and nothing that was', async () => {
    const d = dir();
    let q = await open(d);
    for (let i = 0; i < 60; i++) await q.append(frame(i), 1);
    const abort = new AbortController();
    for (let i = 0; i < 25; i++) q.ack((await q.next(abort.signal))!);
    await q.close();
    q = await open(d);
    expect(q.stats().records).toBe(35);
    expect(await drain(q)).toEqual(Array.from({ length: 35 }, (_, i) => 25 + i));
    await q.close();
  });

  it('survives a crash without close (cursor persisted lazily: at most re-sends, never loses)', async () => {
    const d = dir();
    const q = await open(d, { cursorPersistMs: 1_000_000 });
    for (let i = 0; i < 30; i++) await q.append(frame(i), 1);
    const abort = new AbortController();
    for (let i = 0; i < 10; i++) q.ack((await q.next(abort.signal))!);
    // No close(): as after kill -9. Every unacknowledged frame is still there.
    const q2 = await open(d);
    const got = await drain(q2);
    expect(got.slice(-20)).toEqual(Array.from({ length: 20 }, (_, i) => 10 + i));
    expect(new Set(got).size).toBe(got.length);
    await q2.close();
  });

  it('cuts a torn tail left by a crash in the middle of a write', async () => {
    const d = dir();
    const q = await open(d);
    for (let i = 0; i < 5; i++) await q.append(frame(i), 1);
    const seg = readdirSync(d)
      .filter((f) => f.endsWith('.seg'))
      .sort()
      .at(-1)!;
    const before = statSync(path.join(d, seg)).size;
    appendFileSync(path.join(d, seg), Buffer.from([50, 0, 0, 0, 1, 2, 3])); // half a record header
    const q2 = await open(d);
    expect(statSync(path.join(d, seg)).size).toBe(before);
    expect(await drain(q2)).toEqual([0, 1, 2, 3, 4]);
    await q2.close();
    await q.close();
  });

  it('drops the oldest segments beyond max_bytes and counts every dropped frame and sample', async () => {
    const d = dir();
    const drops: Drops = { frames: {}, samples: {} };
    const q = await open(d, { maxBytes: 16 << 10, segmentBytes: 4 << 10 }, drops);
    for (let i = 0; i < 200; i++) await q.append(frame(i, 200), 7);
    const left = q.stats();
    expect(left.bytes).toBeLessThanOrEqual(16 << 10);
    expect(drops.frames.size! + left.records).toBe(200);
    expect(drops.samples.size).toBe(drops.frames.size! * 7);
    const got = await drain(q);
    // What is left is the newest, in order.
    expect(got).toEqual(Array.from({ length: left.records }, (_, i) => 200 - left.records + i));
    await q.close();
  });

  it('skips and counts frames older than the TTL, whether read or swept as whole segments', async () => {
    const d = dir();
    let now = 1_000_000;
    const drops: Drops = { frames: {}, samples: {} };
    const q = await open(d, { ttlMs: 10_000, now: () => now }, drops);
    for (let i = 0; i < 40; i++) await q.append(frame(i), 3, now);
    now += 5_000;
    for (let i = 40; i < 50; i++) await q.append(frame(i), 3, now);
    now += 7_000; // the first 40 are now 12 s old, the last 10 only 7 s
    q.expire();
    const got = await drain(q);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => 40 + i));
    expect(drops.frames.ttl).toBe(40);
    expect(drops.samples.ttl).toBe(120);
    await q.close();
  });

  it('refuses a frame larger than the whole buffer, clearly', async () => {
    const q = await open(dir(), { maxBytes: 16 << 10, segmentBytes: 4 << 10 });
    await expect(q.append(new Uint8Array(20_000), 1)).rejects.toThrow(/does not fit in the buffer/);
    await q.close();
  });
});

describe('AgentIdentity', () => {
  it('keeps its source id and never repeats a sequence number across restarts and crashes', () => {
    const d = dir();
    const a = AgentIdentity.load(d);
    const seen = new Set<number>();
    for (let i = 0; i < 5000; i++) seen.add(a.nextSequence());
    // A second load without any clean shutdown, as after kill -9.
    const b = AgentIdentity.load(d);
    expect(b.sourceId).toBe(a.sourceId);
    for (let i = 0; i < 100; i++) {
      const s = b.nextSequence();
      expect(seen.has(s)).toBe(false);
      seen.add(s);
    }
    const c = AgentIdentity.load(d);
    expect(c.nextSequence()).toBeGreaterThan(Math.max(...seen));
  });
});
