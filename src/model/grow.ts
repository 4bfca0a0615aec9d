/**
 * Growing the typed-array columns that batches, recorders and writers append to: doubling keeps appends
 * amortized O(1), and growth is rare enough that one shared, polymorphic copy costs nothing measurable.
 */

/** A copy of `column` in one of twice its length (at least 1); the new half is zero. */
export function doubled(column: Float64Array): Float64Array<ArrayBuffer>;
export function doubled(column: Int32Array): Int32Array<ArrayBuffer>;
export function doubled(column: Uint32Array): Uint32Array<ArrayBuffer>;
export function doubled(column: Uint8Array): Uint8Array<ArrayBuffer>;
export function doubled(column: Float64Array | Int32Array | Uint32Array | Uint8Array) {
  const length = Math.max(1, column.length * 2);
  // By type, not `column.constructor`: a Buffer (a Uint8Array) grows into a plain Uint8Array.
  const next =
    column instanceof Float64Array
      ? new Float64Array(length)
      : column instanceof Int32Array
        ? new Int32Array(length)
        : column instanceof Uint32Array
          ? new Uint32Array(length)
          : new Uint8Array(length);
  next.set(column);
  return next;
}
