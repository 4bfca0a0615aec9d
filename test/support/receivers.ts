/**
 * Local receivers for notifier tests: an HTTP server that records every request (and can be told to fail
 * for a while), bound to 127.0.0.1 on a free port and closed by the test.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: unknown;
  readonly atMs: number;
}

export interface HttpReceiver {
  readonly url: string;
  readonly received: Received[];
  /** Answer this status (e.g. 503) to the next requests until set back to 200. */
  status: number;
  /** Requests answered with a failure status. */
  failures: number;
  close(): Promise<void>;
}

export async function startHttpReceiver(): Promise<HttpReceiver> {
  const received: Received[] = [];
  const state = { status: 200, failures: 0 };
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => {
      data += c.toString();
    });
    req.on('end', () => {
      if (state.status !== 200) {
        state.failures++;
        res.writeHead(state.status, { 'content-type': 'text/plain' }).end('unavailable for a while');
        return;
      }
      let body: unknown = data;
      try {
        body = JSON.parse(data);
      } catch {
        // Not JSON: keep the text.
      }
      received.push({ path: req.url ?? '', headers: req.headers, body, atMs: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"success"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    get status() {
      return state.status;
    },
    set status(s: number) {
      state.status = s;
    },
    get failures() {
      return state.failures;
    },
    set failures(n: number) {
      state.failures = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
