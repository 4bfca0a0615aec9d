/**
 * Alerts survive kill -9 (issue 8): `trainwatch start` runs as a child process with a webhook receiver;
 * it is killed with SIGKILL while one alert is firing (and notified), one is pending, and one notification
 * is still waiting for a receiver that is down. After the restart on the same data directory: the firing
 * alert is still firing and is not notified again (repeat_interval is an hour), the pending alert fires and
 * is notified once, and the waiting notification is delivered once the receiver is back — nothing lost,
 * nothing sent twice.
 *
 * Alert changes are written in batches (src/alerting/hub.ts): the second test kills the server while a change
 * exists only in memory and in the detector state the processor wrote (persist_interval is an hour, so only
 * the write that precedes each state write puts it on disk).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  type Child,
  freePort,
  getJson,
  startServer,
  stopChild,
  tempDir,
  waitFor,
  waitForCounter,
} from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

const children: Child[] = [];
let hook: HttpReceiver | undefined;

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGKILL')));
  await hook?.close();
});

function startAlertingServer(port: number, dataDir: string, config: string): Promise<Child> {
  return startServer({
    port,
    dataDir,
    config,
    children,
    env: { TRAINWATCH_PROCESSOR__CHECKPOINT_INTERVAL_MS: '50' },
  });
}

const encoder = new NativeEncoder();
let sequence = 0;

async function send(port: number, build: (b: SeriesBatchBuilder) => void): Promise<void> {
  const b = new SeriesBatchBuilder();
  build(b);
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/ingest`, {
    method: 'POST',
    headers: { 'content-type': NATIVE_CONTENT_TYPE },
    body: encoder.encodeFrame({
      sourceId: `alerting-kill9-${process.pid}`,
      sequence: sequence++,
      batch: b.build(),
      events: [],
    }),
  });
  await res.arrayBuffer();
  expect(res.status).toBe(200);
}

interface WebhookBody {
  status: string;
  groupLabels: Record<string, string>;
  alerts: { labels: Record<string, string>; status: string }[];
}

interface TwAlert {
  name: string;
  state: string;
  labels: Record<string, string>;
  activeAtMs: number;
}

function deliveries(h: HttpReceiver, jobId: string, alertname: string): WebhookBody[] {
  return h.received
    .map((r) => r.body as WebhookBody)
    .filter(
      (b) => b.groupLabels.job_id === jobId && b.groupLabels.alertname === alertname && b.status === 'firing',
    );
}

describe('kill -9 with alerts pending and firing', () => {
  it('loses no alert and sends none twice after the restart', async () => {
    hook = await startHttpReceiver();
    const dir = tempDir('tw-alert-kill9-');
    const config = path.join(dir, 'trainwatch.yaml');
    writeFileSync(
      config,
      [
        'auth: {anonymous_scopes: [ingest, read, admin]}',
        'processor: {state_interval_ms: 200}',
        'alerting:',
        '  route: {receiver: hook, group_wait: 100ms, group_interval: 1s, repeat_interval: 1h}',
        `  receivers: [{name: hook, webhook_configs: [{url: "${hook.url}/hook"}]}]`,
        '  outbox: {backoff_base: 100ms, backoff_max: 500ms}',
        'detectors:',
        '  thresholds:',
        '    - {alert: GPUTemperatureHigh, metric: gpu_temperature_celsius, op: ">", value: 85, for: 20s}',
        '',
      ].join('\n'),
    );
    const dataDir = path.join(dir, 'data');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const t0 = Date.now() - 60_000;
    const temp = (b: SeriesBatchBuilder, from: number, to: number) => {
      b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'hot-job', node_id: 'n1', gpu: '0' });
      for (let t = from; t <= to; t += 1000) b.add(t, 90);
    };

    let child = await startAlertingServer(port, dataDir, config);
    // 1. A firing alert, notified.
    await send(port, (b) => {
      b.addSeries({ __name__: 'train_loss', job_id: 'nan-job', rank: '0' })
        .add(t0, 2.5)
        .add(t0 + 1000, Number.NaN);
    });
    await waitFor('the NaN alert notified', () => deliveries(hook!, 'nan-job', 'TrainingNaN')[0]);
    // 2. A pending alert: 10 s above 85 °C of the 20 s `for`.
    await send(port, (b) => temp(b, t0, t0 + 10_000));
    await waitFor('the pending temperature alert', async () => {
      const body = await getJson<{ data: { alerts: TwAlert[] } }>(
        `${base}/api/tw/v1/alerts?state=pending&job_id=hot-job`,
      );
      return body.data.alerts[0];
    });
    // 3. A notification waiting for a receiver that is down.
    hook.status = 503;
    await send(port, (b) => {
      b.addSeries({ __name__: 'train_loss', job_id: 'late-job', rank: '0' })
        .add(t0, 2.5)
        .add(t0 + 1000, Number.NaN);
    });
    await waitFor('a failed delivery attempt', () => hook!.failures > 0 || undefined);
    // Let the processor write its detector state past these records (state_interval_ms 200): the second save
    // from now began after the records were applied.
    await waitForCounter(base, 'trainwatch_processor_state_saves_total', 2);

    process.kill(child.proc.pid!, 'SIGKILL');
    await child.exited;
    hook.status = 200;

    child = await startAlertingServer(port, dataDir, config);
    // The waiting notification is delivered once the receiver is back.
    await waitFor('the late notification', () => deliveries(hook!, 'late-job', 'TrainingNaN')[0], 20_000);
    // The pending alert fires once more samples cover its `for`.
    await send(port, (b) => temp(b, t0 + 11_000, t0 + 25_000));
    await waitFor(
      'the temperature alert notified',
      () => deliveries(hook!, 'hot-job', 'GPUTemperatureHigh')[0],
      20_000,
    );

    const firing = await getJson<{ data: { alerts: TwAlert[] } }>(`${base}/api/tw/v1/alerts?state=firing`);
    const byName = (job: string) => firing.data.alerts.filter((a) => a.labels.job_id === job);
    expect(byName('nan-job')).toHaveLength(1);
    expect(byName('nan-job')[0]!.activeAtMs).toBe(t0 + 1000);
    expect(byName('hot-job')).toHaveLength(1);
    expect(byName('hot-job')[0]!.activeAtMs).toBe(t0);
    expect(byName('late-job')).toHaveLength(1);

    // Several group flushes later (every group_interval, 1 s), still nothing sent twice.
    await waitForCounter(base, 'trainwatch_alert_group_flushes_total', 3);
    expect(deliveries(hook, 'nan-job', 'TrainingNaN')).toHaveLength(1);
    expect(deliveries(hook, 'late-job', 'TrainingNaN')).toHaveLength(1);
    expect(deliveries(hook, 'hot-job', 'GPUTemperatureHigh')).toHaveLength(1);
    await stopChild(child);
  }, 120_000);

  it('keeps an alert change that was made just before the crash, when detector state covers it', async () => {
    hook = await startHttpReceiver();
    const dir = tempDir('tw-alert-kill9-batch-');
    const config = path.join(dir, 'trainwatch.yaml');
    writeFileSync(
      config,
      [
        'auth: {anonymous_scopes: [ingest, read, admin]}',
        'processor: {state_interval_ms: 0}',
        'alerting:',
        '  persist_interval: 1h',
        '  route: {receiver: hook, group_wait: 100ms, group_interval: 1s, repeat_interval: 1h}',
        `  receivers: [{name: hook, webhook_configs: [{url: "${hook.url}/hook"}]}]`,
        'detectors:',
        '  thresholds:',
        '    - {alert: GPUTemperatureHigh, metric: gpu_temperature_celsius, op: ">", value: 85, for: 20s}',
        '',
      ].join('\n'),
    );
    const dataDir = path.join(dir, 'data');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const t0 = Date.now() - 60_000;

    let child = await startAlertingServer(port, dataDir, config);
    // A firing alert, notified (its change written just before the notification).
    await send(port, (b) => {
      b.addSeries({ __name__: 'train_loss', job_id: 'nan-job', rank: '0' })
        .add(t0, 2.5)
        .add(t0 + 1000, Number.NaN);
    });
    await waitFor('the NaN alert notified', () => deliveries(hook!, 'nan-job', 'TrainingNaN')[0]);
    // Then a pending alert, seen in memory only (Prometheus's /api/v1/alerts does not read the history).
    await send(port, (b) => {
      b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'hot-job', node_id: 'n1', gpu: '0' });
      for (let t = t0; t <= t0 + 10_000; t += 1000) b.add(t, 90);
    });
    await waitFor('the pending temperature alert in memory', async () => {
      const body = await getJson<{ data: { alerts: { labels: Record<string, string>; state: string }[] } }>(
        `${base}/api/v1/alerts`,
      );
      return body.data.alerts.find((a) => a.labels.job_id === 'hot-job' && a.state === 'pending');
    });
    // Two more detector state saves (at every checkpoint) cover the pending alert.
    await waitForCounter(base, 'trainwatch_processor_state_saves_total', 2);

    process.kill(child.proc.pid!, 'SIGKILL');
    await child.exited;
    child = await startAlertingServer(port, dataDir, config);

    const pending = await getJson<{ data: { alerts: TwAlert[] } }>(
      `${base}/api/tw/v1/alerts?state=pending&job_id=hot-job`,
    );
    expect(pending.data.alerts.map((a) => [a.name, a.activeAtMs])).toEqual([['GPUTemperatureHigh', t0]]);
    const firing = await getJson<{ data: { alerts: TwAlert[] } }>(
      `${base}/api/tw/v1/alerts?state=firing&job_id=nan-job`,
    );
    expect(firing.data.alerts.map((a) => [a.name, a.activeAtMs])).toEqual([['TrainingNaN', t0 + 1000]]);
    // Several group flushes later, the NaN alert has still been sent once.
    await waitForCounter(base, 'trainwatch_alert_group_flushes_total', 3);
    expect(deliveries(hook, 'nan-job', 'TrainingNaN')).toHaveLength(1);
    await stopChild(child);
  }, 120_000);
});
