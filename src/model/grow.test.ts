import { describe, expect, it } from 'vitest';
import { doubled } from './grow.js';

describe('doubled', () => {
  it('copies a column into one of twice its length, of the same type, with the new half zero', () => {
    const f = doubled(Float64Array.of(1.5, -2, Number.NaN));
    expect(f).toBeInstanceOf(Float64Array);
    expect([...f]).toEqual([1.5, -2, Number.NaN, 0, 0, 0]);
    const i = doubled(Int32Array.of(-7, 2 ** 31 - 1));
    expect(i).toBeInstanceOf(Int32Array);
    expect([...i]).toEqual([-7, 2 ** 31 - 1, 0, 0]);
    const u = doubled(Uint32Array.of(2 ** 32 - 1));
    expect(u).toBeInstanceOf(Uint32Array);
    expect([...u]).toEqual([2 ** 32 - 1, 0]);
  });

  it('grows an empty column to one element, and a Buffer into a plain Uint8Array', () => {
    expect(doubled(new Float64Array(0))).toHaveLength(1);
    const b = doubled(Buffer.from([1, 2]));
    expect(Buffer.isBuffer(b)).toBe(false);
    expect([...b]).toEqual([1, 2, 0, 0]);
  });

  it('leaves the original column as it was', () => {
    const original = Float64Array.of(3, 4);
    const grown = doubled(original);
    grown[0] = 9;
    expect([...original]).toEqual([3, 4]);
  });
});
