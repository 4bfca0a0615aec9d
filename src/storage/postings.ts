/**
 * Postings: sorted lists of series ids (head refs or block series indexes) per label pair, and the set
 * operations that evaluate PromQL label matchers over them, as Prometheus's `PostingsForMatchers` does:
 * matchers that do not match the empty string narrow the set by intersection; those that do (`!=`, `!~`,
 * `=""`, `=~".*"`...) are applied by subtracting the series whose value they reject.
 */
import type { LabelMatcher } from '../model/labels.js';

export type Postings = Int32Array;

export const EMPTY_POSTINGS: Postings = new Int32Array(0);

/** What an index offers to matcher evaluation: a head's or a block's. */
export interface PostingsIndex {
  /** Every series id, sorted. */
  allPostings(): Postings;
  /** The distinct values of label `name` (any order). */
  labelValues(name: string): readonly string[];
  /** Series ids with label `name` = `value`, sorted; empty when none. */
  postings(name: string, value: string): Postings;
  /** Label names that have at least one series (any order). */
  labelNames(): readonly string[];
}

export function intersect(a: Postings, b: Postings): Postings {
  if (a.length === 0 || b.length === 0) return EMPTY_POSTINGS;
  if (a.length > b.length) {
    const t = a;
    a = b;
    b = t;
  }
  const out = new Int32Array(a.length);
  let k = 0;
  if (a.length * 32 < b.length) {
    // Very unequal sizes (one job's series against a whole tenant's): gallop through the long list.
    let lo = 0;
    for (let i = 0; i < a.length && lo < b.length; i++) {
      const x = a[i]!;
      let step = 1;
      let hi = lo;
      while (hi < b.length && b[hi]! < x) {
        lo = hi + 1;
        hi += step;
        step *= 2;
      }
      if (hi > b.length) hi = b.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (b[mid]! < x) lo = mid + 1;
        else hi = mid;
      }
      if (lo < b.length && b[lo] === x) out[k++] = x;
    }
    return out.subarray(0, k);
  }
  // The same two-cursor walk as merge2's (twin: postings.ts:merge2), but it keeps only the common ids.
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y) {
      out[k++] = x;
      i++;
      j++;
    } else if (x < y) i++;
    else j++;
  }
  return out.subarray(0, k);
}

export function subtract(a: Postings, b: Postings): Postings {
  if (a.length === 0 || b.length === 0) return a;
  const out = new Int32Array(a.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length) {
    const x = a[i]!;
    while (j < b.length && b[j]! < x) j++;
    if (j < b.length && b[j] === x) i++;
    else {
      out[k++] = x;
      i++;
    }
  }
  return out.subarray(0, k);
}

/** Union of many sorted lists (k-way through repeated pairwise merge; k is the number of matching values). */
export function union(lists: Postings[]): Postings {
  if (lists.length === 0) return EMPTY_POSTINGS;
  let level = lists;
  while (level.length > 1) {
    const next: Postings[] = [];
    for (let i = 0; i < level.length; i += 2)
      next.push(i + 1 < level.length ? merge2(level[i]!, level[i + 1]!) : level[i]!);
    level = next;
  }
  return level[0]!;
}

function merge2(a: Postings, b: Postings): Postings {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  // The same two-cursor walk as intersect's (twin: postings.ts:intersect), but it keeps every id once.
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y) {
      out[k++] = x;
      i++;
      j++;
    } else if (x < y) {
      out[k++] = x;
      i++;
    } else {
      out[k++] = y;
      j++;
    }
  }
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out.subarray(0, k);
}

/** Postings of the series whose value of `m.name` the matcher accepts (`positive`) or rejects. */
function postingsMatching(index: PostingsIndex, m: LabelMatcher, accept: boolean): Postings {
  if (m.type === '=' && accept) return index.postings(m.name, m.value);
  if (m.type === '!=' && !accept) return index.postings(m.name, m.value);
  const lists: Postings[] = [];
  for (const v of index.labelValues(m.name))
    if (m.matches(v) === accept) lists.push(index.postings(m.name, v));
  return union(lists);
}

/**
 * Series ids of `index` matching every matcher, sorted. A missing label counts as the empty string, as in
 * PromQL: `{a!="x"}` selects series without `a`, and `{a=""}` selects only those.
 */
export function postingsForMatchers(index: PostingsIndex, matchers: readonly LabelMatcher[]): Postings {
  const narrowing: LabelMatcher[] = [];
  const widening: LabelMatcher[] = [];
  for (const m of matchers) (m.matches('') ? widening : narrowing).push(m);
  let result: Postings | undefined;
  // Smallest positive sets first keep the intersections short.
  const positives = narrowing
    .map((m) => postingsMatching(index, m, true))
    .sort((a, b) => a.length - b.length);
  for (const p of positives) {
    result = result === undefined ? p : intersect(result, p);
    if (result.length === 0) return EMPTY_POSTINGS;
  }
  if (result === undefined) result = index.allPostings();
  for (const m of widening) {
    // The matcher accepts "", so it rejects exactly the series whose (non-empty) value it does not accept.
    result = subtract(result, postingsMatching(index, m, false));
    if (result.length === 0) return EMPTY_POSTINGS;
  }
  return result;
}
