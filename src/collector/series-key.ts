/**
 * The canonical identity of a series as raw bytes, built without creating a string: for each label in
 * name order, `uvarint(len) name uvarint(len) value`. The `tenant` label is left out (the tenant comes from
 * the credentials, and each tenant has its own registry) and so are labels with an empty value (Prometheus
 * treats them as absent). Every protocol's decoder feeds label byte ranges to one reused {@link SeriesKeyBuilder};
 * the series registry looks the key up by hash and compares bytes on a hit (DESIGN.md, performance contract).
 */
import { Errors, twError } from '../model/errors.js';
import { fmix32, murmur3RoundsView as hashView } from '../model/murmur3.js';
import { putUvarint32 } from '../protocol/bytes.js';
import { ProtoError } from '../protocol/protobuf.js';

export { fmix32, murmur3Rounds as hashRange } from '../model/murmur3.js';

const textEncoder = new TextEncoder();
const TENANT = textEncoder.encode('tenant');

function compareRanges(b: Uint8Array, aStart: number, aLen: number, cStart: number, cLen: number): number {
  const n = Math.min(aLen, cLen);
  for (let i = 0; i < n; i++) {
    const d = b[aStart + i]! - b[cStart + i]!;
    if (d !== 0) return d;
  }
  return aLen - cLen;
}

/**
 * Collects one series' labels as byte ranges of a source buffer, then writes the canonical key.
 * Reused for every series of every request; nothing it returns survives the next `begin`.
 */
export class SeriesKeyBuilder {
  /** The canonical key of the last `finish`, in `key[0..keyLength)` once `materialize` ran. */
  key = new Uint8Array(1024);
  keyLength = 0;
  hash = 0;
  /** Labels in the key after `finish` (tenant and empty values excluded). */
  labelCount = 0;
  /**
   * After `finish`: label i of the key (in key order, tenant excluded) is name `src[keyRanges[4i]] ..+
   * keyRanges[4i+1]` and value `src[keyRanges[4i+2]] ..+ keyRanges[4i+3]`, with `src` = {@link source}. Lets a
   * registry intern a new series' strings straight from the request bytes.
   */
  keyRanges = new Int32Array(4 * 64);
  /**
   * `ingest.max_labels_per_series`: `add` refuses a series with more than twice as many labels, so that a
   * series with 200K labels is refused in time linear in what was read, before `finish` sorts anything
   * (issue 16, item 4). Up to twice the limit the series is built, and validation refuses it with a message
   * naming the series and its exact label count.
   */
  maxLabels = Number.POSITIVE_INFINITY;

  private src: Uint8Array = new Uint8Array(0);
  /** `src` as a DataView: 4 bytes per read when hashing and comparing (unaligned reads are fine). */
  private srcView: DataView = new DataView(new ArrayBuffer(0));
  /** Per label: name start, name length, value start, value length. */
  private ranges = new Int32Array(4 * 64);
  private count = 0;
  private order = new Int32Array(64);
  /** Scratch for labels given as strings (OTLP, native): encoded here, then added as ranges. */
  private strings = new Uint8Array(4096);
  private stringsUsed = 0;

  /** The buffer the label ranges of the current series point into. */
  get source(): Uint8Array {
    return this.src;
  }

  /** Starts a series whose label bytes live in `src`. */
  begin(src: Uint8Array): void {
    if (src !== this.src) {
      this.src = src;
      this.srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
    }
    this.count = 0;
  }

  /** Starts a series whose labels will be given as strings. */
  beginStrings(): void {
    this.begin(this.strings);
    this.stringsUsed = 0;
  }

