/**
 * The processor's series table: every series it has read from the bus, interned by the *bytes* of its labels,
 * as a dense integer ref. The processor's consumers (storage, the job store's sample times, the detector
 * engine) key their per-series state by this ref instead of by a label object and a string key built per
 * series per record.
 *
 * Hot path (DESIGN.md, performance contract): for a record of known series nothing is allocated. A string of
 * the record's string table costs one hash of its UTF-8 bytes, one probe and one byte comparison (no JS string
 * is made for a string seen before); a series costs an insertion sort of its few (name id, value id) pairs, a
 * hash over them, one probe and one comparison of integers. A new string is decoded once; a new series gets
 * its label object once (the tenant label set to the record's tenant, as storage sets it), which every later
 * record reuses, so storage's own lookups hash long-lived strings.
 *
 * Identity is (tenant, labels without `tenant`), independent of the order the sender listed the labels in.
 *
 * Forgetting: {@link SeriesTable.sweep} frees the refs of series not read for a while (their slot is reused by
 * the next new series); whoever keys state by ref is told through `onFree` first. Refs are never renumbered.
 * Not safe for concurrent use (one event loop).
 */
import type { LabelSet } from '../model/labels.js';
import { fmix32, murmur3 as hashBytes } from '../model/murmur3.js';

export { murmur3 as hashBytes } from '../model/murmur3.js';

const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

/** Thrown for bytes that are not a label string (invalid UTF-8); the caller reports the record. */
export class SeriesTableError extends Error {}

function grownI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

const WELL_KNOWN_TENANT = 'tenant';
const WELL_KNOWN_NAME = '__name__';
const WELL_KNOWN_JOB = 'job_id';

export class SeriesTable {
  // ---- strings: UTF-8 bytes → string id (sid) ------------------------------------------------------------
  private strSlots = new Int32Array(4096);
  private strMask = 4095;
  private strHash = new Int32Array(1024);
  private strStart = new Int32Array(1024);
  private strLen = new Int32Array(1024);
  private strArena = new Uint8Array(1 << 16);
  private strUsed = 0;
  /** sid → the string. */
  readonly strings: string[] = [];
  private readonly sidOf = new Map<string, number>();
  /** The sids of the label names the processor reads by name. */
  readonly tenantName: number;
  readonly metricName: number;
  readonly jobName: number;

  // ---- series: (tenant sid, sorted label pairs) → ref ----------------------------------------------------
  /**
   * Open addressing, linear probing, 3 ints per slot: ref + 1 (0 = empty), the series' hash and where its key
   * starts in the arena, so that a lookup touches the slot and the key and nothing else.
   */
  private slots = new Int32Array(3 * 4096);
  private mask = 4095;
  private capacity = 1024;
  private hashes = new Int32Array(1024);
  private pairStart = new Int32Array(1024);
  /** Keys: `length, tenant sid, name sid, value sid, …` (labels sorted by name sid; length counts what follows). */
  private arena = new Int32Array(1 << 14);
  private arenaUsed = 0;
  /** Arena ints no live series uses any more (compacted when they are half the arena). */
  private arenaDead = 0;
  /** ref → the series' labels, `tenant` set to its tenant; undefined for a free ref. */
  readonly labels: (LabelSet | undefined)[] = [];
  /** ref → sid of its `job_id` value, -1 without one. */
  jobSid = new Int32Array(1024);
  /** ref → sid of its tenant. */
  tenantSid = new Int32Array(1024);
  /** ref → wall-clock minute (ms / 60,000) of the last record that had it (for {@link sweep}). */
  lastSeen = new Int32Array(1024);
  private readonly free: number[] = [];
  /** Refs in use or free (the next new ref when none is free). */
  private size = 0;
  /** Live series. */
  count = 0;
  /** Bumped whenever series are freed: whatever remembers refs by other means than a lookup must start over. */
  epoch = 0;

  /** Scratch for one series' key while it is looked up. */
  private key = new Int32Array(130);

  constructor() {
    this.tenantName = this.internString(WELL_KNOWN_TENANT);
    this.metricName = this.internString(WELL_KNOWN_NAME);
    this.jobName = this.internString(WELL_KNOWN_JOB);
  }

  get stringCount(): number {
    return this.strings.length;
  }

  /** Refs handed out so far (an upper bound of every live ref + 1): size per-ref arrays by it. */
  get refLimit(): number {
    return this.size;
  }

  // ---- strings -------------------------------------------------------------------------------------------

  /** The sid of the UTF-8 string `b[start..start+len)`, interning it when new. */
  internBytes(b: Uint8Array, start: number, len: number): number {
    const h = hashBytes(b, start, len);
    let slot = h & this.strMask;
    const arena = this.strArena;
    for (;;) {
      const s = this.strSlots[slot]!;
      if (s === 0) break;
      const sid = s - 1;
      if (this.strHash[sid] === h && this.strLen[sid] === len) {
        const at = this.strStart[sid]!;
        let k = 0;
        while (k < len && arena[at + k] === b[start + k]) k++;
        if (k === len) return sid;
      }
      slot = (slot + 1) & this.strMask;
    }
    let s: string;
    try {
      s = textDecoder.decode(b.subarray(start, start + len));
    } catch {
      throw new SeriesTableError('a label string is not valid UTF-8');
    }
    const known = this.sidOf.get(s);
    // The same string with other bytes cannot happen for valid UTF-8; kept for safety.
    if (known !== undefined) return known;
    return this.addString(s, b, start, len, h, slot);
  }

