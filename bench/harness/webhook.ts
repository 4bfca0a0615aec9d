/**
 * A local webhook receiver for the alert scenario: records when each notification arrives. Payload shapes
 * differ (Alertmanager's webhook, trainwatch's notifiers), so a probe is found by its unique id anywhere in
 * the body.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Arrival {
  /** performance.now() in this process when the request body had been read. */
  readonly atMs: number;
  readonly path: string;
  readonly body: string;
}

export class WebhookReceiver {
  readonly arrivals: Arrival[] = [];
  private waiters: { match: (body: string) => boolean; resolve: (a: Arrival) => void }[] = [];
  private server: http.Server | undefined;
  port = 0;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        if (body.length < 1 << 20) body += d;
      });
      req.on('end', () => {
        const arrival: Arrival = { atMs: performance.now(), path: req.url ?? '', body };
        this.arrivals.push(arrival);
        if (this.arrivals.length > 10_000) this.arrivals.shift();
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(body)) return true;
          w.resolve(arrival);
          return false;
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The first notification (already received or to come) whose body contains every one of `needles`. */
  waitFor(needles: readonly string[], timeoutMs: number): Promise<Arrival | undefined> {
    const match = (body: string) => needles.every((n) => body.includes(n));
    const seen = this.arrivals.find((a) => match(a.body));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const waiter = {
        match,
        resolve: (a: Arrival) => {
          clearTimeout(timer);
          resolve(a);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
