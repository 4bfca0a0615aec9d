/**
 * Every notifier delivers to a real local receiver with the right payload, through the whole alerting
 * service (hub → dispatcher → outbox → notifier): webhook (Alertmanager's payload), Slack, PagerDuty Events
 * v2, e-mail to an SMTP server (smtp-server), a real Alertmanager (Debian prometheus-alertmanager, API v2), and
 * action hooks. A receiver that fails for a while gets the notification once it recovers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';
import { alertingConfigSchema } from '../../src/alerting/config.js';
import type { Alert } from '../../src/alerting/notifier.js';
import { type AlertingService, createAlerting } from '../../src/alerting/service.js';
import { MetaStore } from '../../src/meta/index.js';
import { freePort, tempDir, waitFor } from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function service(alerting: unknown): Promise<AlertingService> {
  const meta = new MetaStore(path.join(tempDir('tw-notify-'), 'meta.db'));
  const svc = createAlerting({
    config: alertingConfigSchema.parse(alerting),
    meta,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    listen: '127.0.0.1:9470',
  });
  await svc.start();
  cleanups.push(async () => {
    await svc.stop();
    meta.close();
  });
  return svc;
}

async function receiver(): Promise<HttpReceiver> {
  const r = await startHttpReceiver();
  cleanups.push(() => r.close());
  return r;
}

function alert(labels: Record<string, string>, state: 'firing' | 'resolved', activeAtMs: number): Alert {
  const full = {
    alertname: 'TrainingStalled',
    severity: 'critical',
    tenant: 'default',
    job_id: 'job-1',
    ...labels,
  };
  return {
    labels: full,
    annotations: { summary: 'training step has not advanced for 75s', description: 'train_step stuck' },
    state,
    activeAtMs,
    firingAtMs: activeAtMs,
    resolvedAtMs: state === 'resolved' ? activeAtMs + 60_000 : null,
    fingerprint: fingerprint(full),
    url: `/jobs/${full.job_id}?t=${activeAtMs}`,
    value: 75,
    source: 'detector',
    name: full.alertname,
    origin: 'stall',
  };
}

const fast = { group_wait: '10ms', group_interval: '200ms' };
const quickRetry = { backoff_base: '20ms', backoff_max: '100ms' };

describe('webhook', () => {
  it("posts Alertmanager's webhook payload, then the resolution", async () => {
    const hook = await receiver();
    const svc = await service({
      route: { receiver: 'team', ...fast },
      receivers: [{ name: 'team', webhook_configs: [{ url: `${hook.url}/alerts` }] }],
    });
    const t = Date.now() - 5000;
    svc.hub.transition(alert({}, 'firing', t), 'firing');
    await waitFor('the firing webhook', () => hook.received[0]);
    const body = hook.received[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      version: '4',
      status: 'firing',
      receiver: 'team',
      groupLabels: { alertname: 'TrainingStalled', tenant: 'default', job_id: 'job-1' },
      commonLabels: { severity: 'critical' },
      externalURL: 'http://127.0.0.1:9470',
      truncatedAlerts: 0,
    });
    expect((body.alerts as unknown[])[0]).toMatchObject({
      status: 'firing',
      startsAt: new Date(t).toISOString(),
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: `http://127.0.0.1:9470/jobs/job-1?t=${t}`,
      annotations: { summary: 'training step has not advanced for 75s' },
    });
    svc.hub.transition(alert({}, 'resolved', t), 'resolved');
    await waitFor('the resolved webhook', () => hook.received[1]);
    expect(hook.received[1]!.body).toMatchObject({ status: 'resolved', alerts: [{ status: 'resolved' }] });
    // Nothing more can be sent once the resolved group is gone from the dispatcher and the outbox holds nothing
    // undelivered: wait for that state instead of for a fixed time.
    await waitFor('the dispatcher and the outbox to settle', () =>
      svc.dispatcher?.snapshot().length === 0 &&
      svc.store!.notifications(100).every((n) => n.status === 'delivered')
        ? true
        : undefined,
    );
    expect(svc.store!.notifications(100)).toHaveLength(2);
    expect(hook.received).toHaveLength(2);
  });

  it('delivers to a receiver that fails for a while once it recovers, and shows the delivery status', async () => {
    const hook = await receiver();
    hook.status = 503;
    const svc = await service({
      route: { receiver: 'team', ...fast },
      receivers: [{ name: 'team', webhook_configs: [{ url: hook.url }] }],
      outbox: quickRetry,
    });
    svc.hub.transition(alert({}, 'firing', Date.now()), 'firing');
    await waitFor('three failed attempts', () => hook.failures >= 3 || undefined);
    const pending = svc.store!.notifications(10)[0]!;
    expect(pending.status).toBe('pending');
    expect(pending.lastError).toMatch(/HTTP 503/);
    hook.status = 200;
    await waitFor('the delivery after recovery', () => hook.received[0], 10_000);
    await waitFor(
      'the delivered status',
      () => svc.store!.notifications(10)[0]!.status === 'delivered' || undefined,
    );
    const done = svc.store!.notifications(10)[0]!;
    expect(done.attempts).toBeGreaterThanOrEqual(4);
    expect(hook.received).toHaveLength(1);
  });

  it('gives up on a permanent error (4xx) without retrying', async () => {
    const hook = await receiver();
    hook.status = 400;
    const svc = await service({
      route: { receiver: 'team', ...fast },
      receivers: [{ name: 'team', webhook_configs: [{ url: hook.url }] }],
      outbox: quickRetry,
    });
    svc.hub.transition(alert({}, 'firing', Date.now()), 'firing');
    await waitFor('failed', () => svc.store!.notifications(10)[0]?.status === 'failed' || undefined);
    expect(hook.failures).toBe(1);
    expect(svc.store!.notifications(10)[0]!.lastError).toMatch(/HTTP 400/);
  });
});

describe('Slack and PagerDuty', () => {
  it('sends a Slack incoming-webhook message', async () => {
    const slack = await receiver();
    const svc = await service({
      route: { receiver: 'chat', ...fast },
      receivers: [
        {
          name: 'chat',
          slack_configs: [{ api_url: `${slack.url}/services/T0/B0/xyz`, channel: '#training' }],
        },
      ],
    });
    svc.hub.transition(alert({ node_id: 'n7' }, 'firing', Date.now()), 'firing');
    await waitFor('the Slack message', () => slack.received[0]);
    const msg = slack.received[0]!;
    expect(msg.path).toBe('/services/T0/B0/xyz');
    expect(msg.body).toMatchObject({
      channel: '#training',
      username: 'trainwatch',
      text: '[FIRING:1] TrainingStalled job_id=job-1',
      attachments: [{ color: 'danger', title: '[FIRING:1] TrainingStalled job_id=job-1' }],
    });
    expect((msg.body as { attachments: { text: string }[] }).attachments[0]!.text).toContain(
      '<http://127.0.0.1:9470/jobs/job-1?t=',
    );
  });

  it('triggers and resolves a PagerDuty Events v2 incident with one dedup key', async () => {
    const pd = await receiver();
    const svc = await service({
      route: { receiver: 'oncall', ...fast },
      receivers: [
        { name: 'oncall', pagerduty_configs: [{ routing_key: 'R0123456789', url: `${pd.url}/v2/enqueue` }] },
      ],
    });
    const t = Date.now();
    svc.hub.transition(alert({}, 'firing', t), 'firing');
    await waitFor('the trigger', () => pd.received[0]);
    svc.hub.transition(alert({}, 'resolved', t), 'resolved');
    await waitFor('the resolve', () => pd.received[1]);
    const [trigger, resolve] = pd.received.map((r) => r.body as Record<string, unknown>);
    expect(trigger).toMatchObject({
      routing_key: 'R0123456789',
      event_action: 'trigger',
      payload: {
        severity: 'critical',
        source: 'job-1',
        class: 'TrainingStalled',
        summary: '[FIRING:1] TrainingStalled job_id=job-1',
      },
      client: 'trainwatch',
    });
    expect(resolve).toMatchObject({ event_action: 'resolve' });
    expect(resolve!.dedup_key).toBe(trigger!.dedup_key);
    expect(trigger!.dedup_key).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('e-mail over SMTP', () => {
  it('sends the alert to a local SMTP server, retrying while it answers 4xx', async () => {
    const messages: { from: string; to: string[]; data: string }[] = [];
    let refuse = 2;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(_address, _session, cb) {
        if (refuse > 0) {
          refuse--;
          const err = new Error('mailbox busy, try again') as Error & { responseCode: number };
          err.responseCode = 451;
          return cb(err);
        }
        cb();
      },
      onData(stream, session, cb) {
        let data = '';
        stream.on('data', (c: Buffer) => {
          data += c.toString();
        });
        stream.on('end', () => {
          messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data,
          });
          cb();
        });
      },
    });
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const svc = await service({
      route: { receiver: 'mail', ...fast },
      receivers: [
        {
          name: 'mail',
          email_configs: [
            {
              to: 'ml-team@example.com',
              from: 'trainwatch@example.com',
              smarthost: `127.0.0.1:${port}`,
              require_tls: false,
            },
          ],
        },
      ],
      outbox: quickRetry,
    });
    svc.hub.transition(alert({}, 'firing', Date.now()), 'firing');
    await waitFor('the e-mail', () => messages[0], 15_000);
    expect(messages[0]!.from).toBe('trainwatch@example.com');
    expect(messages[0]!.to).toEqual(['ml-team@example.com']);
    expect(messages[0]!.data).toMatch(/Subject: \[FIRING:1\] TrainingStalled job_id=job-1/);
    expect(messages[0]!.data).toContain('training step has not advanced');
    // The server has the message before the client reads its 250 reply and the outbox records the delivery.
    const delivered = await waitFor(
      'the delivery recorded',
      () => svc.store!.notifications(10).find((n) => n.status === 'delivered'),
      15_000,
    );
    expect(delivered.attempts).toBe(3);
  });
});

const ALERTMANAGER = ['/usr/bin/prometheus-alertmanager', '/usr/bin/alertmanager'].find((p) => existsSync(p));

describe('forwarding to a real Alertmanager', () => {
  const run = ALERTMANAGER || process.env.CI === 'true' ? it : it.skip;
  if (!ALERTMANAGER && process.env.CI !== 'true')
    console.warn('skipping the Alertmanager test: apt-get install prometheus-alertmanager');

  run(
    'posts to /api/v2/alerts; Alertmanager shows the alert with its labels, then resolves it',
    async () => {
      if (!ALERTMANAGER)
        throw new Error('prometheus-alertmanager is not installed (CI installs it: APT_PACKAGES in .ci/run)');
      const dir = tempDir('tw-am-');
      const port = await freePort();
      writeFileSync(path.join(dir, 'am.yml'), 'route:\n  receiver: none\nreceivers:\n  - name: none\n');
      const am: ChildProcess = spawn(
        ALERTMANAGER,
        [
          `--config.file=${path.join(dir, 'am.yml')}`,
          `--storage.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--cluster.listen-address=',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let amLog = '';
      am.stderr!.on('data', (d: Buffer) => {
        amLog += d.toString();
      });
      cleanups.push(async () => {
        if (am.exitCode === null) {
          process.kill(am.pid!, 'SIGTERM');
          await new Promise((r) => am.once('exit', r));
        }
      });
      const base = `http://127.0.0.1:${port}`;
      await waitFor(
        `Alertmanager to be ready:\n${amLog}`,
        async () => (await fetch(`${base}/-/ready`)).ok || undefined,
        20_000,
      );
      const svc = await service({
        route: { receiver: 'am', ...fast },
        receivers: [{ name: 'am', alertmanager_configs: [{ url: base }] }],
      });
      const t = Date.now() - 1000;
      const a = alert({ node_id: 'node-3', rank: '7' }, 'firing', t);
      svc.hub.transition(a, 'firing');
      type AmAlert = {
        labels: Record<string, string>;
        fingerprint: string;
        status: { state: string };
        generatorURL: string;
      };
      const seen = await waitFor('the alert in Alertmanager', async () => {
        const list = (await (await fetch(`${base}/api/v2/alerts`)).json()) as AmAlert[];
        return list.find((x) => x.labels.job_id === 'job-1');
      });
      expect(seen.labels).toEqual(a.labels);
      expect(seen.fingerprint).toBe(a.fingerprint);
      expect(seen.status.state).toBe('active');
      expect(seen.generatorURL).toBe(`http://127.0.0.1:9470/jobs/job-1?t=${t}`);
      svc.hub.transition({ ...a, state: 'resolved', resolvedAtMs: Date.now() }, 'resolved');
      await waitFor('the alert resolved in Alertmanager', async () => {
        const list = (await (await fetch(`${base}/api/v2/alerts?active=true`)).json()) as AmAlert[];
        return list.every((x) => x.labels.job_id !== 'job-1') || undefined;
      });
    },
    60_000,
  );
});

describe('action hooks', () => {
  it('runs a command once per alert episode with the alert as JSON and TW_* variables', async () => {
    const dir = tempDir('tw-action-');
    const out = path.join(dir, 'calls.jsonl');
    const script = path.join(dir, 'requeue.mjs');
    writeFileSync(
      script,
      `import { appendFileSync, readFileSync } from 'node:fs';\nconst input = readFileSync(0, 'utf8');\nappendFileSync(${JSON.stringify(out)}, JSON.stringify({ env: { job: process.env.TW_JOB_ID, alert: process.env.TW_ALERTNAME, status: process.env.TW_STATUS }, input: JSON.parse(input) }) + '\\n');\n`,
    );
    const svc = await service({
      actions: [
        {
          name: 'requeue',
          matchers: ['alertname="TrainingStalled"'],
          command: { path: process.execPath, args: [script] },
        },
      ],
    });
    const a = alert({}, 'firing', Date.now());
    svc.hub.transition(a, 'firing');
    svc.hub.transition(a, 'firing'); // a replay after a restart: same episode
    svc.hub.transition(alert({ alertname: 'GPUIdle' }, 'firing', Date.now()), 'firing');
    await waitFor('the action', () => (existsSync(out) ? readFileSync(out, 'utf8') : undefined));
    // Every queued action has run once the hub's writes are done and the outbox holds nothing undelivered; a
    // replay that queued the action twice would show as a second notification here.
    await svc.hub.flush();
    await waitFor(
      'the outbox to settle',
      () => svc.store!.notifications(100).every((n) => n.status === 'delivered') || undefined,
    );
    expect(svc.store!.notifications(100)).toHaveLength(1);
    const calls = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(calls).toHaveLength(1);
    expect(calls[0].env).toEqual({ job: 'job-1', alert: 'TrainingStalled', status: 'firing' });
    expect(calls[0].input).toMatchObject({
      action: 'requeue',
      status: 'firing',
      alert: { name: 'TrainingStalled' },
    });
  });

  it('is off by default and refuses an action without a target', () => {
    expect(alertingConfigSchema.parse({}).actions).toEqual([]);
    expect(() => alertingConfigSchema.parse({ actions: [{ name: 'x', matchers: ['a="b"'] }] })).toThrow(
      /exactly one of webhook or command/,
    );
  });
});
