/**
 * The open-chunk slab: slots keep their bytes through allocations, growth, releases and trims; fresh slots
 * are zeroed; pages left empty are returned by trim.
 */
import { describe, expect, it } from 'vitest';
import { ChunkSlab, SLAB_CLASSES } from './slab.js';

describe('ChunkSlab', () => {
  it('keeps every live slot intact through random allocations, growth, releases and trims', () => {
    const slab = new ChunkSlab();
    let seed = 99;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    // Live slots: handle → (bytes written, fill byte).
    const live = new Map<number, { used: number; fill: number }>();
    const handles: number[] = [];
    const write = (h: number, used: number, fill: number) => {
      const off = slab.offset(h);
      const page = slab.page(h);
      let nonzero = 0;
      for (let i = 0; i < slab.size(h); i++) nonzero |= page[off + i]!;
      expect(nonzero, 'a fresh slot is zeroed').toBe(0);
      page.fill(fill, off, off + used);
      live.set(h, { used, fill });
    };
    const take = (i: number) => {
      const h = handles[i]!;
      handles[i] = handles[handles.length - 1]!;
      handles.pop();
      return h;
    };
    for (let step = 0; step < 8000; step++) {
      const x = random();
      if (x < 0.45 || handles.length === 0) {
        const bytes = 1 + Math.floor(random() * 1000);
        const h = slab.alloc(bytes);
        expect(slab.size(h)).toBeGreaterThanOrEqual(Math.min(bytes, SLAB_CLASSES[SLAB_CLASSES.length - 1]!));
        write(h, Math.min(bytes, slab.size(h)), 1 + (step % 250));
        handles.push(h);
      } else if (x < 0.6) {
        const i = Math.floor(random() * handles.length);
        if ((handles[i]! & 7) + 1 >= SLAB_CLASSES.length) continue;
        const h = take(i);
        const { used, fill } = live.get(h)!;
        live.delete(h);
        const g = slab.grow(h, used);
        const off = slab.offset(g);
        const page = slab.page(g);
        let bad = 0;
        for (let k = 0; k < used; k++) if (page[off + k] !== fill) bad++;
        expect(bad).toBe(0);
        live.set(g, { used, fill });
        handles.push(g);
      } else if (x < 0.99) {
        const h = take(Math.floor(random() * handles.length));
        live.delete(h);
        slab.release(h);
      } else slab.trim();
    }
    let bad = 0;
    for (const [h, { used, fill }] of live) {
      const off = slab.offset(h);
      const page = slab.page(h);
      for (let i = 0; i < used; i++) if (page[off + i] !== fill) bad++;
    }
    expect(bad).toBe(0);
  });

  it('returns the pages a class no longer uses', () => {
    const slab = new ChunkSlab();
    const small = Array.from({ length: 20_000 }, () => slab.alloc(60));
    const before = slab.bytes;
    expect(before).toBeGreaterThanOrEqual(20_000 * 64);
    // Every chunk grows into the next class, as open chunks of series started together do.
    const grown = small.map((h) => slab.grow(h, 60));
    expect(slab.trim()).toBeGreaterThanOrEqual(20_000 * 64 - 2 * (1 << 18));
    expect(slab.bytes).toBeLessThan(before + 20_000 * 128);
    for (const h of grown) slab.release(h);
    slab.trim();
    // Allocation still works after pages were returned, into zeroed slots.
    const again = Array.from({ length: 10_000 }, () => slab.alloc(60));
    expect(again.filter((h) => slab.page(h)[slab.offset(h)] !== 0)).toEqual([]);
  });
});
