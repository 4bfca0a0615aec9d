/**
 * A small client for the Prometheus HTTP query API (`/api/v1/query`, `/api/v1/query_range`), spoken the
 * same way to trainwatch, VictoriaMetrics and Prometheus.
 */

export interface PromSeries {
  readonly metric: Record<string, string>;
  /** Instant vector: [seconds, "value"]. */
  readonly value?: [number, string];
  /** Range vector / matrix: [[seconds, "value"], ...]. */
  readonly values?: [number, string][];
}

export interface PromData {
  readonly resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  readonly result: PromSeries[] | [number, string];
}

export class PromApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class PromApi {
  /** @param extraParams added to every query (e.g. VictoriaMetrics's `nocache=1`). */
  constructor(
    readonly baseUrl: string,
    private readonly extraParams: Readonly<Record<string, string>> = {},
  ) {}

  private async get(path: string, params: Record<string, string>, timeoutMs: number): Promise<PromData> {
    const url = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries({ ...params, ...this.extraParams })) url.searchParams.set(k, v);
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: { status?: string; data?: PromData; error?: string; errorType?: string };
    try {
      body = JSON.parse(text);
    } catch {
      throw new PromApiError(`${path}: HTTP ${res.status}: ${text.slice(0, 300)}`, res.status);
    }
    if (!res.ok || body.status !== 'success' || !body.data) {
      throw new PromApiError(
        `${path}: HTTP ${res.status}: ${body.errorType ?? ''} ${body.error ?? text.slice(0, 300)}`,
        res.status,
      );
    }
    return body.data;
  }

  /** Instant query; `timeSec` absent means the server's now. */
  async instant(query: string, timeSec?: number, timeoutMs = 60_000): Promise<PromSeries[]> {
    const params: Record<string, string> = { query };
    if (timeSec !== undefined) params.time = String(timeSec);
    const data = await this.get('/api/v1/query', params, timeoutMs);
    if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
    return data.result as PromSeries[];
  }

  async range(query: string, startSec: number, endSec: number, stepSec: number, timeoutMs = 60_000) {
    const data = await this.get(
      '/api/v1/query_range',
      { query, start: String(startSec), end: String(endSec), step: String(stepSec) },
      timeoutMs,
    );
    return data.result as PromSeries[];
  }

  /**
   * Sends a query as a load client does: the HTTP status, the size of the body, and a refusal's error text;
   * a result is read but not parsed (parsing a large result here would slow the client, not the server).
   * Throws when `signal` aborts or the connection fails.
   */
  async send(
    path: '/api/v1/query' | '/api/v1/query_range',
    params: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<{ status: number; bytes: number; error: string }> {
    const url = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries({ ...params, ...this.extraParams })) url.searchParams.set(k, v);
    const res = await fetch(url, { signal });
    if (res.ok) return { status: res.status, bytes: (await res.arrayBuffer()).byteLength, error: '' };
    const text = await res.text();
    return { status: res.status, bytes: text.length, error: text.slice(0, 300) };
  }

  /** True if the query API exists here; otherwise why not (e.g. "GET /api/v1/query answered 404"). */
  async available(): Promise<true | string> {
    try {
      await this.instant('1', undefined, 10_000);
      return true;
    } catch (err) {
      if (err instanceof PromApiError && err.status === 404) return 'endpoint /api/v1/query missing (404)';
      return `query API failed: ${(err as Error).message}`;
    }
  }
}
