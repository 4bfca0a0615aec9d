/** Reading the head (see head.ts): series time ranges, consistent snapshots of their data, postings. */
import type { LabelMatcher } from '../model/labels.js';
import { HeadAppender } from './head-append.js';
import { type HeadSeriesSnapshot, memoryChunk } from './head-types.js';
import { EMPTY_POSTINGS, type Postings, type PostingsIndex, postingsForMatchers } from './postings.js';

export abstract class HeadReader extends HeadAppender implements PostingsIndex {
  /** Oldest and newest timestamps of a series' head data (or +Inf/-Inf when it has none). */
  timeRange(ref: number): [number, number] {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const list = this.sealed[ref];
    if (list && list.length > 0) {
      min = list[0]!.minT;
      max = list[list.length - 1]!.maxT;
    }
    if (this.cCount[ref]! > 0) {
      min = Math.min(min, this.cMinT[ref]!);
      max = Math.max(max, this.enc.t[ref]!);
    }
    const b = this.ooo[ref];
    if (b && b.n > 0) {
      min = Math.min(min, b.t[0]!);
      max = Math.max(max, b.t[b.n - 1]!);
    }
    return [min, max];
  }

  snapshot(ref: number): HeadSeriesSnapshot {
    const count = this.cCount[ref]!;
    const b = this.ooo[ref];
    return {
      sealed: this.sealed[ref] ? [...this.sealed[ref]!] : [],
      open:
        count > 0
          ? // A copy: the slot is reused once the chunk is sealed.
            memoryChunk(
              this.cMinT[ref]!,
              this.enc.t[ref]!,
              count,
              this.openBytes(ref, 0, (this.cBits[ref]! + 7) >>> 3).slice(),
            )
          : undefined,
      oooT: b && b.n > 0 ? b.t.slice(0, b.n) : undefined,
      oooV: b && b.n > 0 ? b.v.slice(0, b.n) : undefined,
    };
  }

  activeSeries(tenant?: string): number {
    return tenant === undefined ? this.liveSeries : (this.perTenant.get(tenant) ?? 0);
  }

  // PostingsIndex
  allPostings(): Postings {
    return this.allRefs.view();
  }

  labelValues(name: string): readonly string[] {
    const id = this.syms.lookup(name);
    const byValue = id < 0 ? undefined : this.postingsMap.get(id);
    if (!byValue) return [];
    const out: string[] = [];
    for (const [v, p] of byValue) if (p.n > 0) out.push(this.syms.get(v));
    return out;
  }

  labelNames(): string[] {
    const out: string[] = [];
    for (const [n, byValue] of this.postingsMap) {
      for (const p of byValue.values()) {
        if (p.n > 0) {
          out.push(this.syms.get(n));
          break;
        }
      }
    }
    return out;
  }

  postings(name: string, value: string): Postings {
    const n = this.syms.lookup(name);
    const v = this.syms.lookup(value);
    if (n < 0 || v < 0) return EMPTY_POSTINGS;
    return this.postingsMap.get(n)?.get(v)?.view() ?? EMPTY_POSTINGS;
  }

  select(matchers: readonly LabelMatcher[]): Postings {
    return postingsForMatchers(this, matchers);
  }
}
