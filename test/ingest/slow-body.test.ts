/**
 * Slow-body denial of service (issue 16, item 1): connections without a token that declare a 16 MB body and
 * send nothing used to reserve the whole in-flight ingest budget, so every tenant got 503, and the server
 * never closed them. Now credentials are checked from the headers before any budget is reserved or any body
 * byte read (401 and the connection closed), a request whose body does not arrive in time is closed
 * (`http.request_timeout`), and connections are limited per client and while unauthenticated.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { collectorHarness } from '../support/ingest-harness.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

const BIG = 16 << 20;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function listening(h: ReturnType<typeof collectorHarness>): Promise<number> {
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => h.app.close());
  return (h.app.server.address() as net.AddressInfo).port;
}

/** A raw connection that sends `head` and then nothing; collects what the server answers until it closes. */
function rawConnection(port: number, head: string) {
  const socket = net.connect(port, '127.0.0.1');
  let answer = '';
  socket.on('data', (d) => {
    answer += d.toString('latin1');
  });
  socket.on('error', () => {});
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(answer)));
  void connected.then(() => socket.write(head));
  closers.push(async () => socket.destroy());
  return { socket, connected, closed, answer: () => answer };
}

function slowWriteHead(port: number, authorization?: string): string {
  return (
    `POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    `Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n` +
    (authorization ? `Authorization: ${authorization}\r\n` : '') +
    `Content-Length: ${BIG}\r\n\r\n`
  );
}

const body = () =>
  Buffer.from(snappyCompress(writeRequestV1([{ labels: { __name__: 'up' }, samples: [[Date.now(), 1]] }])));

describe('slow bodies without credentials', () => {
  it('do not block an authenticated tenant, and are answered 401 and closed before their body is read', async () => {
    const h = collectorHarness({
      anonymousScopes: [],
      limits: { maxBodyBytes: BIG, maxInflightBytes: 8 * BIG },
      connections: { requestTimeoutMs: 60_000 },
    });
    const port = await listening(h);
    const { token } = h.tokens.create({ tenant: 'team-a', scope: 'ingest' });

    const attackers = Array.from({ length: 8 }, () => rawConnection(port, slowWriteHead(port)));
    // Each is refused from its headers alone: 401, and the server closes the connection without
    // waiting for the 16 MB it declared (the request timeout here is a minute, so only that closes them).
    const answers = await Promise.all(attackers.map((a) => a.closed));
    for (const a of answers) {
      expect(a).toMatch(/^HTTP\/1\.1 401 /);
      expect(a).toMatch(/authentication required to send data/);
    }

    const res = await fetch(`http://127.0.0.1:${port}/api/v1/write`, {
      method: 'POST',
      headers: { ...RW1_HEADERS, authorization: `Bearer ${token}` },
      body: body(),
    });
    expect(res.status, await res.text()).toBe(204);
    expect(h.bus.stored().map((r) => r.tenant)).toEqual(['team-a']);
  });

  it('while they are still open, an authenticated tenant gets 2xx (budget is only reserved after auth)', async () => {
    // Attackers holding their connections open (they never read the 401): the budget stays free.
    const h = collectorHarness({
      anonymousScopes: [],
      limits: { maxBodyBytes: BIG, maxInflightBytes: 8 * BIG },
    });
    const port = await listening(h);
    const { token } = h.tokens.create({ tenant: 'team-a', scope: 'ingest' });
    const attackers = Array.from({ length: 8 }, () => rawConnection(port, slowWriteHead(port)));
    await Promise.all(attackers.map((a) => a.connected));
    const inflight = async () =>
      (await h.registry.getSingleMetric('trainwatch_ingest_inflight_bytes')!.get()).values[0]?.value ?? 0;
    expect(await inflight()).toBe(0);
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/write`, {
      method: 'POST',
      headers: { ...RW1_HEADERS, authorization: `Bearer ${token}` },
      body: body(),
    });
    expect(res.status, await res.text()).toBe(204);
  });
});

describe('timeouts and connection limits', () => {
  it('closes an authenticated request whose body never arrives (http.request_timeout), freeing its budget', async () => {
    const h = collectorHarness({
      anonymousScopes: [],
      limits: { maxBodyBytes: BIG, maxInflightBytes: BIG },
      connections: { requestTimeoutMs: 300 },
    });
    const port = await listening(h);
    const { token } = h.tokens.create({ tenant: 'team-a', scope: 'ingest' });
    const slow = rawConnection(port, slowWriteHead(port, `Bearer ${token}`));
    expect(await slow.closed).toMatch(/^HTTP\/1\.1 408 /);
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/write`, {
      method: 'POST',
      headers: { ...RW1_HEADERS, authorization: `Bearer ${token}` },
      body: body(),
    });
    expect(res.status, await res.text()).toBe(204);
  });

  it('closes a connection whose headers never finish (http.headers_timeout)', async () => {
    const h = collectorHarness({ connections: { headersTimeoutMs: 200, requestTimeoutMs: 200 } });
    const port = await listening(h);
    const slow = rawConnection(port, 'POST /api/v1/write HTTP/1.1\r\nHost: x\r\n');
    expect(await slow.closed).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes connections beyond http.max_connections_per_client', async () => {
    const h = collectorHarness({ connections: { maxConnectionsPerClient: 3 } });
    const port = await listening(h);
    const held = Array.from({ length: 3 }, () => rawConnection(port, ''));
    await Promise.all(held.map((c) => c.connected));
    const extra = rawConnection(port, '');
    expect(await extra.closed).toBe('');
    // The three held ones are still served.
    held[0]!.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await new Promise<void>((resolve) => held[0]!.socket.once('data', () => resolve()));
    expect(held[0]!.answer()).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('closes the oldest unauthenticated connection beyond http.max_unauthenticated_connections', async () => {
    const h = collectorHarness({ connections: { maxUnauthenticatedConnections: 2 } });
    const port = await listening(h);
    const first = rawConnection(port, '');
    await first.connected;
    // A connection that carried a successful request is no longer unauthenticated.
    first.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await new Promise<void>((resolve) => first.socket.once('data', () => resolve()));
    const idle = [rawConnection(port, ''), rawConnection(port, '')];
    await Promise.all(idle.map((c) => c.connected));
    const newest = rawConnection(port, '');
    await newest.connected;
    expect(await idle[0]!.closed).toBe('');
    expect(first.socket.destroyed).toBe(false);
    expect(newest.socket.destroyed).toBe(false);
  });
});
