/**
 * Alert text follows the alert's current value (issue 17, item 3): "has not advanced for 1m" must not stay the
 * text of a stall that has lasted 26 minutes. The real detector engine reports to the real alert hub; what
 * `/api/v1/alerts` serves (the hub's open alerts) is read as the value changes.
 */
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { alertingConfigSchema } from '../../src/alerting/config.js';
import { type AlertingService, createAlerting } from '../../src/alerting/service.js';
import { MetaStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { DetectorSettings } from '../../src/processor/detectors/config.js';
import { DetectorEngine } from '../../src/processor/detectors/engine.js';
import { tempDir } from '../support/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function service(): Promise<AlertingService> {
  const meta = new MetaStore(path.join(tempDir('tw-alert-text-'), 'meta.db'));
  const svc = createAlerting({
    config: alertingConfigSchema.parse({ persist_interval: '1h' }),
    meta,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    listen: '127.0.0.1:9471',
  });
  await svc.start();
  cleanups.push(async () => {
    await svc.stop();
    meta.close();
  });
  return svc;
}

const START_MS = Date.UTC(2025, 0, 1);

describe('alert text', () => {
  it('is rendered again from the current value: a stall says how long it has lasted now', async () => {
    const svc = await service();
    const engine = new DetectorEngine(DetectorSettings.defaults(), svc.hub);
    const stalledText = async () =>
      (await svc.hub.listOpen('default'))
        .filter((a) => a.labels.alertname === 'TrainingStalled')
        .map((a) => `${a.annotations.summary} (value ${Math.round(a.value)})`);
    const seen: string[] = [];
    // Steps every second for 5 minutes, then the step freezes while all four GPUs spin (a hang).
    for (let s = 0; s <= 31 * 60; s++) {
      const t = START_MS + s * 1000;
      const b = new SeriesBatchBuilder(8);
      for (let r = 0; r < 4; r++) {
        const labels = { job_id: 'j1', node_id: 'n1', gpu: String(r), rank: String(r) };
        b.addSeries({ __name__: 'train_step', ...labels }).add(t, Math.min(s, 300));
        b.addSeries({ __name__: 'gpu_utilization_ratio', ...labels }).add(t, s < 300 ? 0.95 : 1);
      }
      engine.tick(t, true);
      engine.observe('default', b.build());
      if (s === 7 * 60 || s === 31 * 60) seen.push(...(await stalledText()));
    }
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(/has not advanced for 2m \(value 120\)/);
    expect(seen[1]).toMatch(/has not advanced for 26m \(value 1560\)/);
  });
});