  add(nameStart: number, nameLength: number, valueStart: number, valueLength: number): void {
    if (valueLength === 0) return;
    if (this.count >= 2 * this.maxLabels) {
      throw twError(
        Errors.limitExceeded,
        `limit ingest.max_labels_per_series exceeded: a series has more than ${2 * this.maxLabels} labels; ` +
          `the limit is ${this.maxLabels}`,
      );
    }
    if (this.count * 4 === this.ranges.length) {
      const r = new Int32Array(this.ranges.length * 2);
      r.set(this.ranges);
      this.ranges = r;
      this.order = new Int32Array(r.length / 4);
    }
    const i = this.count++ * 4;
    this.ranges[i] = nameStart;
    this.ranges[i + 1] = nameLength;
    this.ranges[i + 2] = valueStart;
    this.ranges[i + 3] = valueLength;
  }

  addStrings(name: string, value: string): void {
    if (value === '') return;
    const nameStart = this.encode(name);
    const nameLength = this.stringsUsed - nameStart;
    const valueStart = this.encode(value);
    this.add(nameStart, nameLength, valueStart, this.stringsUsed - valueStart);
  }

  private encode(s: string): number {
    const need = this.stringsUsed + s.length * 3;
    if (need > this.strings.length) {
      const grown = new Uint8Array(Math.max(need, this.strings.length * 2));
      grown.set(this.strings.subarray(0, this.stringsUsed));
      // Ranges already added point into the old buffer by offset: the copy keeps them valid.
      this.strings = grown;
      this.begin(grown);
    }
    const start = this.stringsUsed;
    this.stringsUsed += textEncoder.encodeInto(s, this.strings.subarray(start)).written;
    return start;
  }

  /**
   * Sorts the labels by name (already sorted, as Prometheus sends them, costs one comparison per label),
   * drops `tenant`, writes the key and its hash. Throws when a label name appears twice.
   */
  finish(): void {
    const n = this.count;
    const r = this.ranges;
    const src = this.src;
    const order = this.order;
    let sorted = true;
    for (let i = 0; i < n; i++) {
      order[i] = i;
      if (i > 0 && compareRanges(src, r[(i - 1) * 4]!, r[(i - 1) * 4 + 1]!, r[i * 4]!, r[i * 4 + 1]!) >= 0)
        sorted = false;
    }
    if (!sorted) {
      // Insertion sort: label sets are small.
      for (let i = 1; i < n; i++) {
        const cur = order[i]!;
        let j = i - 1;
        while (
          j >= 0 &&
          compareRanges(src, r[order[j]! * 4]!, r[order[j]! * 4 + 1]!, r[cur * 4]!, r[cur * 4 + 1]!) > 0
        ) {
          order[j + 1] = order[j]!;
          j--;
        }
        order[j + 1] = cur;
      }
      for (let i = 1; i < n; i++) {
        const a = order[i - 1]! * 4;
        const b = order[i]! * 4;
        if (compareRanges(src, r[a]!, r[a + 1]!, r[b]!, r[b + 1]!) === 0) {
          const name = new TextDecoder().decode(src.subarray(r[b]!, r[b]! + r[b + 1]!));
          throw new ProtoError(`a series has the label ${JSON.stringify(name)} twice`, r[b]!);
        }
      }
    }
    // Hash and measure the key straight from the source ranges: a known series (the common case) is then
    // compared against its interned strings without the key ever being copied out (see `equalsParts`).
    const view = this.srcView;
    let h = 0x9747b28c;
    let length = 0;
    let labels = 0;
    if (this.keyRanges.length < n * 4) this.keyRanges = new Int32Array(n * 8);
    const kr = this.keyRanges;
    for (let i = 0; i < n; i++) {
      const at = order[i]! * 4;
      const ns = r[at]!;
      const nl = r[at + 1]!;
      if (nl === 6 && isTenant(src, ns)) continue;
      const vs = r[at + 2]!;
      const vl = r[at + 3]!;
      const o = labels * 4;
      kr[o] = ns;
      kr[o + 1] = nl;
      kr[o + 2] = vs;
      kr[o + 3] = vl;
      h = hashView(view, ns, nl, h ^ nl);
      h = hashView(view, vs, vl, h ^ (vl + 0x3c6ef372));
      length += varintSize(nl) + nl + varintSize(vl) + vl;
      labels++;
    }
    this.hash = fmix32(h ^ length);
    this.keyLength = length;
    this.labelCount = labels;
  }

