/**
 * TLS and mutual TLS on the listener (issue 16; docs/security.md, "TLS", "mTLS"), against a real trainwatch
 * over HTTPS with a PKI made at test time by `openssl`:
 * - a real agent ships over HTTPS with a client certificate and no token; its data lands in the tenant its
 *   certificate's URI SAN names, and a mapped CN names another tenant;
 * - a certificate of an unknown CA identifies nobody (`request`: 401; `require`: the handshake fails);
 * - SIGHUP serves renewed files to new connections, and a broken renewal keeps the old certificate (logged);
 * - configuration mistakes are refused naming the key.
 * The server runs with user login on (`auth.users`), as a shared server would: certificates identify agents
 * all the same.
 */
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, loadAgentConfig, silentLogger } from '../../src/agent/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createHttpServer, type HttpServer } from '../../src/server/http.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { hasOpenssl, type Issued, TestCa } from '../support/tls-pki.js';

const dir = tempDir('tw-tls-');
let ca: TestCa;
let rogueCa: TestCa;
let server: Issued;
/** URI SAN trainwatch://tenant/acme. */
let agentAcme: Issued;
/** No SAN; its CN is mapped to tenant beta in http.tls.client_tenants. */
let agentBeta: Issued;
/** Same SAN as agentAcme, signed by a CA the server does not trust. */
let rogue: Issued;
let tw: Trainwatch;
let port: number;
const logLines: string[] = [];

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One HTTPS request to the trainwatch under test, as `client` (a client certificate) or without one. */
function request(
  pathAndQuery: string,
  opts: { client?: Issued; method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: pathAndQuery,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        ca: ca.ca.cert,
        servername: 'localhost',
        agent: false,
        ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The fingerprint of the certificate a new TLS connection to `port` is served. */
function servedFingerprint(at: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: at, rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe.skipIf(!hasOpenssl())('TLS and mTLS on the listener', () => {
  beforeAll(async () => {
    ca = TestCa.create(dir, 'agents-ca');
    rogueCa = TestCa.create(dir, 'rogue-ca');
    server = ca.issue('server', { cn: 'localhost', san: ['DNS:localhost', 'IP:127.0.0.1'], usage: 'server' });
    agentAcme = ca.issue('agent-acme', {
      cn: 'node-17',
      san: ['URI:trainwatch://tenant/acme'],
      usage: 'client',
    });
    agentBeta = ca.issue('agent-beta', { cn: 'beta-node', usage: 'client' });
    rogue = rogueCa.issue('rogue', { cn: 'node-17', san: ['URI:trainwatch://tenant/acme'], usage: 'client' });
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: path.join(dir, 'data'),
          bus: { fsync: 'never' },
          processor: { workers: 0, checkpoint_interval_ms: 50 },
          query: { workers: 0 },
          // With user login on, requests need a session, a token or a client certificate: agents keep
          // shipping by certificate alone.
          auth: { users: true },
          http: {
            tls: {
              cert_file: server.certFile,
              key_file: server.keyFile,
              client_ca_file: ca.ca.certFile,
              client_auth: 'request',
              client_tenants: { 'beta-node': 'beta' },
              client_scopes: ['ingest', 'read'],
            },
          },
        },
      }),
      logger,
    );
    port = Number(new URL(tw.url).port);
  }, 60_000);

  afterAll(async () => {
    await tw?.stop();
  });

  it('listens over HTTPS only', async () => {
    expect(tw.url).toMatch(/^https:\/\//);
    const res = await request('/healthz');
    expect(res.status).toBe(200);
    expect(res.headers['strict-transport-security']).toMatch(/max-age=31536000/);
  });

  it('an agent ships with a client certificate and no token; its tenant is the one its URI SAN names', async () => {
    const agentConfig = loadAgentConfig({
      flags: {
        server: {
          url: `https://127.0.0.1:${port}`,
          tls: { ca_file: ca.ca.certFile, cert_file: agentAcme.certFile, key_file: agentAcme.keyFile },
        },
        data_dir: path.join(dir, 'agent'),
        gpu: { enabled: false },
        host: { enabled: false },
        local: { listen: null, socket: null },
        self_metrics_interval_ms: 1000,
        ship: { interval_ms: 50 },
      },
    });
    const agent = new Agent(agentConfig, { env: {}, logger: silentLogger });
    await agent.start();
    try {
      const query = `/api/v1/query?query=${encodeURIComponent('count(trainwatch_agent_buffer_bytes)')}`;
      const found = await waitFor('the agent self-metrics in tenant acme', async () => {
        const res = await request(query, { client: agentAcme });
        if (res.status !== 200) throw new Error(`${res.status} ${res.body}`);
        return JSON.parse(res.body).data.result.length > 0 ? true : undefined;
      });
      expect(found).toBe(true);
    } finally {
      await agent.stop();
    }
    // Tenant acme's data, and nobody else's: the mapped tenant sees nothing of it, and a caller without a
    // certificate, token or session is refused (user login is on).
    const query = `/api/v1/query?query=${encodeURIComponent('count(trainwatch_agent_buffer_bytes)')}`;
    const beta = await request(query, { client: agentBeta });
    expect(beta.status, beta.body).toBe(200);
    expect(JSON.parse(beta.body).data.result).toEqual([]);
    const anonymous = await request(query);
    expect(anonymous.status, anonymous.body).toBe(401);
  });

  it('the tenant comes from the CN mapping; a request naming another tenant is refused', async () => {
    const res = await request('/api/v1/query?query=vector(1)', {
      client: agentBeta,
      headers: { 'x-scope-orgid': 'acme' },
    });
    expect(res.status).toBe(403);
    expect(res.body).toContain('but its credentials belong to tenant beta');
    const own = await request('/api/v1/query?query=vector(1)', {
      client: agentBeta,
      headers: { 'x-scope-orgid': 'beta' },
    });
    expect(own.status, own.body).toBe(200);
  });

  it('a certificate of an unknown CA identifies nobody', async () => {
    const res = await request('/api/v1/query?query=vector(1)', { client: rogue });
    expect(res.status).toBe(401);
    expect(res.body).toContain('is not signed by a CA in http.tls.client_ca_file');
    const ingest = await request('/api/v1/ingest', {
      client: rogue,
      method: 'POST',
      headers: { 'content-type': 'application/x-trainwatch-batch' },
      body: Buffer.from('x'),
    });
    expect(ingest.status).toBe(401);
  });

  it('a certificate may do what http.tls.client_scopes grants, and no more', async () => {
    const res = await request('/api/tw/v1/notifications', { client: agentAcme });
    expect(res.status, res.body).toBe(403);
    expect(res.body).toContain(
      'mtls:node-17 (tenant acme) has scope ingest, read; to change settings it needs scope admin',
    );
  });

  it('SIGHUP serves renewed files to new connections; a broken renewal keeps the old certificate', async () => {
    const before = await servedFingerprint(port);
    expect(before).toBe(server.fingerprint256);
    // The renewal writes new files in place, as cert-manager and certbot do, then signals.
    const renewed = ca.issue('server', {
      cn: 'localhost',
      san: ['DNS:localhost', 'IP:127.0.0.1'],
      usage: 'server',
    });
    expect(renewed.fingerprint256).not.toBe(before);
    process.emit('SIGHUP', 'SIGHUP');
    expect(await servedFingerprint(port)).toBe(renewed.fingerprint256);
    // Agents still connect and authenticate with the renewed server certificate (same CA).
    expect((await request('/api/v1/query?query=vector(1)', { client: agentAcme })).status).toBe(200);

    writeFileSync(server.certFile, 'not a certificate\n');
    process.emit('SIGHUP', 'SIGHUP');
    expect(await servedFingerprint(port)).toBe(renewed.fingerprint256);
    expect(
      logLines.some((l) => l.includes('TLS reload failed; still serving the previous certificate')),
    ).toBe(true);
  });
});

