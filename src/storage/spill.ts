/**
 * Where sealed head chunks wait for the next cut without taking memory: an append-only file per cut
 * generation (`<data-dir>/tsdb/head/spill-<n>.bin`), read back with positioned reads (the page cache keeps
 * recent ones hot), as Prometheus maps its head chunks from disk.
 *
 * The spill file is not part of the durable state: the head log holds every chunk, so after a crash the
 * spill files are simply deleted and the chunks recovered from the log are spilled again. It therefore
 * needs no sync and no format beyond "bytes at offsets".
 */
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';

let spillScratch = new Uint8Array(8192);

export class SpillFile {
  private fd: number;
  private size = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w+');
  }

  /** Appends `parts` back to back; returns the offset of the first. */
  append(parts: readonly Uint8Array[]): number {
    const at = this.size;
    let total = 0;
    for (const p of parts) total += p.length;
    const buf = Buffer.allocUnsafe(total);
    let o = 0;
    for (const p of parts) {
      buf.set(p, o);
      o += p.length;
    }
    let done = 0;
    while (done < total) done += writeSync(this.fd, buf, done, total - done, at + done);
    this.size += total;
    return at;
  }

  /** Reads a chunk; with `scratch`, into a shared buffer valid until the next such read (decode at once). */
  read(offset: number, length: number, scratch = false): Uint8Array {
    if (scratch && spillScratch.length < length)
      spillScratch = new Uint8Array(Math.max(length, spillScratch.length * 2));
    const out = scratch ? spillScratch.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new Error(`spill file ${this.path}: short read at ${offset + done}`);
      done += n;
    }
    return out;
  }

  get bytes(): number {
    return this.size;
  }

  /** Deletes the file; the descriptor stays open (for queries still reading) until `close`. */
  unlink(): void {
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
