/**
 * Recovery of the embedded bus at open (disk-log.ts states what it promises: a torn tail is cut, any other
 * damage loses only what is damaged, and every loss is logged and counted). Separate from the bus because it
 * runs once per partition before anything else touches it, and reads the segment format record by record.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

import type { DiskLogOptions } from './disk-log.js';
import {
  createSegment,
  FILE_HEADER_BYTES,
  FILE_MAGIC,
  FILE_VERSION,
  MAX_RECORD_BYTES,
  type Partition,
  RECORD_HEADER_BYTES,
  Segment,
} from './disk-log-segment.js';

/** What recovery reads from and reports to its bus. */
export interface RecoveryContext {
  readonly opts: DiskLogOptions;
  readonly losses: { records: number; problems: string[] };
}

/** Logs and counts a loss found at open: loudly, since acknowledged data may be gone. */
function lost(
  ctx: RecoveryContext,
  part: Partition,
  records: number,
  problem: string,
  details: Record<string, unknown>,
): void {
  ctx.losses.records += records;
  const line = `partition ${part.id}: ${problem}`;
  if (ctx.losses.problems.length < 100) ctx.losses.problems.push(line);
  ctx.opts.logger.error({ partition: part.id, lostRecords: records, ...details }, `bus data lost: ${line}`);
}

/** Reads a partition's committed offsets and segments at open, repairing or cutting off what is damaged. */
export async function recoverPartition(ctx: RecoveryContext, part: Partition): Promise<void> {
  await fsp.mkdir(part.dir, { recursive: true });
  const names = (await fsp.readdir(part.dir)).filter((n) => /^\d{20}\.seg$/.test(n)).sort();
  for (const n of await fsp.readdir(part.dir)) {
    const m = /^committed-([a-z0-9_-]+)$/.exec(n);
    if (m)
      part.committed.set(m[1]!, Number((await fsp.readFile(path.join(part.dir, n), 'utf8')).trim()) || 0);
  }
  for (let i = 0; i < names.length; i++) {
    const seg = new Segment(Number(names[i]!.slice(0, 20)), path.join(part.dir, names[i]!));
    const prev = part.segments[part.segments.length - 1];
    if (prev && seg.base < prev.end) {
      lost(
        ctx,
        part,
        0,
        `segment ${names[i]} overlaps the previous one (which ends at ${prev.end}); ignored`,
        {
          file: seg.file,
        },
      );
      continue;
    }
    if (prev && seg.base > prev.end) {
      lost(
        ctx,
        part,
        seg.base - prev.end,
        `offsets ${prev.end} to ${seg.base - 1} are missing (a segment was deleted or cut short)`,
        { file: seg.file },
      );
    }
    await scanSegment(ctx, part, seg, i === names.length - 1);
    part.segments.push(seg);
  }
  // Never hand out an offset a consumer group has already passed: its new records would be skipped.
  let committed = 0;
  for (const c of part.committed.values()) committed = Math.max(committed, c);
  const end = part.segments.length > 0 ? part.end : 0;
  if (committed > end) {
    lost(
      ctx,
      part,
      committed - end,
      `the log ends at offset ${end} but a consumer committed ${committed}; new records start at ${committed}`,
      { end, committed },
    );
    part.segments.push(await createSegment(part, committed));
  } else if (part.segments.length === 0) {
    part.segments.push(await createSegment(part, 0));
  }
}

/**
 * Reads a segment at open, building its index. A torn tail of the last segment is cut off (a crash during
 * a write that was never acknowledged); any other damaged record becomes a hole and the scan resynchronises
 * on the next valid header and checksum.
 */
