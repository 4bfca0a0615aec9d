/**
 * The alert hub writes alert changes in batches (hub.ts, "Persistence"): a change waits in memory until the
 * next write, which comes before any notification or action about it, before the history is read, when the
 * processor is about to write its detector state, and at least every `persist_interval`. These tests use an
 * interval of an hour, so every write they see was caused by one of those events.
 */
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';
import { alertingConfigSchema } from '../../src/alerting/config.js';
import type { Alert } from '../../src/alerting/notifier.js';
import { type AlertingService, createAlerting } from '../../src/alerting/service.js';
import type { AlertChange } from '../../src/alerting/tracker.js';
import { MetaStore } from '../../src/meta/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function service(
  alerting: Record<string, unknown>,
  dir = tempDir('tw-hub-persist-'),
): Promise<AlertingService> {
  const meta = new MetaStore(path.join(dir, 'meta.db'));
  const svc = createAlerting({
    config: alertingConfigSchema.parse({ persist_interval: '1h', ...alerting }),
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

function alert(jobId: string, state: Alert['state'], activeAtMs: number, firingAtMs: number | null): Alert {
  const labels = { alertname: 'GPUIdle', severity: 'warning', tenant: 'default', job_id: jobId, gpu: '0' };
  return {
    labels,
    annotations: { summary: 'idle' },
    state,
    activeAtMs,
    firingAtMs,
    resolvedAtMs: state === 'resolved' ? activeAtMs + 60_000 : null,
    fingerprint: fingerprint(labels),
    url: `/jobs/${jobId}?t=${activeAtMs}`,
    value: 0.01,
    source: 'detector',
    name: 'GPUIdle',
    origin: 'waste',
  };
}

/** What the store holds, read directly (a read through the hub would write first). */
function stored(svc: AlertingService): string[] {
  return svc
    .store!.query({ tenant: 'default' })
    .map((a) => `${a.labels.job_id} ${a.state} ${a.activeAtMs}`)
    .sort();
}

describe('alert hub persistence', () => {
  it('keeps changes in memory until a write; a pending alert dropped before it leaves no trace', async () => {
    const svc = await service({});
    const hub = svc.hub;
    const changes: string[] = [];
    hub.onChange((a, c: AlertChange) => changes.push(`${a.labels.job_id} ${c}`));
    hub.transition(alert('flap', 'pending', 1000, null), 'pending');
    hub.transition({ ...alert('flap', 'resolved', 1000, null), resolvedAtMs: 4000 }, 'dropped');
    hub.transition(alert('idle', 'pending', 2000, null), 'pending');
    hub.transition(alert('idle', 'firing', 2000, 5000), 'firing');
    expect(stored(svc)).toEqual([]);
    expect(hub.openAlerts('default').map((a) => `${a.labels.job_id} ${a.state}`)).toEqual(['idle firing']);
    expect(hub.unsavedCount).toBe(2);

    expect(await hub.flush()).toBe(true);
    expect(stored(svc)).toEqual(['idle firing 2000']);
    expect(svc.store!.query({ tenant: 'default' })[0]!.firingAtMs).toBe(5000);
    expect(hub.unsavedCount).toBe(0);

    // A change reported again (a replay) is recognised as known, written or not: no second event.
    hub.transition(alert('idle', 'firing', 2000, 5000), 'firing');
    hub.transition(alert('idle', 'pending', 2000, null), 'pending');
    expect(changes).toEqual(['flap pending', 'flap dropped', 'idle pending', 'idle firing']);
    expect(hub.unsavedCount).toBe(0);

    // The resolution keeps the firing time; reading the history writes it first.
    hub.transition({ ...alert('idle', 'resolved', 2000, 5000), resolvedAtMs: 9000 }, 'resolved');
    expect(stored(svc)).toEqual(['idle firing 2000']);
    const history = await hub.query({ tenant: 'default' });
    expect(history.map((a) => `${a.state} ${a.firingAtMs} ${a.resolvedAtMs}`)).toEqual([
      'resolved 5000 9000',
    ]);
    expect(stored(svc)).toEqual(['idle resolved 2000']);
  });

  it('writes a change before the notification about it is queued', async () => {
    const hook: HttpReceiver = await startHttpReceiver();
    cleanups.push(() => hook.close());
    const svc = await service({
      route: { receiver: 'hook', group_wait: '10ms', group_interval: '1h' },
      receivers: [{ name: 'hook', webhook_configs: [{ url: `${hook.url}/hook` }] }],
    });
    const atEnqueue: string[][] = [];
    const enqueue = svc.store!.enqueue.bind(svc.store);
    svc.store!.enqueue = (...args: Parameters<typeof enqueue>) => {
      atEnqueue.push(stored(svc));
      return enqueue(...args);
    };
    svc.hub.transition(alert('idle', 'firing', 2000, 2000), 'firing');
    expect(stored(svc)).toEqual([]);
    await waitFor('the webhook', () => hook.received[0]);
    expect(atEnqueue).toEqual([['idle firing 2000']]);
  });

  it('writes before actions run, and on the interval', async () => {
    const dir = tempDir('tw-hub-persist-');
    const svc = await service(
      {
        persist_interval: '50ms',
        actions: [
          { name: 'note', matchers: ['alertname="GPUIdle"'], on: ['firing'], command: { path: 'true' } },
        ],
      },
      dir,
    );
    svc.hub.transition(alert('acted', 'firing', 3000, 3000), 'firing');
    // The action's queued run and the alert row went to disk together, before the hub returned.
    expect(stored(svc)).toEqual(['acted firing 3000']);
    svc.hub.transition(alert('later', 'pending', 4000, null), 'pending');
    expect(stored(svc)).toEqual(['acted firing 3000']);
    await waitFor('the interval write', () => stored(svc).length === 2 || undefined);
    expect(stored(svc)).toEqual(['acted firing 3000', 'later pending 4000']);
  });
});
