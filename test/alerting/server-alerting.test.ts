/**
 * Alerting end to end in one process: samples POSTed to the collector → processor → detectors → alert hub →
 * dispatcher → outbox → a local webhook; the alert APIs (trainwatch's list with history, Prometheus's
 * /api/v1/alerts, detectors) and silences (Alertmanager v2 shapes) against the running server.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

let tw: Trainwatch;
let hook: HttpReceiver;
const encoder = new NativeEncoder();
let seq = 0;

beforeAll(async () => {
  hook = await startHttpReceiver();
  const config = loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: tempDir(),
      processor: { checkpoint_interval_ms: 100 },
      auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
      alerting: {
        route: { receiver: 'hook', group_wait: '50ms', group_interval: '1s' },
        receivers: [{ name: 'hook', webhook_configs: [{ url: `${hook.url}/hook` }] }],
      },
    },
  });
  tw = await startTrainwatch(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await tw?.stop();
  await hook?.close();
});

async function ingest(build: (b: SeriesBatchBuilder) => void, events: JobEvent[] = []) {
  const b = new SeriesBatchBuilder();
  build(b);
  const res = await tw.app.inject({
    method: 'POST',
    url: '/api/v1/ingest',
    headers: { 'content-type': NATIVE_CONTENT_TYPE },
    payload: Buffer.from(
      encoder.encodeFrame({ sourceId: 'alerting-test', sequence: seq++, batch: b.build(), events }),
    ),
  });
  expect(res.statusCode).toBe(200);
}

async function getJson(url: string) {
  const res = await tw.app.inject({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

interface WebhookBody {
  status: string;
  receiver: string;
  groupLabels: Record<string, string>;
  alerts: { status: string; labels: Record<string, string>; generatorURL: string; fingerprint: string }[];
}

describe('alerting in the running server', () => {
  const t0 = Date.now() - 60_000;

  it('raises a NaN loss as a firing alert and delivers the webhook with the Alertmanager payload', async () => {
    await ingest((b) => {
      b.addSeries({ __name__: 'train_loss', job_id: 'nan-job', rank: '0' });
      for (let i = 0; i < 10; i++) b.add(t0 + i * 1000, 2 - i * 0.01);
      b.add(t0 + 10_000, Number.NaN);
    });
    const delivered = await waitFor('the webhook', () =>
      hook.received.find((r) => (r.body as WebhookBody).groupLabels?.job_id === 'nan-job'),
    );
    const body = delivered.body as WebhookBody;
    expect(delivered.path).toBe('/hook');
    expect(body.status).toBe('firing');
    expect(body.receiver).toBe('hook');
    expect(body.alerts).toHaveLength(1);
    expect(body.alerts[0]!.labels).toMatchObject({
      alertname: 'TrainingNaN',
      severity: 'critical',
      tenant: 'default',
      job_id: 'nan-job',
      metric: 'train_loss',
    });
    expect(body.alerts[0]!.generatorURL).toBe(`${tw.url}/jobs/nan-job?t=${t0 + 10_000}`);

    const list = await getJson('/api/tw/v1/alerts?state=firing&job_id=nan-job');
    expect(list.data.alerts).toHaveLength(1);
    expect(list.data.alerts[0]).toMatchObject({
      name: 'TrainingNaN',
      state: 'firing',
      source: 'detector',
      origin: 'nonfinite',
      activeAtMs: t0 + 10_000,
      url: `/jobs/nan-job?t=${t0 + 10_000}`,
      fingerprint: body.alerts[0]!.fingerprint,
    });
    const prom = await getJson('/api/v1/alerts');
    expect(prom.status).toBe('success');
    expect(
      prom.data.alerts.some((a: { labels: Record<string, string> }) => a.labels.job_id === 'nan-job'),
    ).toBe(true);
  });

  it('resolves the alert when the job finishes, keeps it in the history and notifies the resolution', async () => {
    await ingest(
      (b) => {
        b.addSeries({ __name__: 'train_loss', job_id: 'nan-job', rank: '0' }).add(t0 + 11_000, Number.NaN);
      },
      [{ kind: 'finish', jobId: 'nan-job', timeMs: t0 + 12_000, status: 'failed' }],
    );
    await waitFor('the resolved webhook', () =>
      hook.received.find(
        (r) =>
          (r.body as WebhookBody).groupLabels?.job_id === 'nan-job' &&
          (r.body as WebhookBody).status === 'resolved',
      ),
    );
    const resolved = await getJson('/api/tw/v1/alerts?state=resolved&job_id=nan-job');
    expect(resolved.data.alerts[0]).toMatchObject({ state: 'resolved', resolvedAtMs: t0 + 12_000 });
    const open = await getJson('/api/tw/v1/alerts?state=firing&job_id=nan-job');
    expect(open.data.alerts).toHaveLength(0);
  });

  it('lists the detectors with their state', async () => {
    const body = await getJson('/api/tw/v1/detectors');
    expect(body.data.running).toBe(true);
    const names = body.data.detectors.map((d: { name: string }) => d.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'stall',
        'straggler',
        'nonfinite',
        'loss_spike',
        'memory_leak',
        'waste',
        'throughput',
      ]),
    );
    const nonfinite = body.data.detectors.find((d: { name: string }) => d.name === 'nonfinite');
    expect(nonfinite.samples).toBeGreaterThan(0);
    expect(nonfinite.alertnames).toEqual(['TrainingNaN']);
  });

  it('silences: create, list, mute notifications, expire', async () => {
    const now = Date.now();
    const created = await tw.app.inject({
      method: 'POST',
      url: '/api/v2/silences',
      payload: {
        matchers: [{ name: 'job_id', value: 'silenced-job', isRegex: false, isEqual: true }],
        startsAt: new Date(now - 1000).toISOString(),
        endsAt: new Date(now + 3_600_000).toISOString(),
        createdBy: 'test',
        comment: 'known issue',
      },
    });
    expect(created.statusCode, created.body).toBe(200);
    const id = created.json().silenceID as string;
    const list = await getJson('/api/v2/silences');
    expect(list.find((s: { id: string }) => s.id === id)).toMatchObject({
      status: { state: 'active' },
      createdBy: 'test',
      comment: 'known issue',
    });

    await ingest((b) => {
      b.addSeries({ __name__: 'train_loss', job_id: 'silenced-job', rank: '0' }).add(t0, Number.NaN);
      b.addSeries({ __name__: 'train_loss', job_id: 'loud-job', rank: '0' }).add(t0, Number.NaN);
    });
    await waitFor('the loud job webhook', () =>
      hook.received.find((r) => (r.body as WebhookBody).groupLabels?.job_id === 'loud-job'),
    );
    const firing = await getJson('/api/tw/v1/alerts?state=firing&job_id=silenced-job');
    expect(firing.data.alerts[0].silencedBy).toEqual([id]);
    expect(hook.received.some((r) => (r.body as WebhookBody).groupLabels?.job_id === 'silenced-job')).toBe(
      false,
    );

    const del = await tw.app.inject({ method: 'DELETE', url: `/api/v2/silence/${id}` });
    expect(del.statusCode).toBe(200);
    expect((await getJson(`/api/v2/silence/${id}`)).status.state).toBe('expired');
    // Once the silence is gone, the next group flush (group_interval 1 s) notifies the alert.
    await waitFor('the webhook after the silence expired', () =>
      hook.received.find((r) => (r.body as WebhookBody).groupLabels?.job_id === 'silenced-job'),
    );
  });

  it('refuses bad silences with a message naming the field', async () => {
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/v2/silences',
      payload: {
        matchers: [{ name: 'job_id', value: '.*', isRegex: true }],
        startsAt: 'x',
        endsAt: 'y',
        createdBy: 'a',
        comment: 'b',
      },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/matchers: at least one matcher must not match the empty string/);
    const bad = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/alerts?state=burning' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/state="burning"/);
  });
});