async function scanSegment(
  ctx: RecoveryContext,
  part: Partition,
  seg: Segment,
  isLast: boolean,
): Promise<void> {
  const h = await fsp.open(seg.file, 'r+');
  try {
    const { size: fileSize } = await h.stat();
    const head = Buffer.alloc(FILE_HEADER_BYTES);
    await h.read(head, 0, FILE_HEADER_BYTES, 0);
    if (fileSize < FILE_HEADER_BYTES || !head.subarray(0, 4).equals(FILE_MAGIC)) {
      // The records behind a damaged header may be intact: repair the header and scan them.
      if (fileSize > FILE_HEADER_BYTES)
        lost(ctx, part, 0, `segment ${path.basename(seg.file)} had a damaged file header; repaired`, {
          file: seg.file,
        });
      else ctx.opts.logger.warn({ file: seg.file }, 'bus segment has no valid header; rewriting it empty');
      FILE_MAGIC.copy(head, 0);
      head.writeUInt32LE(FILE_VERSION, 4);
      if (fileSize < FILE_HEADER_BYTES) await h.truncate(0);
      await h.write(head, 0, FILE_HEADER_BYTES, 0);
      await h.datasync();
      if (fileSize <= FILE_HEADER_BYTES) return;
    }
    let pos = FILE_HEADER_BYTES;
    let buf = Buffer.allocUnsafe(8 << 20);
    let bufStart = 0;
    let bufLen = 0;
    const ensure = async (at: number, need: number): Promise<boolean> => {
      if (at + need > fileSize) return false;
      if (at >= bufStart && at + need <= bufStart + bufLen) return true;
      if (need > buf.length) buf = Buffer.allocUnsafe(need);
      bufStart = at;
      const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, fileSize - at), at);
      bufLen = bytesRead;
      return at + need <= bufStart + bufLen;
    };
    /** The length of the valid record at `at` (header, length and checksum), or -1. */
    const validAt = async (at: number): Promise<number> => {
      if (!(await ensure(at, RECORD_HEADER_BYTES))) return -1;
      const len = buf.readUInt32LE(at - bufStart);
      const crc = buf.readUInt32LE(at - bufStart + 4);
      if (len > MAX_RECORD_BYTES || !(await ensure(at, RECORD_HEADER_BYTES + len))) return -1;
      const from = at - bufStart + RECORD_HEADER_BYTES;
      return crc32(buf.subarray(from, from + len)) === crc ? len : -1;
    };
    while (pos < fileSize) {
      const len = await validAt(pos);
      if (len >= 0) {
        seg.noteRecord(pos, len);
        pos += RECORD_HEADER_BYTES + len;
        continue;
      }
      // Damage at `pos`. If its length field still leads to a valid record (or exactly to the end of a
      // segment), only the payload is bad: one record lost. Otherwise scan byte by byte for the next
      // valid record.
      let next = -1;
      if (await ensure(pos, RECORD_HEADER_BYTES)) {
        const claimed = pos + RECORD_HEADER_BYTES + buf.readUInt32LE(pos - bufStart);
        if (claimed <= fileSize && (claimed === fileSize ? !isLast : (await validAt(claimed)) >= 0))
          next = claimed;
      }
      for (let at = pos + 1; next < 0 && at + RECORD_HEADER_BYTES <= fileSize; at++)
        if ((await validAt(at)) >= 0) next = at;
      if (next < 0 && !isLast) next = fileSize;
      if (next < 0) {
        // Nothing valid after it in the last segment: a torn tail, cut off.
        ctx.opts.logger.warn(
          { file: seg.file, position: pos, fileSize, recordsKept: seg.count },
          'bus segment ends in a torn or damaged record; truncating it after its last good record',
        );
        if (fileSize - pos > RECORD_HEADER_BYTES)
          lost(ctx, part, 1, `segment ${path.basename(seg.file)} ended in a damaged record; cut off`, {
            file: seg.file,
            position: pos,
          });
        await h.truncate(pos);
        await h.datasync();
        break;
      }
      lost(
        ctx,
        part,
        1,
        `a damaged record at offset ${seg.end} (bytes ${pos} to ${next} of ${path.basename(seg.file)}) was skipped`,
        { file: seg.file, position: pos, next },
      );
      seg.noteHole(pos, next);
      pos = next;
    }
  } finally {
    await h.close();
  }
}
