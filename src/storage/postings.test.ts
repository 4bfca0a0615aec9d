import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { intersect, subtract, union } from './postings.js';

describe('postings', () => {
  it('intersects, subtracts and unites sorted lists, galloping or not', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 5000 }), { maxLength: 40 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 5000 }), { maxLength: 3000 }),
        (xs, ys) => {
          const a = Int32Array.from(xs.sort((p, q) => p - q));
          const b = Int32Array.from(ys.sort((p, q) => p - q));
          const setB = new Set(ys);
          expect(Array.from(intersect(a, b))).toEqual(xs.filter((x) => setB.has(x)));
          expect(Array.from(intersect(b, a))).toEqual(xs.filter((x) => setB.has(x)));
          expect(Array.from(subtract(a, b))).toEqual(xs.filter((x) => !setB.has(x)));
          expect(Array.from(union([a, b]))).toEqual([...new Set([...xs, ...ys])].sort((p, q) => p - q));
        },
      ),
      { numRuns: 200 },
    );
  });
});
