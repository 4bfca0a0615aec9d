/**
 * Fixed-size slots for the head's open chunks, carved out of large pages per size class (64 B to 4 KiB,
 * doubling). A slot is named by a handle (`slot index × 8 + class`); freed slots are zeroed and reused.
 *
 * Why: an open chunk per active series as its own Uint8Array costs a JS object and, beyond 64 bytes, an
 * off-heap backing store with its own bookkeeping — about as much memory as the data, and slow to allocate
 * on the append path. Slots in shared pages cost nothing but their bytes.
 */
const PAGE_SHIFT = 18; // 256 KiB pages
export const SLAB_CLASSES = [64, 128, 256, 512, 1024, 2048, 4096] as const;

export class ChunkSlab {
  private readonly pages: Uint8Array[][] = SLAB_CLASSES.map(() => []);
  private readonly free: number[][] = SLAB_CLASSES.map(() => []);
  private readonly next: number[] = SLAB_CLASSES.map(() => 0);
  private readonly shifts = SLAB_CLASSES.map((s) => PAGE_SHIFT - Math.log2(s));

  /** Bytes held in pages (for memory accounting). */
  get bytes(): number {
    let n = 0;
    for (const p of this.pages) n += p.length << PAGE_SHIFT;
    return n;
  }

  /** A zeroed slot of at least `bytes` (the smallest class that fits; at most the largest class). */
  alloc(bytes: number): number {
    let cls = 0;
    while (cls < SLAB_CLASSES.length - 1 && SLAB_CLASSES[cls]! < bytes) cls++;
    return this.allocClass(cls);
  }

  private allocClass(cls: number): number {
    const free = this.free[cls]!;
    if (free.length > 0) return free.pop()! * 8 + cls;
    const slot = this.next[cls]!++;
    const page = slot >>> this.shifts[cls]!;
    if (page === this.pages[cls]!.length) this.pages[cls]!.push(new Uint8Array(1 << PAGE_SHIFT));
    return slot * 8 + cls;
  }

  page(handle: number): Uint8Array {
    const cls = handle & 7;
    return this.pages[cls]![Math.floor(handle / 8) >>> this.shifts[cls]!]!;
  }

  /** Byte offset of the slot in its page. */
  offset(handle: number): number {
    const cls = handle & 7;
    const slot = Math.floor(handle / 8);
    return (slot & ((1 << this.shifts[cls]!) - 1)) * SLAB_CLASSES[cls]!;
  }

  size(handle: number): number {
    return SLAB_CLASSES[handle & 7]!;
  }

  /** Moves the first `used` bytes into a slot of the next class; frees the old one. */
  grow(handle: number, used: number): number {
    const cls = handle & 7;
    if (cls + 1 >= SLAB_CLASSES.length) throw new Error('ChunkSlab.grow: already the largest class');
    const next = this.allocClass(cls + 1);
    const from = this.offset(handle);
    this.page(next).set(this.page(handle).subarray(from, from + used), this.offset(next));
    this.release(handle);
    return next;
  }

  /** Zeroes and frees a slot. */
  release(handle: number): void {
    const cls = handle & 7;
    const from = this.offset(handle);
    this.page(handle).fill(0, from, from + SLAB_CLASSES[cls]!);
    this.free[cls]!.push(Math.floor(handle / 8));
  }
}
