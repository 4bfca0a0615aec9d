/**
 * One tenant's series as the collector knows them: an interning table keyed by canonical label bytes
 * ({@link SeriesKeyBuilder}) that is also the tenant's **active-series tracker** (cardinality limit).
 *
 * A series is *active* while it received a sample within `activeSeriesTtlMs`. A request that would add a
 * series beyond `maxActiveSeries` is refused whole, before anything is appended or acknowledged. Expired
 * series are dropped by a compaction that runs at the start of a request at most every TTL/4, and at most
 * once a second while the tenant is at its limit; until then an expired series still counts (the limit errs
 * on the safe side by at most TTL/4). The table lives in memory: after a restart every series is new again.
 *
 * Hot path (DESIGN.md): a known series costs one hash of its key bytes, one probe of a table that holds the
 * hashes, one read of its 32-byte record and one byte comparison (against its interned label strings, so no
 * copy of each key is kept); no string or object is created. A new series interns its label strings straight
 * from the request bytes (a string is decoded only the first time the pool sees it) into a pool of
 * pre-encoded native `str` bytes that the payload writer copies from, and is validated through per-string
 * check flags; only an invalid one is decoded into a label set, to name what is wrong.
 *
 * Refs are dense integers valid until the next compaction, which only runs in `beginRequest`: a caller holds
 * refs from `beginRequest` to the end of its synchronous decode-and-encode step, never across an `await`.
 * Not safe for concurrent use; Node's single thread and that rule make it so.
 *
 * Size: one class on purpose (about 690 lines): the per-sample probe reads the series table and the string pool's
 * typed arrays as fields of one object; a separate pool object would add a hop per lookup on the hot path.
 */

import { jobPartitionKey } from '../bus/index.js';
import { Errors, twError } from '../model/errors.js';
import { validateJobId } from '../model/job.js';
import {
  formatSeries,
  isValidLabelName,
  isValidMetricName,
  type LabelSet,
  METRIC_NAME_LABEL,
  WellKnownLabel,
} from '../model/labels.js';
import { ProtoError } from '../protocol/protobuf.js';
import { fmix32, hashRange, type SeriesKeyBuilder, samePart } from './series-key.js';
import { type SeriesLimits, seriesProblem } from './validate.js';

