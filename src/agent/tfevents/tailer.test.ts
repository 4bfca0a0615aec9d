import {
  appendFileSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SeriesBatch } from '../../model/batch.js';
import type { JobEvent } from '../../model/job.js';
import { silentLogger } from '../log.js';
import { decodeEvent, half } from './event.js';
import { TfeventsTailer } from './tailer.js';
import { crc32c, maskedCrc32c, readRecord } from './tfrecord.js';

const LOGS = path.resolve(import.meta.dirname, '../../../testdata/tfevents/logs');

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tw-tfevents-'));
}

function eventsFile(run: string): string {
  const dir = path.join(LOGS, run);
  return path.join(dir, readdirSync(dir).find((f) => f.startsWith('events.out.tfevents.'))!);
}

/** Every record of a file, decoded. */
function readAll(file: string) {
  const buf = readFileSync(file);
  const plugins = new Map<string, string>();
  const out = [];
  let pos = 0;
  for (;;) {
    const r = readRecord(buf, pos);
    if (r.kind !== 'record') {
      expect(r.kind).toBe('partial');
      expect(pos).toBe(buf.length);
      break;
    }
    out.push(decodeEvent(r.data, plugins));
    pos = r.next;
  }
  return out;
}

interface Collected {
  samples: Map<string, [number, number][]>;
  events: JobEvent[];
}

function collector(): Collected & { emit: (b: SeriesBatch, e: JobEvent[]) => Promise<void> } {
  const c: Collected = { samples: new Map(), events: [] };
  return {
    ...c,
    emit: async (b, e) => {
      c.events.push(...e);
      for (let i = 0; i < b.series.length; i++) {
        const l = b.series[i]!;
        const key = `${l.__name__}|${l.run}|${l.job_id}`;
        const list = c.samples.get(key) ?? [];
        for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++) list.push([b.timestamps[j]!, b.values[j]!]);
        c.samples.set(key, list);
      }
    },
  };
}

