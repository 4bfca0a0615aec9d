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
  /** Pages per class; a page released by {@link trim} is `undefined` (its slots are never handed out again). */
  private readonly pages: (Uint8Array | undefined)[][] = SLAB_CLASSES.map(() => []);
  /** Slots in use per page, per class. */
  private used: Int32Array[] = SLAB_CLASSES.map(() => new Int32Array(8));
  private readonly free: number[][] = SLAB_CLASSES.map(() => []);
  private readonly next: number[] = SLAB_CLASSES.map(() => 0);
  private readonly shifts = SLAB_CLASSES.map((s) => PAGE_SHIFT - Math.log2(s));
  private pageBytes = 0;

  /** Bytes held in pages (for memory accounting). */
  get bytes(): number {
    return this.pageBytes;
  }

  /** A zeroed slot of at least `bytes` (the smallest class that fits; at most the largest class). */
  alloc(bytes: number): number {
    let cls = 0;
    while (cls < SLAB_CLASSES.length - 1 && SLAB_CLASSES[cls]! < bytes) cls++;
    return this.allocClass(cls);
  }

  private allocClass(cls: number): number {
    const free = this.free[cls]!;
    const slot = free.length > 0 ? free.pop()! : this.next[cls]!++;
    const page = slot >>> this.shifts[cls]!;
    const pages = this.pages[cls]!;
    if (page === pages.length) {
      pages.push(new Uint8Array(1 << PAGE_SHIFT));
      this.pageBytes += 1 << PAGE_SHIFT;
      if (this.used[cls]!.length <= page) {
        const grown = new Int32Array(this.used[cls]!.length * 2);
        grown.set(this.used[cls]!);
        this.used[cls] = grown;
      }
    }
    this.used[cls]![page]!++;
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
    const slot = Math.floor(handle / 8);
    this.free[cls]!.push(slot);
    this.used[cls]![slot >>> this.shifts[cls]!]!--;
  }

  /**
   * Returns the pages none of whose slots is in use (keeping one free page per class for what comes next):
   * open chunks move up through the classes as they grow, all series at once when they started together,
   * so without this every class would keep the pages of its busiest moment. Cheap; run it now and then.
   */
  trim(): number {
    let released = 0;
    for (let cls = 0; cls < SLAB_CLASSES.length; cls++) {
      const pages = this.pages[cls]!;
      const used = this.used[cls]!;
      const shift = this.shifts[cls]!;
      let keep = 1;
      const gone = new Set<number>();
      for (let p = pages.length - 1; p >= 0; p--) {
        if (!pages[p] || used[p] !== 0) continue;
        // A page whose slots were never all handed out (the last one) is where `next` allocates.
        if ((p + 1) << shift > this.next[cls]!) continue;
        if (keep > 0) {
          keep--;
          continue;
        }
        pages[p] = undefined;
        gone.add(p);
        released += 1 << PAGE_SHIFT;
      }
      if (gone.size > 0) {
        const free = this.free[cls]!;
        let k = 0;
        for (let i = 0; i < free.length; i++) if (!gone.has(free[i]! >>> shift)) free[k++] = free[i]!;
        free.length = k;
      }
    }
    this.pageBytes -= released;
    return released;
  }
}
