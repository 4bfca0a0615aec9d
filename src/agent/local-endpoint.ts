/**
 * The agent's endpoint for the Python SDK and anything else on the node: the native protocol unchanged
 * (docs/protocol.md) at `POST /api/v1/ingest`, on 127.0.0.1:9471 and on a Unix socket. The agent adds its
 * node labels to every series that lacks them (the sender's labels win), keeps the sender's idempotency key
 * (source id + sequence) so that a retry through the agent is still recognised by the collector, puts the
 * frame in the disk buffer, and answers 200 only then. Retried frames already buffered answer
 * `duplicate: true` without being buffered twice.
 *
 * Built on node:http rather than Fastify: two routes do not justify ~20 MB of resident memory on every node.
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { SeriesBatch } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import type { LabelSet } from '../model/labels.js';
import { DecodeError } from '../protocol/bytes.js';
import { decodeFrame, NATIVE_CONTENT_TYPE, type NativeFrame } from '../protocol/native.js';
import { BufferFullError } from './buffer/segment-queue.js';
import { withDefaults } from './labels.js';
import type { AgentLogger } from './log.js';

export interface LocalEndpointOptions {
  /** host:port, or null for none. */
  readonly listen: string | null;
  /** Unix socket path, or null for none. */
  readonly socket: string | null;
  readonly maxBodyBytes: number;
  readonly nodeLabels: Readonly<Record<string, string>>;
  /**
   * Buffers a frame: `frame` is the sender's, relabelled; `original` its bytes when no label was added (they
   * can be buffered as they are). Resolves once buffered.
   */
  readonly buffer: (frame: NativeFrame, original: Uint8Array | undefined) => Promise<void>;
  readonly metricsText: () => string;
  readonly logger: AgentLogger;
}

export interface LocalEndpointCounters {
  frames: number;
  samples: number;
  duplicates: number;
  rejected: number;
}

const DEDUP_WINDOW = 65_536;

export class LocalEndpoint {
  readonly counters: LocalEndpointCounters = { frames: 0, samples: 0, duplicates: 0, rejected: 0 };
  private readonly servers: http.Server[] = [];
  private readonly seen = new Map<string, true>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Where it listens, e.g. `127.0.0.1:9471` (the port is the real one when 0 was asked). */
  address: string | undefined;

  constructor(private readonly opts: LocalEndpointOptions) {}

  async start(): Promise<void> {
    if (this.opts.listen) {
      const i = this.opts.listen.lastIndexOf(':');
      const host = this.opts.listen.slice(0, i).replace(/^\[|\]$/g, '');
      const port = Number(this.opts.listen.slice(i + 1));
      const srv = this.server();
      await listen(srv, { host, port });
      const a = srv.address() as net.AddressInfo;
      this.address = `${host}:${a.port}`;
    }
    if (this.opts.socket) {
      const socket = this.opts.socket;
      if (existsSync(socket)) {
        if (await isListening(socket)) throw new Error(`another process listens on the socket ${socket}`);
        rmSync(socket, { force: true }); // left by a previous run that was killed
      }
      const srv = this.server();
      await listen(srv, { path: socket });
      // Every local user's training process may hand metrics to the agent, as on the loopback port.
      chmodSync(socket, 0o666);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (this.opts.socket) rmSync(this.opts.socket, { force: true });
  }

  private server(): http.Server {
    const srv = http.createServer((req, res) => void this.handle(req, res));
    srv.keepAliveTimeout = 30_000;
    this.servers.push(srv);
    return srv;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'POST' && url === '/api/v1/ingest') return await this.ingest(req, res);
      if (req.method === 'GET' && url === '/healthz') return json(res, 200, { status: 'ok' });
      if (req.method === 'GET' && url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.opts.metricsText());
        return;
      }
      req.resume();
      return error(res, 404, 'not_found', `no route for ${req.method} ${url}`);
    } catch (err) {
      this.opts.logger.error({ err: err as Error }, 'local endpoint: request failed');
      if (!res.headersSent) error(res, 500, 'internal', 'internal error; see the agent log');
    }
  }

  private async ingest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (contentType !== NATIVE_CONTENT_TYPE) {
      req.resume();
      this.counters.rejected++;
      return error(
        res,
        415,
        'unsupported_media_type',
        `Content-Type must be ${NATIVE_CONTENT_TYPE}, got ${JSON.stringify(contentType)}`,
      );
    }
    const body = await readBody(req, this.opts.maxBodyBytes);
    if (body === undefined) {
      this.counters.rejected++;
      return error(
        res,
        413,
        'payload_too_large',
        `request body is larger than the limit of ${this.opts.maxBodyBytes} bytes`,
      );
    }
    let frame: NativeFrame;
    try {
      frame = decodeFrame(body);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      this.counters.rejected++;
      return error(res, 400, 'bad_payload', `malformed native batch: ${err.message}`);
    }
    const summary = {
      series: frame.batch.series.length,
      samples: frame.batch.sampleCount,
      events: frame.events.length,
    };
    const key = `${frame.sourceId}\u0000${frame.sequence}`;
    if (this.seen.has(key)) {
      this.counters.duplicates++;
      return json(res, 200, { status: 'success', data: { ...summary, duplicate: true } });
    }
    let pending = this.inflight.get(key);
    const duplicate = pending !== undefined;
    if (!pending) {
      const labelled = relabel(frame.batch, this.opts.nodeLabels);
      pending = this.opts.buffer(
        { ...frame, batch: labelled ?? frame.batch, events: frame.events as JobEvent[] },
        labelled ? undefined : body,
      );
      this.inflight.set(key, pending);
    }
    try {
      await pending;
    } catch (err) {
      this.inflight.delete(key);
      if (err instanceof BufferFullError) {
        this.counters.rejected++;
        return error(res, 413, 'payload_too_large', err.message);
      }
      this.opts.logger.error({ err: err as Error }, 'local endpoint: cannot buffer a batch');
      res.setHeader('retry-after', '1');
      return error(
        res,
        503,
        'unavailable',
        `the agent cannot buffer the batch right now: ${(err as Error).message}`,
      );
    }
    this.inflight.delete(key);
    if (!duplicate) {
      this.remember(key);
      this.counters.frames++;
      this.counters.samples += summary.samples;
    } else this.counters.duplicates++;
    return json(res, 200, { status: 'success', data: { ...summary, duplicate } });
  }

  private remember(key: string): void {
    this.seen.set(key, true);
    if (this.seen.size > DEDUP_WINDOW) this.seen.delete(this.seen.keys().next().value!);
  }
}

/** The batch with the node's labels added where missing, or undefined if no series needed any. */
export function relabel(
  batch: SeriesBatch,
  nodeLabels: Readonly<Record<string, string>>,
): SeriesBatch | undefined {
  let series: LabelSet[] | undefined;
  for (let i = 0; i < batch.series.length; i++) {
    const labels = batch.series[i]!;
    const next = withDefaults(labels, nodeLabels);
    if (next !== labels) {
      series ??= batch.series.slice();
      series[i] = next;
    }
  }
  return series ? { ...batch, series } : undefined;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function error(res: http.ServerResponse, status: number, errorType: string, message: string): void {
  json(res, status, { status: 'error', errorType, error: message });
}

function listen(srv: http.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(options, () => {
      srv.off('error', reject);
      resolve();
    });
  });
}

function isListening(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
