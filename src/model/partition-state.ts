/**
 * What both partition-state stores accept (`meta/postgres/partition-state.ts`, the scaled-out one, and
 * `processor/partition-state.ts`, the embedded one): one check, so a state one store saves the other would
 * not refuse.
 */

/** Throws an error naming the bad argument unless `partition` and `offset` are a savable bus position. */
export function checkPartitionPosition(partition: number, offset: number): void {
  if (!Number.isInteger(partition) || partition < 0)
    throw new Error(`partition ${partition} is invalid: use a non-negative integer`);
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new Error(`offset ${offset} is invalid: use a non-negative integer below 2^53`);
}
