/**
 * Sends the buffered frames to the collector, oldest first, each until it is accepted, refused or too old:
 * the contract of docs/protocol.md, as `sendFrame` in src/protocol/native-client.ts implements it (same
 * backoff: full jitter over base·2^attempt capped at `maxDelayMs`, never sooner than `Retry-After`; same
 * meaning of every status). It is written again here over node:http because `fetch` (undici) costs the agent
 * ~25 MB of resident memory, more than a third of its footprint budget (measured; docs/agent.md).
 *
 * A frame leaves the buffer only when the collector said 200 (stored or duplicate), when it said the frame
 * itself is wrong (400/413/415: retrying cannot help; dropped as `rejected`, counted and logged), or when it
 * outlived the buffer TTL (dropped as `ttl`). 401/403 are not the frame's fault: the agent keeps retrying at
 * the maximum delay and logs, so that fixing the token loses nothing within the TTL.
 */
import http from 'node:http';
import type https from 'node:https';
import { NATIVE_CONTENT_TYPE } from '../../protocol/native.js';
import { parseRetryAfter } from '../../protocol/native-client.js';
import type { BufferedRecord, SegmentQueue } from '../buffer/segment-queue.js';
import type { AgentLogger } from '../log.js';

export interface ShipperOptions {
  /** Collector base URL, e.g. http://trainwatch:9470 */
  readonly url: string;
  readonly token?: string | undefined;
  readonly requestTimeoutMs: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly ttlMs: number;
  readonly logger: AgentLogger;
  readonly now?: () => number;
  /** For an https:// URL (config `server.tls`): trusted CAs, a client certificate and key, the name to check. */
  readonly tls?: ShipperTls;
}

export interface ShipperTls {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  /** Checked against the server certificate instead of the URL's host (and sent as SNI). */
  readonly servername?: string | undefined;
}

export interface ShipperCounters {
  shippedFrames: number;
  shippedSamples: number;
  duplicateFrames: number;
  /** Attempts that failed and were retried. */
  retries: number;
  /** Requests by outcome class: ok, client_error, auth_error, server_error, network_error, throttled. */
  requests: Record<string, number>;
  lastSuccessMs: number;
  /** 1 while the last attempt reached the collector and succeeded. */
  up: number;
}

interface PostResult {
  readonly status: number;
  readonly body: string;
  readonly retryAfterMs: number | undefined;
  readonly error: string;
}

export class Shipper {
  readonly counters: ShipperCounters = {
    shippedFrames: 0,
    shippedSamples: 0,
    duplicateFrames: 0,
    retries: 0,
    requests: {},
    lastSuccessMs: 0,
    up: 0,
  };
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly endpoint: URL;
  private client: typeof http | typeof https = http;
  private agent: http.Agent | undefined;
  private readonly now: () => number;
  private lastAuthLog = 0;

