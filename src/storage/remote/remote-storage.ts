/**
 * `storage.kind: remote`: the processor remote-writes to a Prometheus-compatible TSDB (VictoriaMetrics single
 * or cluster, Mimir, Thanos receive, a managed Prometheus) and queries read raw samples back through the
 * TSDB's Prometheus HTTP API. trainwatch's PromQL engine still evaluates queries; the TSDB only stores and
 * selects.
 *
 * Durability and the bus (DESIGN.md "one log on the hot path"): a remote TSDB is durable once it acknowledged
 * a write, so this storage keeps no bus positions of its own. `checkpoint` resolves once everything appended
 * before it was acknowledged (or refused for good, and counted); the processor then commits its bus offsets,
 * and `coveredPositions` is empty: after a crash the processor resumes at the committed offsets and replays
 * what followed. Replayed samples carry the same (series, timestamp, value): the TSDB must deduplicate them
 * (VictoriaMetrics: `-dedup.minScrapeInterval=1ms`; Prometheus, Mimir and Thanos drop exact duplicates).
 *
 * Tenancy: writes set the `tenant` label, as the embedded TSDB does; a tenant's querier always adds
 * `tenant="<tenant>"` to what it sends, answers nothing to a matcher that excludes its own tenant, and drops
 * any returned series whose `tenant` label is not its own (a misbehaving proxy must not leak data either).
 *
 * Reading raw samples:
 * - `flavor: 'prometheus'` (Prometheus, Mimir, Thanos): an instant query of the selector as a range vector,
 *   `{matchers}[<maxT-minT+1>ms]` at `time=maxT`: the API returns a matrix of the raw samples in
 *   (maxT-range, maxT] = [minT, maxT]. Prometheus leaves staleness markers out of range vectors; a NaN read
 *   back is an ordinary NaN.
 * - `flavor: 'victoriametrics'`: `/api/v1/export` (JSON lines), which streams raw samples without the query
 *   path's limits on points per series. VictoriaMetrics drops ordinary NaN samples at ingestion but keeps
 *   staleness markers (exported as `null`): a NaN/null read back is the staleness marker. The instant-query
 *   form also returns raw samples on VictoriaMetrics 1.79 (checked), so 'prometheus' works against it too.
 *
 * Rollup hints (a dashboard grid: `stepMs` >= 10 s, a rollup range function, `rangeMs === stepMs`, and a metric
 * name fixed by an `=` matcher) are pushed down to the TSDB's window functions: `query_range` of
 * `sum_over_time`, `count_over_time` (and `min_`/`max_`/`last_over_time` when asked) over `[<step>ms]`,
 * evaluated at `k*step - 1`: each window (t - step, t] is [k*step - step, k*step - 1], the same window the
 * embedded TSDB's rollup tiers store at its last millisecond. The answers come back as windows
 * (`resolutionMs = stepMs`) covering every window that overlaps [minT, maxT]. Anything else reads raw samples.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SeriesBatch } from '../../model/batch.js';
import { Errors, twError } from '../../model/errors.js';
import type { Appender, AppendStats, BusPositions, Querier, Storage } from '../storage.js';
import { RemoteQuerier } from './remote-querier.js';
import { type RemoteWriteOptions, RemoteWriteQueue } from './remote-write.js';

export { selectorString } from './remote-querier.js';

export type RemoteFlavor = 'prometheus' | 'victoriametrics';

export interface RemoteStorageOptions {
  /** Remote-write endpoint: VictoriaMetrics `http://vm:8428/api/v1/write`, Mimir `http://mimir/api/v1/push`. */
  readonly writeUrl: string;
  /**
   * Base of the Prometheus HTTP API (`<readUrl>/api/v1/query`): VictoriaMetrics single `http://vm:8428`,
   * cluster `http://vmselect:8481/select/0/prometheus`, Mimir `http://mimir/prometheus`.
   */
  readonly readUrl: string;
  /** How raw samples are read (see the file comment). Default 'prometheus'. */
  readonly flavor?: RemoteFlavor;
  /** Sent with every write and read, e.g. `{ 'X-Scope-OrgID': 'trainwatch' }` for Mimir. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly basicAuth?: { readonly username: string; readonly password: string };
  readonly bearerToken?: string;
  /** The send queue's tuning (shards, batch size, capacity, backoff): see {@link RemoteWriteOptions}. */
  readonly queue?: Omit<
    RemoteWriteOptions,
    'url' | 'headers' | 'basicAuth' | 'bearerToken' | 'registry' | 'logger'
  >;
  /**
   * Most windows one pushed-down `query_range` asks for (longer ranges are split). Default 10,000: under
   * Prometheus's 11,000 points per series and VictoriaMetrics' `-search.maxPointsPerTimeseries` (30,000).
   */
  readonly maxWindowsPerRequest?: number;
  /** Longest one read request may take. Default 60 s. */
  readonly queryTimeoutMs?: number;
  readonly registry?: Registry;
  readonly logger?: Logger;
}

