/**
 * The agent's idempotency key (docs/protocol.md): a source id chosen once and kept in the data directory, and
 * a sequence number that never repeats for that source id, across restarts and crashes.
 *
 * Sequences are reserved in blocks: `identity.json` holds the first number not yet handed out by any run
 * (`reservedUntil`); a run hands out numbers below it and writes the next block's end before crossing it. After a
 * crash the unused rest of a block is skipped, so numbers stay unique and increasing (the collector remembers
 * recent numbers per source, not a contiguous range).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { syncDirSync } from '../../model/fs.js';

const BLOCK = 4096;

interface IdentityFile {
  readonly sourceId: string;
  readonly reservedUntil: number;
}

export class AgentIdentity {
  private next: number;
  private reservedUntil: number;

  private constructor(
    private readonly file: string,
    readonly sourceId: string,
    start: number,
  ) {
    this.next = start;
    this.reservedUntil = start;
  }

  /** Loads (or creates) the identity in `dir`; the first block is reserved before this returns. */
  static load(dir: string): AgentIdentity {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'identity.json');
    let saved: IdentityFile | undefined;
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as IdentityFile;
      if (typeof saved.sourceId !== 'string' || !Number.isSafeInteger(saved.reservedUntil)) saved = undefined;
    } catch {
      saved = undefined;
    }
    const sourceId =
      saved?.sourceId ?? `agent-${os.hostname().slice(0, 100)}-${randomBytes(6).toString('hex')}`;
    const id = new AgentIdentity(file, sourceId, saved?.reservedUntil ?? 0);
    id.reserve();
    return id;
  }

  /** The next sequence number for a frame of this agent. */
  nextSequence(): number {
    if (this.next >= this.reservedUntil) this.reserve();
    return this.next++;
  }

  private reserve(): void {
    this.reservedUntil = this.next + BLOCK;
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify({ sourceId: this.sourceId, reservedUntil: this.reservedUntil }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    // The rename itself must be durable, or a crash could bring back the previous block's end.
    syncDirSync(path.dirname(this.file));
  }
}