  constructor(
    private readonly queue: SegmentQueue,
    private readonly opts: ShipperOptions,
  ) {
    this.endpoint = new URL(`${opts.url.replace(/\/$/, '')}/api/v1/ingest`);
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.endpoint.protocol === 'https:') {
      const mod = await import('node:https');
      this.client = mod.default;
      const t = this.opts.tls;
      this.agent = new mod.default.Agent({
        keepAlive: true,
        maxSockets: 1,
        ...(t?.ca ? { ca: t.ca } : {}),
        ...(t?.cert ? { cert: t.cert } : {}),
        ...(t?.key ? { key: t.key } : {}),
        ...(t?.servername ? { servername: t.servername } : {}),
      });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    this.agent?.destroy();
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const rec = await this.queue.next(signal);
      if (!rec) return;
      await this.deliver(rec, signal);
    }
  }

  /** Sends one record until it leaves the buffer (ack or drop) or the shipper stops (it stays buffered). */
  private async deliver(rec: BufferedRecord, signal: AbortSignal): Promise<void> {
    const expiresAt = rec.createdAtMs + this.opts.ttlMs;
    let attempt = 0;
    for (;;) {
      if (signal.aborted) return;
      attempt++;
      const r = await this.post(rec.frame, signal);
      if (signal.aborted) return;
      const kind = outcomeClass(r.status);
      this.counters.requests[kind] = (this.counters.requests[kind] ?? 0) + 1;
      if (r.status >= 200 && r.status < 300) {
        this.counters.up = 1;
        this.counters.lastSuccessMs = this.now();
        this.counters.shippedFrames++;
        this.counters.shippedSamples += rec.samples;
        if (/"duplicate"\s*:\s*true/.test(r.body)) this.counters.duplicateFrames++;
        this.queue.ack(rec);
        return;
      }
      this.counters.up = 0;
      if (r.status === 400 || r.status === 413 || r.status === 415 || r.status === 422) {
        this.opts.logger.error(
          { status: r.status, error: r.body.slice(0, 500), samples: rec.samples },
          'the collector refused a batch as invalid; dropping it (retrying cannot help)',
        );
        this.queue.drop(rec, 'rejected');
        return;
      }
      let delay =
        Math.random() * Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.min(attempt, 20));
      if (r.status === 401 || r.status === 403) {
        delay = this.opts.maxDelayMs;
        if (this.now() - this.lastAuthLog > 60_000) {
          this.lastAuthLog = this.now();
          this.opts.logger.error(
            { status: r.status, error: r.body.slice(0, 300) },
            'the collector refused the agent token; retrying (check --token / server.token)',
          );
        }
      } else if (attempt === 1 || attempt % 20 === 0) {
        this.opts.logger.warn(
          { status: r.status, error: (r.error || r.body).slice(0, 300), attempt },
          'cannot deliver to the collector; buffering and retrying',
        );
      }
      delay = Math.max(delay, r.retryAfterMs ?? 0);
      if (this.now() + delay >= expiresAt) {
        // It would be too old by the next attempt: wait until it expires, then count it as dropped.
        await sleep(Math.max(0, expiresAt - this.now()), signal);
        if (signal.aborted) return;
        this.queue.drop(rec, 'ttl');
        return;
      }
      this.counters.retries++;
      await sleep(delay, signal);
    }
  }

  private post(frame: Uint8Array, signal: AbortSignal): Promise<PostResult> {
    return new Promise<PostResult>((resolve) => {
      const headers: Record<string, string | number> = {
        'content-type': NATIVE_CONTENT_TYPE,
        'content-length': frame.length,
      };
      if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
      let settled = false;
      const finish = (r: PostResult) => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      const req = this.client.request(
        this.endpoint,
        {
          method: 'POST',
          headers,
          agent: this.agent,
          timeout: this.opts.requestTimeoutMs,
          signal,
          // Per request too: the request's own SNI (from the URL's host) would override the agent's.
          ...(this.opts.tls?.servername ? { servername: this.opts.tls.servername } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            // Answers are small JSON; keep at most 16 KiB of a misbehaving one.
            if (size < 16_384) chunks.push(c);
            size += c.length;
          });
          res.on('end', () => {
            const ra = res.headers['retry-after'];
            finish({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              retryAfterMs: typeof ra === 'string' ? parseRetryAfter(ra) : undefined,
              error: '',
            });
          });
          res.on('error', (err) =>
            finish({ status: 0, body: '', retryAfterMs: undefined, error: err.message }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.requestTimeoutMs} ms`)));
      req.on('error', (err) => finish({ status: 0, body: '', retryAfterMs: undefined, error: err.message }));
      req.end(frame);
    });
  }
}

function outcomeClass(status: number): string {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 0) return 'network_error';
  if (status === 401 || status === 403) return 'auth_error';
  if (status === 429 || status === 503) return 'throttled';
  if (status >= 500) return 'server_error';
  return 'client_error';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