export class RemoteStorage implements Storage {
  readonly appender: Appender;
  readonly queue: RemoteWriteQueue;
  private readonly readBase: string;
  private readonly flavor: RemoteFlavor;
  private readonly readHeaders: Record<string, string>;
  private readonly queryTimeoutMs: number;
  /** @internal */
  readonly maxWindowsPerRequest: number;

  constructor(opts: RemoteStorageOptions) {
    this.queue = new RemoteWriteQueue({
      ...opts.queue,
      url: opts.writeUrl,
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.basicAuth ? { basicAuth: opts.basicAuth } : {}),
      ...(opts.bearerToken ? { bearerToken: opts.bearerToken } : {}),
      ...(opts.registry ? { registry: opts.registry } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.readBase = opts.readUrl.replace(/\/+$/, '');
    this.flavor = opts.flavor ?? 'prometheus';
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 60_000;
    this.maxWindowsPerRequest = Math.max(1, Math.floor(opts.maxWindowsPerRequest ?? 10_000));
    this.readHeaders = {
      Accept: 'application/json',
      'Content-Type': 'application/x-www-form-urlencoded',
      ...(opts.basicAuth
        ? {
            Authorization: `Basic ${Buffer.from(`${opts.basicAuth.username}:${opts.basicAuth.password}`).toString('base64')}`,
          }
        : {}),
      ...(opts.bearerToken ? { Authorization: `Bearer ${opts.bearerToken}` } : {}),
      ...opts.headers,
    };
    this.appender = {
      append: (tenant: string, batch: SeriesBatch, signal?: AbortSignal): Promise<AppendStats> =>
        this.queue.append(tenant, batch, signal),
    };
  }

  /** Resolves once everything appended before this call was acknowledged by the TSDB (or refused and counted). */
  async checkpoint(_positions: BusPositions, signal?: AbortSignal): Promise<void> {
    await this.queue.flush(signal);
  }

  /** Empty: the consumer group's committed offsets are the whole truth for a remote store (see file comment). */
  coveredPositions(): BusPositions {
    return new Map();
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  querier(tenant: string | null, minT: number, maxT: number): Querier {
    return new RemoteQuerier(this, tenant, minT, maxT);
  }

  /** @internal A read request: POST form to `<readUrl><path>`; the parsed JSON or text body, errors mapped. */
  async request(path: string, form: URLSearchParams, signal: AbortSignal | undefined): Promise<string> {
    const url = `${this.readBase}${path}`;
    const timeout = AbortSignal.timeout(this.queryTimeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: this.readHeaders,
        body: form.toString(),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted)
        throw twError(
          Errors.unavailable,
          `remote TSDB did not answer ${path} within ${this.queryTimeoutMs} ms (${this.readBase})`,
        );
      const cause = (err as Error).cause ? `: ${String((err as Error).cause)}` : '';
      throw twError(
        Errors.unavailable,
        `remote TSDB unreachable for ${path} (${this.readBase}): ${(err as Error).message}${cause}`,
      );
    }
    if (res.ok) return text;
    const message = errorMessage(text);
    if (res.status >= 500 || res.status === 429) {
      const ra = Number(res.headers.get('retry-after'));
      throw twError(
        Errors.unavailable,
        `remote TSDB answered ${path} with HTTP ${res.status}: ${message}`,
        Number.isFinite(ra) && ra > 0 ? ra : undefined,
      );
    }
    throw twError(Errors.badRequest, `remote TSDB refused ${path} with HTTP ${res.status}: ${message}`);
  }

  /** @internal */
  get readFlavor(): RemoteFlavor {
    return this.flavor;
  }
}

/** The TSDB's own message: the `error` field of a Prometheus API error, else the body's start. */
function errorMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: string };
    if (typeof j.error === 'string') return j.error;
  } catch {
    // not JSON (VictoriaMetrics' export answers plain text)
  }
  return body.trim().slice(0, 512) || '(empty body)';
}

/** A label name in a selector: bare when valid, quoted otherwise (Prometheus 3 / UTF-8 names). */