  /** The sid of `s`, interning it when new. */
  internString(s: string): number {
    const known = this.sidOf.get(s);
    if (known !== undefined) return known;
    const bytes = textEncoder.encode(s);
    return this.internBytes(bytes, 0, bytes.length);
  }

  private addString(s: string, b: Uint8Array, start: number, len: number, h: number, slot: number): number {
    const sid = this.strings.length;
    if (sid === this.strHash.length) {
      const n = sid * 2;
      this.strHash = grownI32(this.strHash, n);
      this.strStart = grownI32(this.strStart, n);
      this.strLen = grownI32(this.strLen, n);
    }
    if (this.strUsed + len > this.strArena.length) {
      const a = new Uint8Array(Math.max(this.strArena.length * 2, this.strUsed + len));
      a.set(this.strArena.subarray(0, this.strUsed));
      this.strArena = a;
    }
    this.strArena.set(b.subarray(start, start + len), this.strUsed);
    this.strStart[sid] = this.strUsed;
    this.strLen[sid] = len;
    this.strHash[sid] = h;
    this.strUsed += len;
    this.strings.push(s);
    this.sidOf.set(s, sid);
    this.strSlots[slot] = sid + 1;
    if (this.strings.length * 2 > this.strSlots.length) this.rehashStrings(this.strSlots.length * 2);
    return sid;
  }

  private rehashStrings(n: number): void {
    const slots = new Int32Array(n);
    const mask = n - 1;
    for (let sid = 0; sid < this.strings.length; sid++) {
      let slot = this.strHash[sid]! & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = sid + 1;
    }
    this.strSlots = slots;
    this.strMask = mask;
  }

  // ---- series --------------------------------------------------------------------------------------------

  /**
   * The ref of the series of `tenantSid` whose labels are the (name sid, value sid) pairs `pairs[0..2n)`
   * (any order; `tenant` pairs are ignored), creating it when new. `pairs` is reordered in place.
   * `nowMs` marks the series as seen.
   */
  resolve(tenantSid: number, pairs: Int32Array, n: number, nowMs: number): number {
    // Insertion sort by name sid: label lists are short and a sender lists them in the same order each time.
    let m = 0;
    for (let i = 0; i < n; i++) {
      const name = pairs[2 * i]!;
      const value = pairs[2 * i + 1]!;
      if (name === this.tenantName) continue;
      let k = m;
      while (k > 0 && pairs[2 * (k - 1)]! > name) {
        pairs[2 * k] = pairs[2 * (k - 1)]!;
        pairs[2 * k + 1] = pairs[2 * (k - 1) + 1]!;
        k--;
      }
      pairs[2 * k] = name;
      pairs[2 * k + 1] = value;
      m++;
    }
    // One multiply per int, then murmur's finalizer: a lookup compares the key anyway.
    let h = Math.imul(tenantSid ^ 0x2f5e9b1d, 0x9e3779b1);
    for (let i = 0; i < 2 * m; i++) h = Math.imul((h << 5) ^ (h >>> 27) ^ pairs[i]!, 0x9e3779b1);
    h = fmix32(h ^ m);
    const len = 1 + 2 * m;
    const minute = Math.floor(nowMs / 60_000);
    let slot = h & this.mask;
    const arena = this.arena;
    const slots = this.slots;
    for (;;) {
      const s = slots[3 * slot]!;
      if (s === 0) break;
      if (slots[3 * slot + 1] === h) {
        const at = slots[3 * slot + 2]!;
        if (arena[at] === len && arena[at + 1] === tenantSid) {
          let k = 0;
          while (k < 2 * m && arena[at + 2 + k] === pairs[k]) k++;
          if (k === 2 * m) {
            const ref = s - 1;
            if (this.lastSeen[ref] !== minute) this.lastSeen[ref] = minute;
            return ref;
          }
        }
      }
      slot = (slot + 1) & this.mask;
    }
    return this.create(tenantSid, pairs, m, h, nowMs);
  }

