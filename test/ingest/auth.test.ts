/**
 * Authentication and tenant isolation at every ingest endpoint of a whole trainwatch (default auth
 * settings: tokens required to send, anonymous reads on loopback): no token, a malformed, unknown or revoked
 * token, a read-only token, a request naming another tenant → the right status, nothing stored; a `tenant`
 * label in the payload never writes into another tenant.
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

let tw: Trainwatch;
let tokens: TokenStore;
let meta: MetaStore;
const T = Date.now() - 10_000;
const encoder = new NativeEncoder();
let seq = 0;

beforeAll(async () => {
  const dir = tempDir('tw-auth-');
  tw = await startTrainwatch(
    loadConfig({
      flags: { listen: '127.0.0.1:0', data_dir: dir, processor: { checkpoint_interval_ms: 50 } },
    }),
    pino({ level: 'silent' }),
  );
  // A second connection, as `trainwatch token` would open next to the running server.
  meta = new MetaStore(path.join(dir, 'meta.db'));
  tokens = new TokenStore(meta);
});

afterAll(async () => {
  meta?.close();
  await tw?.stop();
});

/** One request per protocol, each writing metric `name` with a `tenant` label that tries to escape. */
function requests(name: string) {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: name, job_id: 'j', tenant: 'victim' }).add(T, 1);
  return {
    native: {
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      body: Buffer.from(
        encoder.encodeFrame({ sourceId: 'auth-test', sequence: seq++, batch: b.build(), events: [] }),
      ),
    },
    remote_write: {
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      body: Buffer.from(
        snappyCompress(
          writeRequestV1([{ labels: { __name__: name, job_id: 'j', tenant: 'victim' }, samples: [[T, 1]] }]),
        ),
      ),
    },
    otlp: {
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceMetrics: [
          {
            resource: { attributes: [{ key: 'tenant', value: { stringValue: 'victim' } }] },
            scopeMetrics: [
              {
                metrics: [
                  {
                    name,
                    gauge: {
                      dataPoints: [
                        {
                          asDouble: 1,
                          timeUnixNano: String(T * 1e6),
                          attributes: [{ key: 'job_id', value: { stringValue: 'j' } }],
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
    },
  } as const;
}

async function send(
  req: { url: string; headers: Record<string, string>; body: Buffer | string },
  extra: Record<string, string> = {},
) {
  return tw.app.inject({
    method: 'POST',
    url: req.url,
    headers: { ...req.headers, ...extra },
    payload: req.body,
  });
}

async function readAs(token: string | undefined, metric: string) {
  const res = await tw.app.inject({
    method: 'GET',
    url: `/api/tw/v1/series?metric=${metric}&start=${T - 1}&end=${T + 1}`,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return res;
}

describe('ingest authentication', () => {
  it('refuses each bad credential with the right status at every endpoint, storing nothing', async () => {
    const readOnly = tokens.create({ tenant: 'team-a', scope: 'read' }).token;
    const revoked = tokens.create({ tenant: 'team-a', scope: 'ingest' });
    tokens.revoke(revoked.info.id);
    const teamB = tokens.create({ tenant: 'team-b', scope: 'ingest' }).token;
    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['no token', {}, 401, /authentication required to send data/],
      ['a malformed token', { authorization: 'Bearer hunter2' }, 401, /not a trainwatch token/],
      [
        'an unknown token',
        { authorization: `Bearer twk_0123456789abcdef_${'A'.repeat(43)}` },
        401,
        /is not known/,
      ],
      ['a revoked token', { authorization: `Bearer ${revoked.token}` }, 401, /was revoked/],
      [
        'a read-only token',
        { authorization: `Bearer ${readOnly}` },
        403,
        /has scope read; to send data it needs scope ingest/,
      ],
      [
        "another tenant's token",
        { authorization: `Bearer ${teamB}`, 'x-scope-orgid': 'team-a' },
        403,
        /names tenant "team-a" .* belong to tenant team-b/,
      ],
      ['Basic credentials', { authorization: 'Basic dTpw' }, 401, /must be "Bearer <token>"/],
    ];
    for (const [protocol, req] of Object.entries(requests('auth_refused'))) {
      for (const [what, headers, status, message] of cases) {
        const res = await send(req, headers);
        expect(res.statusCode, `${protocol} with ${what}: ${res.body}`).toBe(status);
        expect(res.json().error, `${protocol} with ${what}`).toMatch(message);
      }
    }
    await tw.processor!.checkpoint();
    const admin = tokens.create({ tenant: 'team-a', scope: 'admin' }).token;
    expect((await readAs(admin, 'auth_refused')).json().data.series).toEqual([]);
    const metrics = await tw.registry.metrics();
    expect(metrics).toMatch(
      /trainwatch_ingest_rejected_requests_total\{protocol="otlp",reason="unauthorized"\} 5/,
    );
    expect(metrics).toMatch(
      /trainwatch_ingest_rejected_requests_total\{protocol="remote_write",reason="forbidden"\} 2/,
    );
  });

  it('writes into the tenant of the token, whatever tenant label the payload carries', async () => {
    const attacker = tokens.create({ tenant: 'attacker', scope: 'ingest' }).token;
    const victimRead = tokens.create({ tenant: 'victim', scope: 'read' }).token;
    const attackerRead = tokens.create({ tenant: 'attacker', scope: 'read' }).token;
    for (const [protocol, req] of Object.entries(requests('escape_attempt'))) {
      const res = await send(req, { authorization: `Bearer ${attacker}` });
      expect(res.statusCode, `${protocol}: ${res.body}`).toBeLessThan(300);
    }
    const own = await waitFor('three series in the attacker tenant', async () => {
      const s = (await readAs(attackerRead, 'escape_attempt')).json().data.series as {
        labels: Record<string, string>;
      }[];
      return s.length >= 1 ? s : undefined;
    });
    for (const s of own) expect(s.labels.tenant).toBe('attacker');
    expect((await readAs(victimRead, 'escape_attempt')).json().data.series).toEqual([]);
  });

  it('lets an anonymous local user read (default: read on loopback) but not send', async () => {
    expect((await readAs(undefined, 'anything')).statusCode).toBe(200);
    const res = await send(requests('anon_write').remote_write);
    expect(res.statusCode).toBe(401);
    // A bad token is refused even where anonymous reads are allowed.
    expect((await readAs('twk_bad', 'anything')).statusCode).toBe(401);
  });

  it('accepts a token created while the server runs, and refuses it at once when revoked', async () => {
    const created = tokens.create({ tenant: 'late', scope: 'ingest' });
    const req = requests('late_token').remote_write;
    expect((await send(req, { authorization: `Bearer ${created.token}` })).statusCode).toBe(204);
    tokens.revoke(created.info.id);
    expect((await send(req, { authorization: `Bearer ${created.token}` })).statusCode).toBe(401);
  });
});
