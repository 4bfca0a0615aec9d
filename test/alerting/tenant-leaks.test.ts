/**
 * Cross-tenant leaks (issue 16, item 7), against a running trainwatch with tokens for tenants a and b:
 * b's admin must not see a's notification outbox, b's detector counts must not include a's samples,
 * `/metrics` on a non-loopback listener must not name tenants, and a request naming another tenant in
 * X-Scope-OrgID is refused with 403 on `/api/tw/v1/*` as on every other API.
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { withoutTenantLabel } from '../../src/server/http.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';

let tw: Trainwatch;
let hook: HttpReceiver;
let meta: MetaStore;
const token: Record<'a' | 'b', { admin: string; ingest: string }> = {
  a: { admin: '', ingest: '' },
  b: { admin: '', ingest: '' },
};

beforeAll(async () => {
  hook = await startHttpReceiver();
  const dir = tempDir('tw-leaks-');
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: dir,
        processor: { checkpoint_interval_ms: 100 },
        auth: { anonymous_tenant: null },
        alerting: {
          route: { receiver: 'hook', group_wait: '50ms', group_interval: '1s' },
          receivers: [{ name: 'hook', webhook_configs: [{ url: `${hook.url}/hook` }] }],
        },
      },
    }),
    pino({ level: 'silent' }),
  );
  meta = new MetaStore(path.join(dir, 'meta.db'));
  const tokens = new TokenStore(meta);
  for (const t of ['a', 'b'] as const) {
    token[t].admin = tokens.create({ tenant: t, scope: 'admin' }).token;
    token[t].ingest = tokens.create({ tenant: t, scope: 'ingest' }).token;
  }
});

afterAll(async () => {
  meta?.close();
  await tw?.stop();
  await hook?.close();
});

const get = (url: string, bearer: string, headers: Record<string, string> = {}) =>
  tw.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${bearer}`, ...headers } });

describe('tenant isolation of the alerting and detector APIs', () => {
  it('shows a tenant admin only its own outbox, and detector counts of its own data', async () => {
    // Tenant a's job reports a NaN loss: an alert fires and a notification is queued for its group.
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'train_loss', job_id: 'secret-job-of-a', rank: '0' }).add(
      Date.now() - 1000,
      Number.NaN,
    );
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE, authorization: `Bearer ${token.a.ingest}` },
      payload: Buffer.from(
        new NativeEncoder().encodeFrame({ sourceId: 'a', sequence: 1, batch: b.build(), events: [] }),
      ),
    });
    expect(res.statusCode, res.body).toBe(200);
    const ofA = await waitFor('a notification of tenant a', async () => {
      const r = (await get('/api/tw/v1/notifications', token.a.admin)).json();
      return r.data.notifications.length > 0 ? r.data : undefined;
    });
    expect(JSON.stringify(ofA)).toContain('secret-job-of-a');

    const ofB = (await get('/api/tw/v1/notifications', token.b.admin)).json();
    expect(ofB.status).toBe('success');
    expect(JSON.stringify(ofB.data.notifications)).not.toContain('secret-job-of-a');
    expect(JSON.stringify(ofB.data.groups)).not.toContain('secret-job-of-a');
    expect(ofB.data.notifications).toEqual([]);

    const detectorsOfA = (await get('/api/tw/v1/detectors', token.a.admin)).json().data.detectors;
    const detectorsOfB = (await get('/api/tw/v1/detectors', token.b.admin)).json().data.detectors;
    const nonfinite = (ds: { name: string; samples: number; tracked: number }[]) =>
      ds.find((d) => d.name === 'nonfinite')!;
    expect(nonfinite(detectorsOfA).samples).toBeGreaterThan(0);
    expect(nonfinite(detectorsOfB)).toMatchObject({ samples: 0, tracked: 0, lastEvaluation: null });
  });

  it('refuses X-Scope-OrgID naming another tenant with 403 on /api/tw/v1/*', async () => {
    for (const url of ['/api/tw/v1/jobs', '/api/tw/v1/detectors', '/api/tw/v1/fleet']) {
      const other = await get(url, token.b.admin, { 'x-scope-orgid': 'a' });
      expect(other.statusCode, `${url}: ${other.body}`).toBe(403);
      expect(other.json().error).toMatch(
        /names tenant "a" \(X-Scope-OrgID\) but its credentials belong to tenant b/,
      );
      expect((await get(url, token.b.admin, { 'x-scope-orgid': 'b' })).statusCode, url).toBe(200);
    }
  });
});

describe('/metrics without tenant names', () => {
  it('sums series over tenants and drops the label', () => {
    const text = [
      '# HELP x_total X.',
      '# TYPE x_total counter',
      'x_total{protocol="native",tenant="a"} 2',
      'x_total{protocol="native",tenant="b"} 3',
      'x_total{tenant="c",protocol="otlp"} 1',
      'active{tenant="a"} 4',
      'active{tenant="b"} 5',
      'other{job="j"} 7',
    ].join('\n');
    expect(withoutTenantLabel(text)).toBe(
      [
        '# HELP x_total X.',
        '# TYPE x_total counter',
        'x_total{protocol="native"} 5',
        'x_total{protocol="otlp"} 1',
        'active 9',
        'other{job="j"} 7',
      ].join('\n'),
    );
  });

  it('a non-loopback listener does not name tenants on /metrics by default; a loopback one does', async () => {
    const remote = await startTrainwatch(
      loadConfig({
        flags: { listen: '0.0.0.0:0', data_dir: tempDir('tw-leaks-'), auth: { anonymous_tenant: null } },
      }),
      pino({ level: 'silent' }),
    );
    try {
      const tokens = new TokenStore(new MetaStore(path.join(remote.config.data_dir, 'meta.db')));
      const t = tokens.create({ tenant: 'hidden-tenant', scope: 'ingest' }).token;
      const b = new SeriesBatchBuilder();
      b.addSeries({ __name__: 'm', job_id: 'j' }).add(Date.now(), 1);
      const res = await remote.app.inject({
        method: 'POST',
        url: '/api/v1/ingest',
        headers: { 'content-type': NATIVE_CONTENT_TYPE, authorization: `Bearer ${t}` },
        payload: Buffer.from(
          new NativeEncoder().encodeFrame({ sourceId: 's', sequence: 1, batch: b.build(), events: [] }),
        ),
      });
      expect(res.statusCode, res.body).toBe(200);
      const metrics = (await remote.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/trainwatch_ingest_samples_total\{protocol="native"\} 1/);
      expect(metrics).not.toContain('hidden-tenant');
    } finally {
      await remote.stop();
    }
    const loopback = (await tw.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(loopback).toMatch(/tenant="a"/);
  });
});