export interface RegistryLimits {
  readonly maxActiveSeries: number;
  readonly activeSeriesTtlMs: number;
  readonly series: SeriesLimits;
  /**
   * `storage.out_of_order_window` of the embedded TSDB: a sample older than its series' newest by more than
   * this is refused (400) instead of acknowledged and then dropped by storage (issue 16, item 6). Undefined:
   * no check (remote storage decides itself).
   */
  readonly outOfOrderWindowMs?: number;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Int32 fields of a ref's `meta` record. */
const M = 8;
/** Hash of the canonical key. */
const M_HASH = 0;
/** Key length in bytes: a cheap first filter before comparing (the key itself is not kept: see `resolve`). */
const M_KEY_LENGTH = 1;
/** The ref's label ids: `idArena[start .. start + count)`. */
const M_IDS_START = 2;
const M_IDS_COUNT = 3;
/** Index into `partitionKeys`. */
const M_PARTITION = 4;
/** 1 while the series counts as active. */
const M_COUNTED = 5;
/** Float64 fields of a ref's `times` record. */
const T = 2;
const T_LAST_SEEN = 0;
const T_NEWEST = 1;

// Per interned string: which checks of `seriesProblem` it passes, computed the first time a new series uses it.
const FLAGS_KNOWN = 1;
/** Valid as a label name other than `__name__` (syntax, not reserved, length). */
const NAME_OK = 2;
/** Valid as a metric name (syntax, length). */
const METRIC_OK = 4;
/** Within `max_label_value_bytes`. */
const VALUE_OK = 8;
/** Valid as a `job_id`. */
const JOB_OK = 16;
/** The string is `__name__`, `job_id`, `node_id` or `instance` (the names the partition key or checks need). */
const IS_METRIC_NAME = 32;
const IS_JOB_ID = 64;
const IS_NODE_ID = 128;
const IS_INSTANCE = 256;
const textEncoder = new TextEncoder();

function grownI32(a: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

export class SeriesRegistry {
  // Open-addressing hash table (linear probing), load factor ≤ 1/2. Slot i is `slots[2i]` = the series' key
  // hash and `slots[2i + 1]` = ref + 1 (0 = empty): a probe compares hashes inside the table, so a lookup
  // touches the per-ref columns only on a hash match (each column read is a cache miss at 40K+ series).
  private slots = new Int32Array(2 * 2048);
  private mask = 2047;

  // Per-ref records, interleaved rather than one array per field: a lookup of a known series reads one
  // 32-byte `meta` record and one 16-byte `times` record (fields: M_*, T_*), two cache misses instead of seven
  // at 40K+ series.
  private capacity = 1024;
  private meta = new Int32Array(1024 * M);
  /** Per series: last seen (ms) and the newest sample timestamp accepted (ms, -Infinity before the first). */
  private times = new Float64Array(1024 * T);
  /** (ref, previous newest) pairs of the current request, to roll back a refused request. */
  private readonly newestUndo: number[] = [];
  /** Running totals of OTLP delta sums, turned into cumulative counters (see `accumulate`). */
  private totals = new Float64Array(1024);
  private idArena = new Uint32Array(1 << 14);
  private idUsed = 0;

  /** Refs allocated (including ones not counted any more, until the next compaction). */
  size = 0;
  /** Series counted as active. */
  live = 0;

  // Label strings, interned: id → its pre-encoded `str` bytes (uvarint byte length, then UTF-8, as the native
  // payload's string table holds it) at `stringArena[stringStart[id] .. + stringSize[id])`. One arena rather
  // than an array per string: a lookup compares bytes in one buffer, and a string costs no object.
  private stringIndex = new Map<string, number>();
  private stringList: string[] = [];
  stringArena = new Uint8Array(1 << 16);
  /** `stringArena` as a DataView (lookups compare 4 bytes per read); replaced whenever the arena is. */
  private stringArenaView = new DataView(this.stringArena.buffer);
  stringStart = new Int32Array(1024);
  stringSize = new Int32Array(1024);
  private stringUsed = 0;
  /**
   * The pool indexed by bytes as well (open addressing over string ids: slot → id + 1, 0 = empty; load ≤ 1/2):
   * a new series' label strings are found from the request's bytes, with no string decoded for a string the
   * pool has. `stringHash[id]` is the hash of the string's UTF-8 bytes.
   */
  private stringSlots = new Int32Array(2048);
  private stringHash = new Int32Array(1024);
  private stringFlags = new Uint16Array(1024);

  // Partition keys, interned: a ref's partition is an index into this list.
  private partitionIndex = new Map<string, number>();
  partitionKeys: string[] = [];

  private readonly tenantIds: readonly [number, number];
  private requestFirstRef = 0;
  private readonly revived: number[] = [];
  private readonly accumulated: number[] = [];
  /** Incremented by every compaction: refs taken before a different generation are stale. */
  generation = 0;
  private lastSweepMs = 0;

  constructor(
    readonly tenant: string,
    private readonly limits: RegistryLimits,
    nowMs = Date.now(),
  ) {
    this.tenantIds = [this.intern(WellKnownLabel.tenant), this.intern(tenant)];
    this.lastSweepMs = nowMs;
  }

  get stringCount(): number {
    return this.stringList.length;
  }

  /** The interned label string ids of a series (name, value, name, value, ...; the tenant label included). */
  labelIds(ref: number): Uint32Array {
    return this.idArena.subarray(
      this.meta[ref * M + M_IDS_START]!,
      this.meta[ref * M + M_IDS_START]! + this.meta[ref * M + M_IDS_COUNT]!,
    );
  }

  /**
   * Allocation-free form of {@link labelIds} for the hot path: the ids of `ref` are
   * `labelIdArena()[labelIdStart(ref) .. labelIdStart(ref) + labelIdCount(ref))`, valid until the next `resolve`.
   */
  labelIdArena(): Uint32Array {
    return this.idArena;
  }

  labelIdStart(ref: number): number {
    return this.meta[ref * M + M_IDS_START]!;
  }

  labelIdCount(ref: number): number {
    return this.meta[ref * M + M_IDS_COUNT]!;
  }

  partitionIndexOf(ref: number): number {
    return this.meta[ref * M + M_PARTITION]!;
  }

  labelsOf(ref: number): LabelSet {
    return this.labelsOfIds(this.meta[ref * M + M_IDS_START]!, this.meta[ref * M + M_IDS_COUNT]!);
  }

  private labelsOfIds(start: number, count: number): LabelSet {
    const labels: Record<string, string> = {};
    for (let i = start; i < start + count; i += 2)
      labels[this.stringList[this.idArena[i]!]!] = this.stringList[this.idArena[i + 1]!]!;
    return labels;
  }

  /** The id of the string whose UTF-8 bytes are `src[at..at+len)`, interning it when new (checks its UTF-8). */
  private internBytes(src: Uint8Array, at: number, len: number): number {
    const h = fmix32(hashRange(src, at, len, len));
    const slots = this.stringSlots;
    const mask = slots.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const s = slots[slot]!;
      if (s === 0) break;
      const id = s - 1;
      if (
        this.stringHash[id] === h &&
        samePart(this.stringArena, this.stringStart[id]!, this.stringSize[id]!, src, at, len)
      )
        return id;
    }
    let str: string;
    try {
      str = textDecoder.decode(src.subarray(at, at + len));
    } catch {
      throw new ProtoError('a label name or value is not valid UTF-8', at);
    }
    return this.intern(str);
  }

  /** The `seriesProblem` checks string `id` passes (see NAME_OK etc.). */
  private flagsOf(id: number): number {
    let f = this.stringFlags[id]!;
    if (f === 0) {
      const s = this.stringList[id]!;
      const limits = this.limits.series;
      const maxName = limits.maxLabelNameBytes ?? Number.POSITIVE_INFINITY;
      f = FLAGS_KNOWN;
      if (isValidLabelName(s) && !s.startsWith('__') && s.length <= maxName) f |= NAME_OK;
      if (isValidMetricName(s) && s.length <= maxName) f |= METRIC_OK;
      if (!(s.length * 3 > limits.maxLabelValueBytes && Buffer.byteLength(s) > limits.maxLabelValueBytes))
        f |= VALUE_OK;
      if (validateJobId(s) === undefined) f |= JOB_OK;
      if (s === METRIC_NAME_LABEL) f |= IS_METRIC_NAME;
      else if (s === WellKnownLabel.jobId) f |= IS_JOB_ID;
      else if (s === 'node_id') f |= IS_NODE_ID;
      else if (s === 'instance') f |= IS_INSTANCE;
      this.stringFlags[id] = f;
    }
    return f;
  }

  /** Call before resolving the series of a request: compacts if due, and opens the request's undo log. */
  beginRequest(nowMs: number): void {
    const sinceSweep = nowMs - this.lastSweepMs;
    if (
      sinceSweep >= this.limits.activeSeriesTtlMs / 4 ||
      (this.live >= this.limits.maxActiveSeries && sinceSweep >= 1000)
    ) {
      this.compact(nowMs);
    }
    this.requestFirstRef = this.size;
    this.revived.length = 0;
    this.accumulated.length = 0;
    this.newestUndo.length = 0;
  }

  /**
   * Refuses a sample older than its series' newest by more than the out-of-order window (400 naming the
   * series and the window), and otherwise notes its time. Storage would acknowledge such a sample and then
   * drop it; refusing keeps "accepted whole or refused whole". Only what this collector saw counts (series
   * forgotten after the active-series TTL, or sent through another collector, are not known here).
   */
  noteSampleTime(ref: number, t: number): void {
    const window = this.limits.outOfOrderWindowMs;
    if (window === undefined) return;
    const newest = this.times[ref * T + T_NEWEST]!;
    if (t > newest) {
      this.newestUndo.push(ref, newest);
      this.times[ref * T + T_NEWEST] = t;
    } else if (t < newest - window) {
      throw twError(
        Errors.invalidSeries,
        `series ${this.shown(this.labelsOf(ref))}: sample at ${new Date(t).toISOString()} is ` +
          `${Math.round((newest - t) / 1000)} s older than the series' newest (${new Date(newest).toISOString()}), ` +
          `beyond the out-of-order window of ${Math.round(window / 1000)} s (storage.out_of_order_window); ` +
          `storage cannot keep it, so the request is refused`,
      );
    }
  }

  /**
   * Adds an OTLP delta to the series' running total and returns the new total: delta sums are stored as
   * cumulative counters, as Prometheus expects. The total lives in memory (a restart is a counter reset,
   * which rate() handles) and survives compaction while the series stays active.
   */
  accumulate(ref: number, delta: number): number {
    this.totals[ref]! += delta;
    this.accumulated.push(ref, delta);
    return this.totals[ref]!;
  }

  /**
   * Takes back the deltas of the request that began last (`generation` as it was then): used when the bus
   * refused the request, so that the sender's retry does not count them twice. Refs of another generation
   * are stale: then nothing can be taken back (a compaction ran in between; rare, at most every TTL/4).
   */
  undoAccumulations(log: ArrayLike<number>, generation: number): boolean {
    if (generation !== this.generation) return false;
    for (let i = 0; i < log.length; i += 2) this.totals[log[i]!]! -= log[i + 1]!;
    return true;
  }

  /** The (ref, delta) pairs accumulated by the current request; copy to keep beyond it. */
  accumulations(): readonly number[] {
    return this.accumulated;
  }

  /** Undoes the counting of series this request added: it was refused, so they did not become active. */
  rollbackRequest(): void {
    this.undoAccumulations(this.accumulated, this.generation);
    this.accumulated.length = 0;
    for (let i = this.newestUndo.length - 2; i >= 0; i -= 2)
      this.times[this.newestUndo[i]! * T + T_NEWEST] = this.newestUndo[i + 1]!;
    this.newestUndo.length = 0;
    for (let ref = this.requestFirstRef; ref < this.size; ref++) {
      if (this.meta[ref * M + M_COUNTED]) {
        this.meta[ref * M + M_COUNTED] = 0;
        this.live--;
      }
    }
    for (const ref of this.revived) {
      if (this.meta[ref * M + M_COUNTED]) {
        this.meta[ref * M + M_COUNTED] = 0;
        this.live--;
      }
    }
    this.revived.length = 0;
  }

  /**
   * The ref of the series whose key `kb` just finished; creates it when new. Throws a 400 naming the series
   * when it is invalid or would exceed the active-series limit.
   */
  resolve(kb: SeriesKeyBuilder, nowMs: number): number {
    const h = kb.hash;
    const klen = kb.keyLength;
    const slots = this.slots;
    let slot = h & this.mask;
    for (;;) {
      const s = slots[2 * slot + 1]!;
      if (s === 0) break;
      const ref = s - 1;
      if (
        slots[2 * slot] === h &&
        this.meta[ref * M + M_KEY_LENGTH] === klen &&
        // The key is the series' interned strings in name order (its label ids, the tenant pair last and
        // left out): compared there, so no copy of each key is kept (about 150 bytes per series).
        kb.equalsParts(
          this.stringArenaView,
          this.stringStart,
          this.stringSize,
          this.idArena,
          this.meta[ref * M + M_IDS_START]!,
          this.meta[ref * M + M_IDS_COUNT]! - 2,
        )
      ) {
        if (!this.meta[ref * M + M_COUNTED]) {
          this.checkLimit(ref);
          this.meta[ref * M + M_COUNTED] = 1;
          this.live++;
          this.revived.push(ref);
        }
        this.times[ref * T + T_LAST_SEEN] = nowMs;
        return ref;
      }
      slot = (slot + 1) & this.mask;
    }
    return this.create(kb, slot, nowMs);
  }

  private checkLimit(ref: number): void {
    if (this.live >= this.limits.maxActiveSeries) this.refuseOverLimit(this.labelsOf(ref));
  }

  private refuseOverLimit(labels: LabelSet): never {
    const shown = this.shown(labels);
    // `live` already counts the series this request added: say how many were active before it, and how
    // many the request brought (a tenant with 0 active series was told it "already has 100").
    let added = this.revived.length;
    for (let ref = this.requestFirstRef; ref < this.size; ref++) if (this.meta[ref * M + M_COUNTED]) added++;
    const before = this.live - added;
    throw twError(
      Errors.limitExceeded,
      `limit limits.max_active_series exceeded: tenant ${this.tenant} has ${before} active series ` +
        `(a sample within the last ${Math.round(this.limits.activeSeriesTtlMs / 1000)} s)` +
        `${added > 0 ? ` and this request adds more than ${added} new ones` : ''}; the limit is ` +
        `${this.limits.maxActiveSeries}; first new series refused: ${shown}`,
    );
  }

  /** A series as its sender wrote it (without the tenant label we add), for error messages. */
  shown(labels: LabelSet): string {
    const { [WellKnownLabel.tenant]: _tenant, ...rest } = labels;
    return formatSeries(rest).slice(0, 300);
  }

  /**
   * A new series: its label strings are interned straight from the request bytes (a string is decoded only
   * the first time the pool sees it), and validated through per-string flags computed once per string; only
   * a series that fails a check is decoded into a label set, to name the problem exactly as
   * {@link seriesProblem} does.
   */
  private create(kb: SeriesKeyBuilder, slot: number, nowMs: number): number {
    const n = kb.labelCount;
    const nIds = n * 2 + 2;
    if (this.idUsed + nIds > this.idArena.length) {
      const a = new Uint32Array(Math.max(this.idArena.length * 2, this.idUsed + nIds));
      a.set(this.idArena.subarray(0, this.idUsed));
      this.idArena = a;
    }
    // The ids are written past `idUsed` and committed only once every check passed.
    const at = this.idUsed;
    const ids = this.idArena;
    const src = kb.source;
    const kr = kb.keyRanges;
    let ok = n + 1 <= this.limits.series.maxLabelsPerSeries;
    let hasName = false;
    let job = -1;
    let node = -1;
    let instance = -1;
    for (let i = 0; i < n; i++) {
      const o = 4 * i;
      const nid = this.internBytes(src, kr[o]!, kr[o + 1]!);
      const vid = this.internBytes(src, kr[o + 2]!, kr[o + 3]!);
      ids[at + 2 * i] = nid;
      ids[at + 2 * i + 1] = vid;
      const nf = this.flagsOf(nid);
      const vf = this.flagsOf(vid);
      if (nf & IS_METRIC_NAME) {
        hasName = true;
        ok = ok && (vf & METRIC_OK) !== 0;
      } else ok = ok && (nf & NAME_OK) !== 0;
      ok = ok && (vf & VALUE_OK) !== 0;
      if (nf & IS_JOB_ID) {
        job = vid;
        ok = ok && (vf & JOB_OK) !== 0;
      } else if (nf & IS_NODE_ID) node = vid;
      else if (nf & IS_INSTANCE) instance = vid;
    }
    ids[at + 2 * n] = this.tenantIds[0];
    ids[at + 2 * n + 1] = this.tenantIds[1];
    ok = ok && hasName && (this.flagsOf(this.tenantIds[1]) & VALUE_OK) !== 0;
    if (!ok) {
      kb.materialize();
      const labels = this.decodeKey(kb);
      const problem = seriesProblem(labels, this.limits.series);
      if (problem) throw twError(Errors.invalidSeries, `series ${this.shown(labels)}: ${problem}`);
    }
    if (this.live >= this.limits.maxActiveSeries) this.refuseOverLimit(this.labelsOfIds(at, nIds));

    const ref = this.size++;
    if (ref === this.capacity) this.growColumns();
    this.meta[ref * M + M_KEY_LENGTH] = kb.keyLength;
    this.meta[ref * M + M_HASH] = kb.hash;
    this.times[ref * T + T_LAST_SEEN] = nowMs;
    this.times[ref * T + T_NEWEST] = Number.NEGATIVE_INFINITY;
    this.meta[ref * M + M_COUNTED] = 1;
    this.live++;

    this.meta[ref * M + M_IDS_START] = at;
    this.meta[ref * M + M_IDS_COUNT] = nIds;
    this.idUsed = at + nIds;

    const list = this.stringList;
    const pkey =
      job >= 0
        ? jobPartitionKey(this.tenant, list[job]!)
        : `${this.tenant}\u0000\u0000${node >= 0 ? list[node] : instance >= 0 ? list[instance] : ''}`;
    let p = this.partitionIndex.get(pkey);
    if (p === undefined) {
      p = this.partitionKeys.length;
      this.partitionKeys.push(pkey);
      this.partitionIndex.set(pkey, p);
    }
    this.meta[ref * M + M_PARTITION] = p;

    this.slots[2 * slot] = kb.hash;
    this.slots[2 * slot + 1] = ref + 1;
    if (this.size * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    return ref;
  }

  /** Decodes a canonical key into a label set (plus the tenant label), checking its UTF-8. */
  private decodeKey(kb: SeriesKeyBuilder): Record<string, string> {
    const key = kb.key;
    const end = kb.keyLength;
    const labels: Record<string, string> = {};
    let p = 0;
    const readStr = (): string => {
      let len = 0;
      let shift = 0;
      let b: number;
      do {
        b = key[p++]!;
        len |= (b & 0x7f) << shift;
        shift += 7;
      } while (b >= 0x80);
      const start = p;
      p += len;
      try {
        return textDecoder.decode(key.subarray(start, p));
      } catch {
        throw new ProtoError('a label name or value is not valid UTF-8', start);
      }
    };
    while (p < end) {
      const name = readStr();
      labels[name] = readStr();
    }
    labels[WellKnownLabel.tenant] = this.tenant;
    return labels;
  }

  private intern(s: string): number {
    let id = this.stringIndex.get(s);
    if (id === undefined) {
      id = this.stringList.length;
      this.stringList.push(s);
      this.appendStringBytes(id, s);
      this.stringIndex.set(s, id);
    }
    return id;
  }

  /** Writes string `id`'s `str` bytes at the end of the arena. */
  private appendStringBytes(id: number, s: string): void {
    if (id === this.stringStart.length) {
      this.stringStart = grownI32(this.stringStart, id * 2);
      this.stringSize = grownI32(this.stringSize, id * 2);
      this.stringHash = grownI32(this.stringHash, id * 2);
      const f = new Uint16Array(id * 2);
      f.set(this.stringFlags);
      this.stringFlags = f;
    }
    // Room for the longest encoding: 5 bytes of length, 3 bytes per UTF-16 unit.
    const need = this.stringUsed + 5 + s.length * 3;
    if (need > this.stringArena.length) {
      const a = new Uint8Array(Math.max(need, this.stringArena.length * 2));
      a.set(this.stringArena.subarray(0, this.stringUsed));
      this.stringArena = a;
      this.stringArenaView = new DataView(a.buffer);
    }
    const arena = this.stringArena;
    const start = this.stringUsed;
    // The UTF-8 bytes go after a 5-byte gap, then move down behind the varint once their length is known.
    const utf8 = textEncoder.encodeInto(s, arena.subarray(start + 5)).written;
    let p = start;
    let n = utf8;
    while (n >= 0x80) {
      arena[p++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    arena[p++] = n;
    arena.copyWithin(p, start + 5, start + 5 + utf8);
    this.stringStart[id] = start;
    this.stringSize[id] = p - start + utf8;
    this.stringUsed = start + this.stringSize[id]!;
    this.stringFlags[id] = 0;
    this.stringHash[id] = fmix32(hashRange(arena, p, utf8, utf8));
    if ((id + 1) * 2 > this.stringSlots.length) this.rehashStrings(this.stringSlots.length * 2);
    else this.placeString(this.stringSlots, id);
  }

  private placeString(slots: Int32Array, id: number): void {
    const mask = slots.length - 1;
    let slot = this.stringHash[id]! & mask;
    while (slots[slot] !== 0) slot = (slot + 1) & mask;
    slots[slot] = id + 1;
  }

  private rehashStrings(slotCount: number): void {
    const slots = new Int32Array(slotCount);
    for (let id = 0; id < this.stringList.length; id++) this.placeString(slots, id);
    this.stringSlots = slots;
  }

  private growColumns(): void {
    const n = this.capacity * 2;
    const meta = new Int32Array(n * M);
    meta.set(this.meta);
    this.meta = meta;
    const times = new Float64Array(n * T);
    times.set(this.times);
    this.times = times;
    const tot = new Float64Array(n);
    tot.set(this.totals);
    this.totals = tot;
    this.capacity = n;
  }

  private rehash(slotCount: number): void {
    const slots = new Int32Array(2 * slotCount);
    this.slots = slots;
    this.mask = slotCount - 1;
    for (let ref = 0; ref < this.size; ref++) {
      const h = this.meta[ref * M + M_HASH]!;
      let slot = h & this.mask;
      while (slots[2 * slot + 1] !== 0) slot = (slot + 1) & this.mask;
      slots[2 * slot] = h;
      slots[2 * slot + 1] = ref + 1;
    }
  }

  /**
   * Drops series that are not counted or saw no sample within the TTL, renumbering the survivors and
   * rebuilding the string pool from what they use. O(series); runs at most every TTL/4.
   */
  compact(nowMs: number): void {
    this.lastSweepMs = nowMs;
    this.generation++;
    const cutoff = nowMs - this.limits.activeSeriesTtlMs;
    let survivors = 0;
    for (let ref = 0; ref < this.size; ref++)
      if (this.meta[ref * M + M_COUNTED] && this.times[ref * T + T_LAST_SEEN]! >= cutoff) survivors++;
    if (survivors === this.size) return;

    const old = {
      meta: this.meta,
      times: this.times,
      totals: this.totals,
      idArena: this.idArena,
      size: this.size,
      strings: this.stringList,
    };
    let capacity = 1024;
    while (capacity < survivors) capacity *= 2;
    this.capacity = capacity;
    this.meta = new Int32Array(capacity * M);
    this.times = new Float64Array(capacity * T);
    this.totals = new Float64Array(capacity);
    this.idArena = new Uint32Array(Math.max(1 << 14, this.idUsed));
    this.idUsed = 0;
    this.stringIndex = new Map();
    this.stringList = [];
    this.stringUsed = 0;
    this.stringSlots = new Int32Array(2048);
    const remap = new Int32Array(old.strings.length).fill(-1);
    const tenantIds = this.tenantIds as [number, number];
    const [oldTenantName, oldTenantValue] = tenantIds;
    tenantIds[0] = this.intern(WellKnownLabel.tenant);
    tenantIds[1] = this.intern(this.tenant);
    remap[oldTenantName] = tenantIds[0];
    remap[oldTenantValue] = tenantIds[1];
    const oldPartitionKeys = this.partitionKeys;
    const partitionRemap = new Int32Array(oldPartitionKeys.length).fill(-1);
    this.partitionKeys = [];
    this.partitionIndex = new Map();

    let ref = 0;
    for (let o = 0; o < old.size; o++) {
      if (!old.meta[o * M + M_COUNTED] || old.times[o * T + T_LAST_SEEN]! < cutoff) continue;
      this.meta[ref * M + M_KEY_LENGTH] = old.meta[o * M + M_KEY_LENGTH]!;
      this.meta[ref * M + M_HASH] = old.meta[o * M + M_HASH]!;
      this.times[ref * T + T_LAST_SEEN] = old.times[o * T + T_LAST_SEEN]!;
      this.times[ref * T + T_NEWEST] = old.times[o * T + T_NEWEST]!;
      this.meta[ref * M + M_COUNTED] = 1;
      this.totals[ref] = old.totals[o]!;
      const op = old.meta[o * M + M_PARTITION]!;
      if (partitionRemap[op]! < 0) {
        partitionRemap[op] = this.partitionKeys.length;
        this.partitionIndex.set(oldPartitionKeys[op]!, this.partitionKeys.length);
        this.partitionKeys.push(oldPartitionKeys[op]!);
      }
      this.meta[ref * M + M_PARTITION] = partitionRemap[op]!;
      const n = old.meta[o * M + M_IDS_COUNT]!;
      this.meta[ref * M + M_IDS_START] = this.idUsed;
      this.meta[ref * M + M_IDS_COUNT] = n;
      for (let i = 0; i < n; i++) {
        const id = old.idArena[old.meta[o * M + M_IDS_START]! + i]!;
        let nid = remap[id]!;
        if (nid < 0) {
          nid = this.intern(old.strings[id]!);
          remap[id] = nid;
        }
        this.idArena[this.idUsed++] = nid;
      }
      ref++;
    }
    this.size = survivors;
    this.live = survivors;
    let slots = 2048;
    while (slots < survivors * 2) slots *= 2;
    this.rehash(slots);
  }
}