describe('TFRecord framing', () => {
  it('computes CRC-32C (Castagnoli) and its TFRecord mask', () => {
    // The check value of CRC-32C for "123456789" (RFC 3720, appendix B.4).
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const data = Buffer.from('123456789');
    const crc = crc32c(data);
    expect(maskedCrc32c(data)).toBe((((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0);
  });

  it('reads the records the real writers wrote, and reports a cut record as partial, a flipped bit as corrupt', () => {
    const buf = readFileSync(eventsFile('run_a'));
    const first = readRecord(buf, 0);
    expect(first.kind).toBe('record');
    for (const cut of [3, 11, 20]) expect(readRecord(buf.subarray(0, cut), 0).kind).toBe('partial');
    const damaged = Buffer.from(buf);
    damaged[14]! ^= 0x40;
    expect(readRecord(damaged, 0).kind).toBe('corrupt');
    const badLength = Buffer.from(buf);
    badLength[0]! ^= 0x01;
    expect(readRecord(badLength, 0)).toMatchObject({ kind: 'corrupt' });
  });
});

describe('Event decoding (files written by tensorboardX and tensorboard)', () => {
  it('reads simple_value scalars and skips histograms and text', () => {
    const events = readAll(eventsFile('run_a'));
    expect(events[0]!.fileVersion).toBe('brain.Event:2');
    const scalars = events.flatMap((e) => e.scalars.map((s) => ({ ...s, step: e.step, t: e.wallTimeSec })));
    const loss = scalars.filter((s) => s.tag === 'train/loss');
    expect(loss).toHaveLength(20);
    for (const s of loss) {
      expect(s.value).toBeCloseTo(2 / (s.step + 1), 6);
      expect(s.t).toBe(1700000000 + 10 * s.step);
    }
    expect(scalars.filter((s) => s.tag === 'train/accuracy')).toHaveLength(20);
    expect(scalars.some((s) => s.tag === 'weights' || s.tag.startsWith('notes'))).toBe(false);
  });

  it('reads scalar tensors: double, int64, half and float (metadata only on the first value)', () => {
    const events = readAll(eventsFile('nested/run_b'));
    const by = (tag: string) =>
      events.flatMap((e) => e.scalars.filter((s) => s.tag === tag).map((s) => [e.step, s.value]));
    expect(by('eval/top-1 acc')).toEqual([0, 1, 2, 3, 4].map((s) => [s, 0.5 + s / 10]));
    expect(by('train/tokens')).toEqual([0, 1, 2, 3, 4].map((s) => [s, 4096 * (s + 1)]));
    expect(by('lr')).toEqual([0, 1, 2, 3, 4].map((s) => [s, 0.25]));
    const evalLoss = by('eval/loss');
    expect(evalLoss).toHaveLength(5);
    for (const [s, v] of evalLoss) expect(v).toBeCloseTo(1.5 - s! / 10, 6);
  });

  it('decodes IEEE half floats', () => {
    expect(half(0x3c00)).toBe(1);
    expect(half(0xc000)).toBe(-2);
    expect(half(0x3400)).toBe(0.25);
    expect(half(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(half(0x0001)).toBeCloseTo(5.96e-8, 10);
  });
});

describe('TfeventsTailer', () => {
  function tailer(dir: string, data: string, c: ReturnType<typeof collector>, jobId?: string) {
    return new TfeventsTailer({
      dirs: [{ path: dir, jobId, labels: {} }],
      intervalMs: 60_000,
      stateFile: path.join(data, 'tfevents-state.json'),
      nodeLabels: { node_id: 'n1' },
      procRoot: '/proc',
      logger: silentLogger,
      emit: c.emit,
      hostname: 'not-the-writer-host',
    });
  }

  it('imports every scalar of every run once, names them, and resumes after a restart where it stopped', async () => {
    const logs = tmp();
    const data = tmp();
    cpSync(LOGS, logs, { recursive: true });
    const c = collector();
    await tailer(logs, data, c).scan();
    expect(c.samples.get('train_loss|run_a|run_a')).toHaveLength(20);
    expect(c.samples.get('train_accuracy|run_a|run_a')).toHaveLength(20);
    expect(c.samples.get('eval_top_1_acc|nested/run_b|nested/run_b')!.map(([, v]) => v)).toEqual([
      0.5, 0.6, 0.7, 0.8, 0.9,
    ]);
    expect(c.samples.get('train_step|run_a|run_a')).toHaveLength(20);
    expect([...c.samples.keys()].some((k) => k.startsWith('weights'))).toBe(false);
    const runA = c.events.filter((e) => e.jobId === 'run_a');
    expect(runA[0]!.kind).toBe('start');
    expect(Object.assign({}, ...runA.map((e) => e.metricKeys))).toEqual({
      train_loss: 'train/loss',
      train_accuracy: 'train/accuracy',
    });

    // A restart reads nothing again.
    const again = collector();
    await tailer(logs, data, again).scan();
    expect(again.samples.size).toBe(0);

    // A writer appends to a file, half a record first: only whole records are imported, each once.
    const file = eventsFile('run_a').replace(LOGS, logs);
    const src = readFileSync(eventsFile('run_a'));
    const firstLen = 12 + Number(src.readBigUInt64LE(0)) + 4;
    const second = readRecord(src, firstLen);
    if (second.kind !== 'record') throw new Error('fixture too short');
    const record = src.subarray(firstLen + 0, second.next); // one whole record (train/loss step 0)
    const next = collector();
    const t = tailer(logs, data, next);
    appendFileSync(file, record.subarray(0, 10));
    await t.scan();
    expect(next.samples.size).toBe(0);
    appendFileSync(file, record.subarray(10));
    await t.scan();
    expect(next.samples.get('train_loss|run_a|run_a')).toEqual([[1700000000000, 2]]);

    // A new run appears: it is followed too.
    mkdirSync(path.join(logs, 'run_c'));
    copyFileSync(eventsFile('run_a'), path.join(logs, 'run_c', 'events.out.tfevents.1700000000.other.1.0'));
    await t.scan();
    expect(next.samples.get('train_loss|run_c|run_c')).toHaveLength(20);
  });

  it('uses the configured job_id, and stops at a damaged record without losing what came before', async () => {
    const logs = tmp();
    const data = tmp();
    const src = readFileSync(eventsFile('run_a'));
    const damaged = Buffer.from(src);
    damaged[damaged.length - 30]! ^= 0xff; // inside the last record
    mkdirSync(path.join(logs, 'r'));
    writeFileSync(path.join(logs, 'r', 'events.out.tfevents.1.h.2.0'), damaged);
    const c = collector();
    const t = tailer(logs, data, c, 'llama-7b-0042');
    await t.scan();
    const loss = c.samples.get('train_loss|r|llama-7b-0042')!;
    expect(loss.length).toBeGreaterThanOrEqual(19);
    expect(t.counters.corruptFiles).toBe(1);
  });
});