  private create(tenantSid: number, pairs: Int32Array, m: number, h: number, nowMs: number): number {
    let ref: number;
    if (this.free.length > 0) ref = this.free.pop()!;
    else {
      ref = this.size++;
      if (ref === this.capacity) this.growColumns(this.capacity * 2);
    }
    const len = 2 + 2 * m;
    if (this.arenaUsed + len > this.arena.length) {
      if (this.arenaDead * 2 > this.arenaUsed) this.compactArena();
      if (this.arenaUsed + len > this.arena.length)
        this.arena = grownI32(this.arena, Math.max(this.arena.length * 2, this.arenaUsed + len));
    }
    const at = this.arenaUsed;
    this.arena[at] = len - 1;
    this.arena[at + 1] = tenantSid;
    for (let k = 0; k < 2 * m; k++) this.arena[at + 2 + k] = pairs[k]!;
    this.arenaUsed += len;
    this.pairStart[ref] = at;
    this.hashes[ref] = h;
    this.lastSeen[ref] = Math.floor(nowMs / 60_000);
    this.tenantSid[ref] = tenantSid;
    const strings = this.strings;
    const labels: Record<string, string> = {};
    let job = -1;
    for (let k = 0; k < m; k++) {
      const name = pairs[2 * k]!;
      const value = pairs[2 * k + 1]!;
      labels[strings[name]!] = strings[value]!;
      if (name === this.jobName) job = value;
    }
    labels[WELL_KNOWN_TENANT] = strings[tenantSid]!;
    this.labels[ref] = labels;
    this.jobSid[ref] = job;
    this.count++;
    let slot = h & this.mask;
    while (this.slots[3 * slot] !== 0) slot = (slot + 1) & this.mask;
    this.slots[3 * slot] = ref + 1;
    this.slots[3 * slot + 1] = h;
    this.slots[3 * slot + 2] = at;
    if ((this.size - this.free.length) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    return ref;
  }

  /**
   * The labels of live `ref` as (name sid, value sid) pairs sorted by name sid, without `tenant`: a view of the
   * table's key arena, valid until the next series is created or swept (storage's KeyedLabelIds).
   */
  pairsOf(ref: number): Int32Array {
    const at = this.pairStart[ref]!;
    return this.arena.subarray(at + 2, at + 1 + this.arena[at]!);
  }

  /** The sid of the metric name (`__name__`) of `ref`, or -1. */
  nameSid(ref: number): number {
    const at = this.pairStart[ref]!;
    const end = at + 1 + this.arena[at]!;
    for (let k = at + 2; k < end; k += 2) if (this.arena[k] === this.metricName) return this.arena[k + 1]!;
    return -1;
  }

  isLive(ref: number): boolean {
    return ref >= 0 && ref < this.size && this.labels[ref] !== undefined;
  }

  /**
   * Frees the series not seen since `beforeMs` (to the minute: last-seen times are kept per minute), calling
   * `onFree(ref)` for each before its ref can be reused. Returns how many were freed.
   */
  sweep(beforeMs: number, onFree: (ref: number) => void): number {
    const before = Math.floor(beforeMs / 60_000);
    let freed = 0;
    for (let ref = 0; ref < this.size; ref++) {
      if (this.labels[ref] === undefined || this.lastSeen[ref]! >= before) continue;
      onFree(ref);
      this.labels[ref] = undefined;
      this.arenaDead += 1 + this.arena[this.pairStart[ref]!]!;
      this.free.push(ref);
      this.count--;
      freed++;
    }
    if (freed > 0) {
      this.epoch++;
      this.rehash(this.mask + 1);
    }
    return freed;
  }

  private rehash(n: number): void {
    const slots = new Int32Array(3 * n);
    const mask = n - 1;
    for (let ref = 0; ref < this.size; ref++) {
      if (this.labels[ref] === undefined) continue;
      let slot = this.hashes[ref]! & mask;
      while (slots[3 * slot] !== 0) slot = (slot + 1) & mask;
      slots[3 * slot] = ref + 1;
      slots[3 * slot + 1] = this.hashes[ref]!;
      slots[3 * slot + 2] = this.pairStart[ref]!;
    }
    this.slots = slots;
    this.mask = mask;
  }

  private compactArena(): void {
    const next = new Int32Array(this.arena.length);
    let used = 0;
    for (let ref = 0; ref < this.size; ref++) {
      if (this.labels[ref] === undefined) continue;
      const at = this.pairStart[ref]!;
      const len = 1 + this.arena[at]!;
      next.set(this.arena.subarray(at, at + len), used);
      this.pairStart[ref] = used;
      used += len;
    }
    this.arena = next;
    this.arenaUsed = used;
    this.arenaDead = 0;
    // The slots hold arena positions too.
    this.rehash(this.mask + 1);
  }

  private growColumns(n: number): void {
    this.hashes = grownI32(this.hashes, n);
    this.pairStart = grownI32(this.pairStart, n);
    this.jobSid = grownI32(this.jobSid, n);
    this.tenantSid = grownI32(this.tenantSid, n);
    this.lastSeen = grownI32(this.lastSeen, n);
    this.capacity = n;
  }

  /** Scratch space for one series' label pairs (2 ints per label), at least `ints` long. */
  pairScratch(ints: number): Int32Array {
    if (this.key.length < ints) this.key = new Int32Array(Math.max(ints, this.key.length * 2));
    return this.key;
  }

  /** Approximate bytes of memory per live series held by the table (typed arrays; label objects excluded). */
  typedBytes(): number {
    return (
      this.slots.byteLength +
      this.capacity * (4 * 5) +
      this.arena.byteLength +
      this.strSlots.byteLength +
      this.strArena.byteLength +
      this.strHash.byteLength * 3
    );
  }
}