  /**
   * Whether the key of the last `finish` is the concatenation of parts `ids[start]`, `ids[start + 1]`, …
   * (`count` ids; part `id` is `arena[partStart[id] .. + partSize[id])`, a pre-encoded `uvarint(len) bytes`,
   * as the key encodes a name or a value): compares the source ranges with the interned strings in place, so
   * that a registry needs no copy of the key.
   */
  equalsParts(
    arena: DataView,
    partStart: Int32Array,
    partSize: Int32Array,
    ids: Uint32Array,
    start: number,
    count: number,
  ): boolean {
    const n = this.labelCount;
    if (count !== n * 2) return false;
    const kr = this.keyRanges;
    const src = this.srcView;
    for (let i = 0; i < n; i++) {
      const o = i * 4;
      const nid = ids[start + 2 * i]!;
      if (!samePartView(arena, partStart[nid]!, partSize[nid]!, src, kr[o]!, kr[o + 1]!)) return false;
      const vid = ids[start + 2 * i + 1]!;
      if (!samePartView(arena, partStart[vid]!, partSize[vid]!, src, kr[o + 2]!, kr[o + 3]!)) return false;
    }
    return true;
  }

  /** Writes the key of the last `finish` into `key[0..keyLength)`: needed only for a new series. */
  materialize(): void {
    if (this.keyLength > this.key.length)
      this.key = new Uint8Array(Math.max(this.keyLength, this.key.length * 2));
    const key = this.key;
    const n = this.count;
    const r = this.ranges;
    const src = this.src;
    const order = this.order;
    let p = 0;
    for (let i = 0; i < n; i++) {
      const at = order[i]! * 4;
      const ns = r[at]!;
      const nl = r[at + 1]!;
      if (nl === 6 && isTenant(src, ns)) continue;
      p = putUvarint32(key, p, nl);
      for (let k = 0; k < nl; k++) key[p + k] = src[ns + k]!;
      p += nl;
      const vs = r[at + 2]!;
      const vl = r[at + 3]!;
      p = putUvarint32(key, p, vl);
      for (let k = 0; k < vl; k++) key[p + k] = src[vs + k]!;
      p += vl;
    }
  }
}

export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/**
 * Whether `arena[partAt .. partAt + partSize)` is exactly `uvarint(len) src[at..at+len)` (lengths first: most
 * mismatches stop there). Twin: samePartView, the same test over DataViews, kept apart so that neither hot
 * comparison loop reads its bytes polymorphically (as murmur3Rounds and murmur3RoundsView in model/murmur3.ts).
 */
export function samePart(
  arena: Uint8Array,
  partAt: number,
  partSize: number,
  src: Uint8Array,
  at: number,
  len: number,
): boolean {
  const head = varintSize(len);
  if (partSize !== head + len) return false;
  const base = partAt + head;
  for (let k = 0; k < len; k++) if (arena[base + k] !== src[at + k]) return false;
  return true;
}

/** {@link samePart} over DataViews, comparing 4 bytes per read (twin: samePart, for Uint8Arrays). */
function samePartView(
  arena: DataView,
  partAt: number,
  partSize: number,
  src: DataView,
  at: number,
  len: number,
): boolean {
  const head = varintSize(len);
  if (partSize !== head + len) return false;
  const base = partAt + head;
  let k = 0;
  for (; k + 4 <= len; k += 4)
    if (arena.getInt32(base + k, true) !== src.getInt32(at + k, true)) return false;
  for (; k < len; k++) if (arena.getUint8(base + k) !== src.getUint8(at + k)) return false;
  return true;
}

function isTenant(src: Uint8Array, at: number): boolean {
  for (let i = 0; i < 6; i++) if (src[at + i] !== TENANT[i]) return false;
  return true;
}
