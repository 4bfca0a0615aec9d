/**
 * Bounds and re-checks the long-lived Server-Sent-Events streams (`/api/tw/v1/live`, `/api/tw/v1/ticks`):
 * - a cap on open streams per tenant and in total (`query.max_live_streams_per_tenant`,
 *   `query.max_live_streams`): each stream polls storage for as long as it is open, so without a cap a
 *   client could open streams until the server does nothing else (issue 16, item 8);
 * - the stream's credentials are checked again at every poll: a stream whose token was revoked ends with an
 *   `event: error` naming why, instead of sending data forever.
 */
import type { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { type Authenticator, credentialsOf, type Principal, type RequestCredentials } from '../auth/index.js';
import { Errors, TrainwatchError, twError } from '../model/errors.js';

export interface LiveStreamLimits {
  readonly maxStreams: number;
  readonly maxStreamsPerTenant: number;
}

export const DEFAULT_LIVE_STREAM_LIMITS: LiveStreamLimits = { maxStreams: 256, maxStreamsPerTenant: 32 };

export class LiveStreams {
  private total = 0;
  private readonly perTenant = new Map<string, number>();

  constructor(readonly limits: LiveStreamLimits = DEFAULT_LIVE_STREAM_LIMITS) {}

  /** Counts a new stream of `tenant`, or throws 429 naming the limit. Call the returned function once, at close. */
  open(tenant: string): () => void {
    const mine = this.perTenant.get(tenant) ?? 0;
    if (mine >= this.limits.maxStreamsPerTenant) {
      throw twError(
        Errors.tooManyRequests,
        `limit query.max_live_streams_per_tenant exceeded: tenant ${tenant} has ${mine} live streams open ` +
          `(the limit is ${this.limits.maxStreamsPerTenant}); close one first`,
        5,
      );
    }
    if (this.total >= this.limits.maxStreams) {
      throw twError(
        Errors.tooManyRequests,
        `limit query.max_live_streams exceeded: ${this.total} live streams are open on this server ` +
          `(the limit is ${this.limits.maxStreams}); retry later`,
        5,
      );
    }
    this.total++;
    this.perTenant.set(tenant, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.perTenant.get(tenant) ?? 1) - 1;
      if (n <= 0) this.perTenant.delete(tenant);
      else this.perTenant.set(tenant, n);
    };
  }

  /** Streams open now. */
  get count(): number {
    return this.total;
  }
}

/** Used when the deps give none: one cap for every stream of the process. */
export const defaultLiveStreams = new LiveStreams();

/**
 * Re-authenticates a stream's request as it was made: undefined while it may go on, else why it must stop
 * (token revoked, scope gone). The same tenant is required: a stream never changes tenant.
 */
export function streamCredentialsCheck(
  auth: Authenticator,
  req: { readonly headers: Readonly<Record<string, string | string[] | undefined>> },
  principal: Principal,
): () => string | undefined {
  const credentials: RequestCredentials = credentialsOf(req);
  return () => {
    try {
      const again = auth.authenticate(credentials, 'read');
      return again.tenant === principal.tenant ? undefined : 'the credentials now belong to another tenant';
    } catch (err) {
      if (err instanceof TrainwatchError) return err.message;
      throw err;
    }
  };
}

/** A keep-alive comment goes out after this long without data, so proxies keep the stream open. */
const KEEP_ALIVE_MS = 15_000;

/** How often a stream polls when its deps give no `livePollMs`. */
const DEFAULT_POLL_MS = 250;

/** What every stream-serving route's deps carry (the REST `live` and the dashboard's `ticks`). */
export interface LiveStreamDeps {
  readonly auth: Authenticator;
  /** How often a stream looks for new samples; default {@link DEFAULT_POLL_MS}. */
  readonly livePollMs?: number;
  /** Caps open live streams (one cap shared by every stream route); default: {@link defaultLiveStreams}. */
  readonly liveStreams?: LiveStreams;
}

export interface EventStreamOptions {
  readonly deps: LiveStreamDeps;
  readonly principal: Principal;
  /** The first line the client sees (an SSE comment). */
  readonly banner: string;
  /** Poll once at once rather than after the first `pollMs`. */
  readonly pollAtOnce: boolean;
  /** One poll: the data event to send, or undefined when there is nothing new. Never runs twice at once. */
  readonly poll: () => Promise<unknown>;
}

/**
 * Serves one Server-Sent-Events stream of a request: counted against the stream limits (a 429 before anything
 * is sent), credentials re-checked at every poll (a revoked token ends it with `event: error`), `poll`
 * every `deps.livePollMs` with at most one in flight, its answer sent as `data:`, a keep-alive comment after
 * {@link KEEP_ALIVE_MS} of silence, a failed poll reported as `event: error` (the stream goes on), and
 * everything released when the client goes away.
 */
export function serveEventStream(
  req: {
    readonly headers: Readonly<Record<string, string | string[] | undefined>>;
    readonly raw: EventEmitter;
  },
  reply: { hijack(): void; readonly raw: ServerResponse },
  opts: EventStreamOptions,
): void {
  const release = (opts.deps.liveStreams ?? defaultLiveStreams).open(opts.principal.tenant);
  const stillAllowed = streamCredentialsCheck(opts.deps.auth, req, opts.principal);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(`: ${opts.banner}\n\n`);
  let closed = false;
  let polling = false;
  let lastWrite = Date.now();
  const poll = async () => {
    if (closed || polling) return;
    const refused = stillAllowed();
    if (refused !== undefined) {
      res.end(`event: error\ndata: ${JSON.stringify({ error: `stream closed: ${refused}` })}\n\n`);
      stop();
      return;
    }
    polling = true;
    try {
      const data = await opts.poll();
      if (closed) return;
      if (data !== undefined) {
        res.write(`data: ${JSON.stringify(data)}\n\n`);
        lastWrite = Date.now();
      } else if (Date.now() - lastWrite > KEEP_ALIVE_MS) {
        res.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
    } catch (err) {
      if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
    } finally {
      polling = false;
    }
  };
  const timer = setInterval(() => void poll(), opts.deps.livePollMs ?? DEFAULT_POLL_MS);
  const stop = () => {
    closed = true;
    clearInterval(timer);
    release();
  };
  req.raw.on('close', stop);
  if (opts.pollAtOnce) void poll();
}
