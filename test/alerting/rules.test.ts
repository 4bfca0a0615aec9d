/**
 * Prometheus rule files: community-style GPU, node and training rules (testdata/rules/*.rules.yml) load and
 * evaluate on the PromQL engine in a running server; invalid files (testdata/rules/invalid/) give exactly
 * the output of `promtool check rules` (recorded in the `.expected` files, produced by Prometheus 2.42's
 * promtool); templates render as Prometheus renders them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRuleFiles } from '../../src/alerting/rules/check.js';
import { parseRuleFile } from '../../src/alerting/rules/rule-file.js';
import { humanize, humanizeDuration, sprintf, Template } from '../../src/alerting/rules/template.js';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { REPO_ROOT, tempDir, waitFor } from '../support/helpers.js';

const DIR = path.join(REPO_ROOT, 'testdata', 'rules');
const INVALID = path.join(DIR, 'invalid');

describe('rules check (promtool-compatible)', () => {
  for (const file of readdirSync(INVALID).filter((f) => f.endsWith('.yml'))) {
    it(`reports ${file} as promtool does`, () => {
      const cwd = process.cwd();
      process.chdir(INVALID);
      try {
        const r = checkRuleFiles([file]);
        expect(r.ok).toBe(false);
        const expected = readFileSync(path.join(INVALID, file.replace(/\.yml$/, '.expected')), 'utf8');
        expect(r.output + r.errors).toBe(expected);
      } finally {
        process.chdir(cwd);
      }
    });
  }

  it("accepts the community-style rule files with promtool's rule counts", () => {
    const counts: Record<string, number> = {
      'gpu.rules.yml': 7,
      'node.rules.yml': 4,
      'training.rules.yml': 4,
    };
    for (const [file, n] of Object.entries(counts)) {
      const r = parseRuleFile(file, readFileSync(path.join(DIR, file), 'utf8'));
      expect(r.errors).toEqual([]);
      expect(r.groups.reduce((k, g) => k + g.rules.length, 0)).toBe(n);
    }
  });
});

describe('templates', () => {
  it('render $labels, $value and Prometheus functions', () => {
    const t = new Template(
      't',
      'GPU {{ $labels.gpu }} at {{ $value | humanize }}°C, {{ humanizePercentage 0.953 }}, {{ printf "%.2f" $value }}',
    );
    expect(t.render({ labels: { gpu: '3' }, value: 91.234 })).toBe('GPU 3 at 91.23°C, 95.3%, 91.23');
    expect(humanize(1_234_567)).toBe('1.235M');
    expect(humanize(0.0012)).toBe('1.2m');
    expect(humanizeDuration(3725)).toBe('1h 2m 5s');
    expect(sprintf('%d of %s', [3.7, 'x'])).toBe('3 of x');
    expect(new Template('t', '{{- " a " -}}  b').render({ labels: {}, value: 0 })).toBe(' a b');
    expect(() => new Template('__alert_X', '{{ nosuch $value }}')).toThrow(
      'template: __alert_X:1: function "nosuch" not defined',
    );
  });
});

describe('rules evaluated in a running server', () => {
  let tw: Trainwatch;
  const now = Date.now();
  const encoder = new NativeEncoder();

  beforeAll(async () => {
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: tempDir('tw-rules-'),
          auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
          detectors: { enabled: false },
          alerting: { rule_files: [path.join(DIR, '*.rules.yml')], evaluation_interval: '1h' },
        },
      }),
      pino({ level: 'silent' }),
    );
    const b = new SeriesBatchBuilder();
    const every = (labels: Record<string, string>, f: (t: number) => number) => {
      b.addSeries(labels);
      for (let t = now - 10 * 60_000; t <= now; t += 15_000) b.add(t, f(t));
    };
    every({ __name__: 'gpu_temperature_celsius', job_id: 'j1', node_id: 'n1', gpu: '0' }, () => 90);
    every({ __name__: 'gpu_temperature_celsius', job_id: 'j1', node_id: 'n1', gpu: '1' }, () => 60);
    every({ __name__: 'gpu_utilization_ratio', job_id: 'j1', node_id: 'n1', gpu: '0' }, () => 0.9);
    every({ __name__: 'gpu_utilization_ratio', job_id: 'j1', node_id: 'n1', gpu: '1' }, () => 0.7);
    every({ __name__: 'train_loss', job_id: 'j1', rank: '0' }, (t) => (t > now - 60_000 ? Number.NaN : 2));
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: Buffer.from(
        encoder.encodeFrame({ sourceId: 'rules', sequence: 1, batch: b.build(), events: [] }),
      ),
    });
    expect(res.statusCode).toBe(200);
    await waitFor(
      'the samples in storage',
      async () =>
        (await tw.storage!.querier('default', now - 1000, now + 1000).select([])).series.length >= 5 ||
        undefined,
    );
  });

  afterAll(async () => {
    await tw?.stop();
  });

  it('fires alerting rules after their `for`, with rendered labels and annotations', async () => {
    const rules = tw.alerting!.rules!;
    await rules.evaluateAll(now - 6 * 60_000);
    await rules.evaluateAll(now);
    const res = await tw.app.inject({ method: 'GET', url: '/api/v1/alerts' });
    const alerts = res.json().data.alerts as {
      labels: Record<string, string>;
      annotations: Record<string, string>;
      state: string;
      value: string;
    }[];
    const hot = alerts.find((a) => a.labels.alertname === 'GPUHighTemperature');
    expect(hot).toMatchObject({
      state: 'firing',
      labels: { gpu: '0', node_id: 'n1', job_id: 'j1', severity: 'warning', tenant: 'default' },
      annotations: {
        summary: 'GPU 0 on n1 is hot',
        description: 'GPU 0 on n1 is at 90°C for more than 5 minutes.',
      },
      value: '9e+01',
    });
    expect(alerts.filter((a) => a.labels.alertname === 'GPUHighTemperature')).toHaveLength(1);
    expect(alerts.find((a) => a.labels.alertname === 'TrainingLossNaN')).toMatchObject({
      state: 'firing',
      labels: { severity: 'critical', rank: '0' },
    });
    const list = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/alerts?state=firing&job_id=j1' });
    expect(
      list.json().data.alerts.find((a: { name: string }) => a.name === 'GPUHighTemperature'),
    ).toMatchObject({
      source: 'rule',
      url: `/jobs/j1?t=${now - 6 * 60_000}`,
    });
  });

  it("serves /api/v1/rules in Prometheus's shape, and records recording rules", async () => {
    const res = await tw.app.inject({ method: 'GET', url: '/api/v1/rules' });
    const groups = res.json().data.groups as {
      name: string;
      file: string;
      rules: { name: string; health: string; state?: string; type: string }[];
    }[];
    expect(groups.map((g) => g.name).sort()).toEqual(['gpu-health', 'gpu-recording', 'node', 'training']);
    const gpu = groups.find((g) => g.name === 'gpu-health')!;
    expect(gpu.file).toBe(path.join(DIR, 'gpu.rules.yml'));
    expect(gpu.rules.find((r) => r.name === 'GPUHighTemperature')).toMatchObject({
      state: 'firing',
      health: 'ok',
      type: 'alerting',
    });
    for (const g of groups) for (const r of g.rules) expect(r.health, `${g.name}/${r.name}`).toBe('ok');
    const filtered = await tw.app.inject({ method: 'GET', url: '/api/v1/rules?type=record' });
    expect(filtered.json().data.groups.flatMap((g: { rules: unknown[] }) => g.rules)).toHaveLength(2);
    const recorded = (await tw.storage!.querier('default', now - 1000, now + 1000).select([])).series.filter(
      (s) => s.labels.__name__ === 'job_id:gpu_utilization_ratio:avg5m',
    );
    expect(recorded).toHaveLength(1);
    const it = recorded[0]!.iterator();
    expect(it.seek(now)).toBe(true);
    expect(it.v).toBeCloseTo(0.8, 6);
  });
});
