import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../model/batch.js';
import { LabelMatcher } from '../model/labels.js';
import { PlaceholderMemoryStorage } from './placeholder-memory.js';

function samples(storage: PlaceholderMemoryStorage, tenant: string | null, minT = 0, maxT = 1e15) {
  return storage
    .querier(tenant, minT, maxT)
    .select([new LabelMatcher('=', '__name__', 'm')])
    .map((s) => {
      const it = s.iterator();
      const out: [number, number][] = [];
      while (it.next()) out.push([it.t, it.v]);
      return { labels: s.labels, out };
    });
}

describe('placeholder memory storage', () => {
  it('merges out-of-order samples, stores identical ones once, and lets the last write win', () => {
    const st = new PlaceholderMemoryStorage();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'm', a: '1' }).add(30, 3).add(10, 1).add(20, 2).add(20, 2).add(10, 1.5);
    const stats = st.appender.append('t1', b.build());
    expect(stats).toEqual({ series: 1, samples: 4, duplicates: 1 });
    expect(samples(st, 't1')[0]!.out).toEqual([
      [10, 1.5],
      [20, 2],
      [30, 3],
    ]);
  });

  it('scopes every read to the tenant, whatever the batch said', () => {
    const st = new PlaceholderMemoryStorage();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'm', tenant: 'evil' }).add(1, 1);
    st.appender.append('t1', b.build());
    expect(samples(st, 't1')[0]!.labels.tenant).toBe('t1');
    expect(samples(st, 'evil')).toEqual([]);
    expect(samples(st, null)).toHaveLength(1);
  });

  it('seeks forward and respects the time range', () => {
    const st = new PlaceholderMemoryStorage();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'm' });
    for (let t = 0; t < 100; t += 10) b.add(t, t);
    st.appender.append('t', b.build());
    const [s] = st.querier('t', 20, 60).select([new LabelMatcher('=', '__name__', 'm')]);
    const it = s!.iterator();
    expect(it.seek(35)).toBe(true);
    expect(it.t).toBe(40);
    expect(it.seek(0)).toBe(true);
    expect(it.t).toBe(40);
    expect(it.next()).toBe(true);
    expect(it.t).toBe(50);
    expect(it.next()).toBe(true);
    expect(it.t).toBe(60);
    expect(it.next()).toBe(false);
    expect(it.seek(1000)).toBe(false);
  });
});