describe.skipIf(!hasOpenssl())('client_auth: require', () => {
  let http: HttpServer;
  let at: number;
  beforeAll(async () => {
    // Its own files: the test above leaves its server certificate file broken on purpose.
    const own = ca.issue('server-require', {
      cn: 'localhost',
      san: ['DNS:localhost', 'IP:127.0.0.1'],
      usage: 'server',
    });
    http = createHttpServer({
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      bodyLimit: 1024,
      tls: {
        certFile: own.certFile,
        keyFile: own.keyFile,
        clientCaFile: ca.ca.certFile,
        clientAuth: 'require',
        minVersion: 'TLSv1.3',
      },
    });
    const url = await http.app.listen({ host: '127.0.0.1', port: 0 });
    at = Number(new URL(url).port);
  });
  afterAll(async () => {
    await http?.app.close();
  });

  function handshake(client?: Issued, maxVersion?: tls.SecureVersion): Promise<string> {
    return new Promise((resolve) => {
      const socket = tls.connect(
        {
          host: '127.0.0.1',
          port: at,
          ca: ca.ca.cert,
          servername: 'localhost',
          ...(client ? { cert: client.cert, key: client.key } : {}),
          ...(maxVersion ? { maxVersion } : {}),
        },
        () => {
          // TLS 1.3 reports a refused client certificate after the handshake: write, then wait for the verdict.
          socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        },
      );
      let answer = '';
      socket.on('data', (d: Buffer) => {
        answer += d.toString();
      });
      // A refused certificate ends the connection with an alert: an error, or an end before any answer.
      socket.on('end', () => resolve(answer === '' ? 'refused' : answer.split('\r\n')[0]!));
      socket.on('error', (err) => resolve(`error: ${err.message}`));
    });
  }

  it('the handshake succeeds only with a certificate of the client CA, over TLS 1.3', async () => {
    expect(http.tlsEnabled).toBe(true);
    expect(await handshake(agentAcme)).toBe('HTTP/1.1 200 OK');
    expect(await handshake(rogue)).toMatch(/^(refused|error: .*(unknown ca|alert))/i);
    expect(await handshake(undefined)).toMatch(/^(refused|error: .*(certificate required|alert))/i);
    expect(await handshake(agentAcme, 'TLSv1.2')).toMatch(/^error: .*(protocol version|alert)/i);
  });
});

describe('http.tls configuration', () => {
  it('refuses client authentication without a CA bundle, naming the key', () => {
    expect(() =>
      loadConfig({ flags: { http: { tls: { cert_file: 'a', key_file: 'b', client_auth: 'require' } } } }),
    ).toThrow(/http\.tls\.client_ca_file.*required with http\.tls\.client_auth: require/);
    expect(() => loadConfig({ flags: { http: { tls: { cert_file: 'a' } } } })).toThrow(/http\.tls\.key_file/);
    expect(() =>
      loadConfig({ flags: { http: { tls: { cert_file: 'a', key_file: 'b', min_version: 'TLSv1.0' } } } }),
    ).toThrow(/http\.tls\.min_version/);
  });

  it('a certificate file that cannot be read is a start-up error naming the key', () => {
    expect(() =>
      createHttpServer({
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
        bodyLimit: 1024,
        tls: {
          certFile: '/nonexistent/cert.pem',
          keyFile: '/nonexistent/key.pem',
          clientAuth: 'none',
          minVersion: 'TLSv1.2',
        },
      }),
    ).toThrow(/http\.tls\.cert_file: cannot read \/nonexistent\/cert\.pem/);
  });
});
