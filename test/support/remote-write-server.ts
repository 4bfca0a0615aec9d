/**
 * A scriptable remote-write endpoint for tests: it decodes every request (snappy + WriteRequest, with the
 * collector's own decoders), records it, and answers what the test scripts — a status, or "forward to a real
 * TSDB" (a fault-injecting proxy in front of VictoriaMetrics). Objects per sample are fine here: test code.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SnappyDecoder } from '../../src/collector/snappy.js';
import { ProtoReader } from '../../src/protocol/protobuf.js';

export interface DecodedSample {
  readonly t: number;
  readonly v: number;
  /** The value's bits as 16 hex digits (NaN payloads such as the staleness marker survive JSON and compare). */
  readonly bits: string;
}

export interface DecodedSeries {
  readonly labels: Record<string, string>;
  readonly samples: DecodedSample[];
}

export interface RecordedRequest {
  readonly index: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly series: DecodedSeries[];
  readonly sampleCount: number;
  /** The status answered. */
  status: number;
}

const utf8 = new TextDecoder();

/** Decodes a snappy-compressed remote-write 1.0 WriteRequest (labels, float samples; the rest skipped). */
export function decodeWriteRequest(body: Uint8Array): DecodedSeries[] {
  const buf = new SnappyDecoder().decode(body, 64 << 20);
  const r = new ProtoReader(buf);
  const out: DecodedSeries[] = [];
  const end = buf.length;
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag >>> 3 !== 1) {
      r.skip(tag, end);
      continue;
    }
    const tsEnd = r.lengthDelimited(end, 'timeseries');
    const series: DecodedSeries = { labels: {}, samples: [] };
    while (r.pos < tsEnd) {
      const t = r.tag(tsEnd);
      const field = t >>> 3;
      if (field === 1) {
        const lEnd = r.lengthDelimited(tsEnd, 'label');
        let name = '';
        let value = '';
        while (r.pos < lEnd) {
          const lt = r.tag(lEnd);
          const sEnd = r.lengthDelimited(lEnd, 'label string');
          const s = utf8.decode(buf.subarray(r.pos, sEnd));
          r.pos = sEnd;
          if (lt >>> 3 === 1) name = s;
          else value = s;
        }
        series.labels[name] = value;
      } else if (field === 2) {
        const sEnd = r.lengthDelimited(tsEnd, 'sample');
        let ts = 0;
        let bits = '0000000000000000';
        let v = 0;
        while (r.pos < sEnd) {
          const st = r.tag(sEnd);
          if (st >>> 3 === 1) {
            const view = new DataView(buf.buffer, buf.byteOffset + r.pos, 8);
            bits =
              view.getUint32(4, true).toString(16).padStart(8, '0') +
              view.getUint32(0, true).toString(16).padStart(8, '0');
            v = r.double(sEnd, 'value');
          } else if (st >>> 3 === 2) ts = r.int64(sEnd, 'timestamp');
          else r.skip(st, sEnd);
        }
        series.samples.push({ t: ts, v, bits });
      } else r.skip(t, tsEnd);
    }
    out.push(series);
  }
  return out;
}

export type Answer =
  | { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> }
  | 'forward';

export interface RemoteWriteServer {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Samples of the requests answered 2xx (forwarded ones: as the target answered). */
  acceptedSamples(): number;
  close(): Promise<void>;
}

/**
 * Starts the endpoint on 127.0.0.1. `answer` decides per request (0-based index); with `forwardTo` (a
 * remote-write URL), 'forward' relays the untouched body there and answers what it answered.
 */
export async function startRemoteWriteServer(opts: {
  answer?: (req: RecordedRequest) => Answer | Promise<Answer>;
  forwardTo?: string;
}): Promise<RemoteWriteServer> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = new Uint8Array(Buffer.concat(chunks));
      let rec: RecordedRequest;
      try {
        const series = decodeWriteRequest(body);
        rec = {
          index: requests.length,
          headers: req.headers,
          series,
          sampleCount: series.reduce((n, s) => n + s.samples.length, 0),
          status: 0,
        };
      } catch (err) {
        res.writeHead(400).end(`test server could not decode the request: ${(err as Error).message}`);
        return;
      }
      requests.push(rec);
      try {
        const a = opts.answer ? await opts.answer(rec) : opts.forwardTo ? 'forward' : { status: 204 };
        if (a === 'forward') {
          if (!opts.forwardTo) throw new Error('forward asked without forwardTo');
          const fwd = await fetch(opts.forwardTo, {
            method: 'POST',
            headers: {
              'Content-Encoding': 'snappy',
              'Content-Type': 'application/x-protobuf',
              'X-Prometheus-Remote-Write-Version': '0.1.0',
            },
            body,
          });
          rec.status = fwd.status;
          res.writeHead(fwd.status).end(await fwd.text());
          return;
        }
        rec.status = a.status;
        res.writeHead(a.status, a.headers).end(a.body ?? '');
      } catch (err) {
        rec.status = 599;
        res.writeHead(599).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1/write`,
    requests,
    acceptedSamples: () =>
      requests.filter((r) => r.status >= 200 && r.status < 300).reduce((n, r) => n + r.sampleCount, 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
