/**
 * `/-/healthy` and `/-/ready` as Prometheus serves them (web/web.go): plain text, 200 or 503 "Service
 * Unavailable", HEAD without a body; readiness follows the same checks as `/readyz`.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createHttpServer } from './http.js';

const server = createHttpServer({
  logger: pino({ level: 'silent' }),
  registry: new Registry(),
  bodyLimit: 1024,
});
let storageProblem: string | undefined;
server.addReadinessCheck('storage', async () => storageProblem);
afterAll(() => server.app.close());

describe('Prometheus probes', () => {
  it('/-/healthy answers 200 in Prometheus wording, GET and HEAD', async () => {
    const get = await server.app.inject({ method: 'GET', url: '/-/healthy' });
    expect(get.statusCode).toBe(200);
    expect(get.headers['content-type']).toMatch(/^text\/plain/);
    expect(get.body).toBe('trainwatch is Healthy.\n');
    const head = await server.app.inject({ method: 'HEAD', url: '/-/healthy' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });

  it('/-/ready follows the readiness checks: 200 when all pass, 503 "Service Unavailable" when one fails', async () => {
    storageProblem = undefined;
    const ready = await server.app.inject({ method: 'GET', url: '/-/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.body).toBe('trainwatch is Ready.\n');
    expect((await server.app.inject({ method: 'HEAD', url: '/-/ready' })).statusCode).toBe(200);

    storageProblem = 'disk full';
    const notReady = await server.app.inject({ method: 'GET', url: '/-/ready' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.headers['content-type']).toMatch(/^text\/plain/);
    expect(notReady.body).toBe('Service Unavailable');
    const head = await server.app.inject({ method: 'HEAD', url: '/-/ready' });
    expect(head.statusCode).toBe(503);
    expect(head.body).toBe('');
    // /readyz, the same checks, names the failing one.
    const readyz = await server.app.inject({ method: 'GET', url: '/readyz' });
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json().reason).toBe('storage: disk full');
    // /-/healthy stays 200: the process serves.
    expect((await server.app.inject({ method: 'GET', url: '/-/healthy' })).statusCode).toBe(200);
  });
});
