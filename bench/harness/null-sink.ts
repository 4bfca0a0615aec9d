/**
 * The null sink: the least an ingest endpoint can do — read the request body and discard it, then answer as
 * a server that accepted it would (204 for remote-write, trainwatch's 200 JSON for native frames). Replaying
 * against it measures the load generator's own ceiling, so that a server figure close to it is known to be
 * limited by the generator rather than by the server.
 *
 * Run as its own process (`null-sink-main.ts`) so that its CPU is accounted apart from the generator's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const NATIVE_OK = JSON.stringify({
  status: 'success',
  data: { series: 0, samples: 0, events: 0, duplicate: false },
});

export interface NullSinkStats {
  requests: number;
  bytes: number;
}

export function startNullSink(
  port = 0,
): Promise<{ server: http.Server; port: number; stats: NullSinkStats }> {
  const stats: NullSinkStats = { requests: 0, bytes: 0 };
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      // What it received so far: lets a scenario check that a sender really sent.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    req.on('data', (chunk: Buffer) => {
      stats.bytes += chunk.length;
    });
    req.on('end', () => {
      stats.requests++;
      if (req.url?.startsWith('/api/v1/ingest')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': NATIVE_OK.length });
        res.end(NATIVE_OK);
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, stats }),
    );
  });
}
