/**
 * A rule's expression is evaluated on one consistent moment of storage: ingest that runs while the rule is
 * being evaluated must not show one selector of `x != x` a sample the other did not see. Under the
 * benchmark's load that made `train_loss != train_loss` fire hundreds of times on data without a NaN.
 *
 * The first test makes every check of the engine's clock look 20 ms later (so an engine that gives the event
 * loop a turn every 10 ms would do so at every check) and appends a newer sample of `x` on the next turn of the
 * event loop once the first selector has run; its two selectors differ (`x{i!=""}` selects the same series), so
 * each reads storage.
 *
 * With processor workers, storage is appended to by other threads, whatever the main thread's event loop does:
 * the second test appends between the first select's answer and the next select, as a worker may. A selector
 * that occurs twice must then be read once, so that both sides of `x != x` see the same samples.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { alertingConfigSchema } from '../../src/alerting/config.js';
import { createAlerting } from '../../src/alerting/service.js';
import { MetaStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { MemoryStorage, type Storage } from '../../src/storage/index.js';
import { tempDir } from '../support/helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rule evaluation', () => {
  it('sees no sample appended while the rule is being evaluated', async () => {
    const dir = tempDir('tw-rule-consistency-');
    const rules = path.join(dir, 'rules.yml');
    writeFileSync(
      rules,
      'groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: NotEqualToItself\n        expr: x != x{i!=""}\n',
    );
    const now = Date.now();
    const storage = new MemoryStorage();
    const append = (t: number, v: number) => {
      const b = new SeriesBatchBuilder();
      for (let i = 0; i < 50; i++) b.addSeries({ __name__: 'x', i: String(i) }).add(t, v);
      storage.appender.append('default', b.build());
    };
    append(now - 10_000, 1);

    // After the first select of the evaluation, ingest (on the event loop's next turn) appends newer samples.
    let selects = 0;
    const observed: Storage = {
      ...storage,
      appender: storage.appender,
      coveredPositions: () => storage.coveredPositions(),
      checkpoint: (p) => storage.checkpoint(p),
      close: () => storage.close(),
      querier: (tenant, minT, maxT) => {
        const q = storage.querier(tenant, minT, maxT);
        return new Proxy(q, {
          get(target, prop, receiver) {
            const v = Reflect.get(target, prop, receiver);
            if (prop !== 'select' || typeof v !== 'function') return v;
            return (...args: unknown[]) => {
              if (selects++ === 0) setImmediate(() => append(now - 5_000, 2));
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        });
      },
    };

    const meta = new MetaStore(path.join(dir, 'meta.db'));
    const svc = createAlerting({
      config: alertingConfigSchema.parse({ rule_files: [rules] }),
      meta,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      listen: '127.0.0.1:9470',
      storage: observed,
    });
    let clock = performance.now();
    vi.spyOn(performance, 'now').mockImplementation(() => {
      clock += 20;
      return clock;
    });
    await svc.rules!.evaluateAll(now);
    vi.restoreAllMocks();

    expect(selects).toBeGreaterThanOrEqual(2);
    expect(svc.hub.openAlerts(null).map((a) => a.labels.i)).toEqual([]);
    // The append did happen (after the evaluation): the next evaluation sees 2 on both sides, still equal.
    await new Promise((r) => setImmediate(r));
    await svc.rules!.evaluateAll(now);
    expect(svc.hub.openAlerts(null)).toEqual([]);
    await svc.stop();
    meta.close();
  });

  it('reads a selector that occurs twice once, while another thread appends between selects', async () => {
    const dir = tempDir('tw-rule-consistency-');
    const rules = path.join(dir, 'rules.yml');
    writeFileSync(
      rules,
      'groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: NotEqualToItself\n        expr: x != x\n',
    );
    const now = Date.now();
    const storage = new MemoryStorage();
    const append = (t: number, v: number) => {
      const b = new SeriesBatchBuilder();
      for (let i = 0; i < 50; i++) b.addSeries({ __name__: 'x', i: String(i) }).add(t, v);
      storage.appender.append('default', b.build());
    };
    append(now - 10_000, 1);

    // Each select's answer is followed at once by a newer sample of every series: what a processor worker
    // appending on its own thread can do between any two selects of the main thread.
    let selects = 0;
    let value = 1;
    const observed: Storage = {
      ...storage,
      appender: storage.appender,
      coveredPositions: () => storage.coveredPositions(),
      checkpoint: (p) => storage.checkpoint(p),
      close: () => storage.close(),
      querier: (tenant, minT, maxT) => {
        const q = storage.querier(tenant, minT, maxT);
        return new Proxy(q, {
          get(target, prop, receiver) {
            const v = Reflect.get(target, prop, receiver);
            if (prop !== 'select' || typeof v !== 'function') return v;
            return async (...args: unknown[]) => {
              selects++;
              const set = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
              value++;
              append(now - 10_000 + value * 100, value);
              return set;
            };
          },
        });
      },
    };

    const meta = new MetaStore(path.join(dir, 'meta.db'));
    const svc = createAlerting({
      config: alertingConfigSchema.parse({ rule_files: [rules] }),
      meta,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      listen: '127.0.0.1:9470',
      storage: observed,
    });
    await svc.rules!.evaluateAll(now);
    expect(svc.hub.openAlerts(null).map((a) => a.labels.i)).toEqual([]);
    expect(selects).toBe(1);
    // Storage did move on between evaluations: the next one reads the newer samples, once again.
    await svc.rules!.evaluateAll(now);
    expect(selects).toBe(2);
    expect(value).toBe(3);
    expect(svc.hub.openAlerts(null)).toEqual([]);
    await svc.stop();
    meta.close();
  });
});
