/**
 * The slot bookkeeping every detector family shares (series-detectors.ts, job-detectors.ts, derived.ts): a
 * family holds the state of every series it applies to in typed-array columns indexed by a slot (O(1) numbers
 * per series, or a small fixed ring), sees every new sample of those series once, in time order, and raises or
 * clears their alerts through the engine. A sample costs a few array reads and writes; alert identities
 * (labels, fingerprint) are built only when a slot first raises an alert, and a slot calls the alert tracker
 * only while its condition holds or its alert may still be open (`maybeActive`). Separate from the families
 * so that each family's file holds only its own detection logic.
 */
import type { StateReader, StateWriter } from '../state.js';
import type { AlertIdentity, DetectorContext } from './context.js';
import type { DetectorFamily, FamilyName, SeriesInfo } from './types.js';

export const NO_ANNOTATIONS = (): Record<string, string> => ({});

export function growF64(a: Float64Array, n: number, fill = 0): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}

export function growI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

export function growU8(a: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}

/** A learned value read back from a JSON snapshot: null (how JSON writes NaN) or absent reads as NaN. */
export function num(x: unknown): number {
  return x === null || x === undefined ? Number.NaN : Number(x);
}

/**
 * Slot bookkeeping shared by every family: the series of each slot, its parameters (shared objects, one per
 * set of matching overrides), its alert identity once built, and whether its alert may be open.
 */
export abstract class Family<P> implements DetectorFamily {
  abstract readonly detector: FamilyName;
  protected capacity = 0;
  private used = 0;
  private readonly freeSlots: number[] = [];
  live = 0;
  /** slot → the engine's series (dref). */
  series = new Int32Array(0);
  /** Set while the slot's alert may be pending or firing (cleared once the tracker no longer has it). */
  maybeActive = new Uint8Array(0);
  readonly params: P[] = [];
  protected readonly ids: (AlertIdentity | undefined)[] = [];

  constructor(protected readonly ctx: DetectorContext) {}

  /** Grows every column to `n` slots; families with columns of their own extend it. */
  protected grow(n: number): void {
    this.series = growI32(this.series, n);
    this.maybeActive = growU8(this.maybeActive, n);
    this.capacity = n;
  }

  /** Resets the columns of a new slot to their initial state. */
  protected abstract reset(slot: number): void;

  /** Builds the slot's alert identity (labels and fingerprint): called the first time it is needed. */
  protected abstract buildIdentity(slot: number): AlertIdentity;

  alloc(info: SeriesInfo, params: unknown): number {
    let slot: number;
    if (this.freeSlots.length > 0) slot = this.freeSlots.pop()!;
    else {
      slot = this.used++;
      // Columns are grown here, never in the constructor: subclass fields do not exist yet there.
      if (slot >= this.capacity) this.grow(Math.max(64, this.capacity * 2));
    }
    this.series[slot] = info.dref;
    this.params[slot] = params as P;
    this.ids[slot] = undefined;
    this.maybeActive[slot] = 0;
    this.reset(slot);
    this.live++;
    return slot;
  }

  free(slot: number): void {
    this.ids[slot] = undefined;
    this.params[slot] = undefined as P;
    this.maybeActive[slot] = 0;
    this.freeSlots.push(slot);
    this.live--;
  }

  abstract observe(slot: number, t: number, v: number): void;

  save(_slot: number): unknown {
    return undefined;
  }

  load(_slot: number, _data: unknown): void {}

  /** The slot's learned state in the binary state file (the same content as `save`). */
  write(_slot: number, _w: StateWriter): void {}

  read(_slot: number, _r: StateReader): void {}

  assumeActive(slot: number): void {
    this.maybeActive[slot] = 1;
  }

  identity(slot: number): AlertIdentity {
    let id = this.ids[slot];
    if (!id) {
      id = this.buildIdentity(slot);
      this.ids[slot] = id;
    }
    return id;
  }

  protected info(slot: number): SeriesInfo {
    return this.ctx.info(this.series[slot]!);
  }

  /** The condition holds: the slot's alert is activated (created pending/firing, or kept). */
  protected raise(slot: number, t: number, value: number, annotate: (v: number) => Record<string, string>) {
    this.maybeActive[slot] = 1;
    this.ctx.activate(this.identity(slot), t, value, annotate);
  }

  /** The condition does not hold: a possibly open alert is deactivated (it may stay for keep_firing_for). */
  protected clear(slot: number, t: number): void {
    if (this.maybeActive[slot] === 0) return;
    const id = this.identity(slot);
    this.ctx.deactivate(id, t);
    if (!this.ctx.isOpen(id)) this.maybeActive[slot] = 0;
  }

  /**
   * This slot is one member of a job-level alert: `active` says whether its condition holds. The parameters
   * are those of DetectorContext.member (engine-series.ts) with the slot in place of the alert and member key.
   */
  protected member(
    slot: number,
    active: boolean,
    t: number,
    value: number,
    annotate: (v: number) => Record<string, string>,
    quorum = 1,
  ): void {
    if (!active && this.maybeActive[slot] === 0) return;
    this.maybeActive[slot] = active ? 1 : 0;
    this.ctx.member(
      this.identity(slot),
      this.ctx.memberKey(this.series[slot]!),
      active,
      t,
      value,
      annotate,
      quorum,
    );
  }

  dispose(slot: number, t: number): void {
    if (this.maybeActive[slot] === 0) return;
    this.maybeActive[slot] = 0;
    this.ctx.end(this.identity(slot), t);
  }
}

/** Families whose slots are members of a job-level alert: disposing a slot removes it from the alert. */
export abstract class MemberFamily<P> extends Family<P> {
  override dispose(slot: number, t: number): void {
    this.member(slot, false, t, 0, () => ({}));
  }
}

/**
 * A sibling series (same labels, another metric) of each slot's series, looked up when first needed; a missing
 * one again only after the engine learned new series, a found one again only after the engine forgot some
 * (its ref could then belong to another series).
 */
export class SiblingColumn {
  ref = new Int32Array(0);
  generation = new Int32Array(0);

  grow(n: number): void {
    this.ref = growI32(this.ref, n);
    this.generation = growI32(this.generation, n);
  }

  reset(slot: number): void {
    this.ref[slot] = -1;
    this.generation[slot] = -1;
  }

  get(ctx: DetectorContext, slot: number, dref: number, name: string): number {
    const r = this.ref[slot]!;
    const gen = r >= 0 ? ctx.removalGeneration : ctx.seriesGeneration;
    if (this.generation[slot] === gen) return r;
    const found = ctx.sibling(dref, name);
    this.ref[slot] = found;
    this.generation[slot] = found >= 0 ? ctx.removalGeneration : ctx.seriesGeneration;
    return found;
  }
}
