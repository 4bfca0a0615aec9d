/**
 * Replays pre-encoded requests against an HTTP endpoint with bounded concurrency over keep-alive
 * connections, as fast as possible or at a target rate, bounded by a time limit.
 *
 * Concurrency is `concurrency` sequential streams (like the shards of a remote-write queue): stream w sends
 * the requests of jobs with `job % concurrency === w`, in dataset order, one at a time. So one job's requests
 * never overtake each other and every series' samples arrive in time order.
 *
 * 429 and 503 are retried (the same body, after `Retry-After` or a short backoff); any other non-2xx answer
 * counts the request's samples as refused and keeps the first error message.
 *
 * Each accepted request's acknowledgement latency is measured here, by the sender: from its first POST to the
 * 2xx answer, retries and their waits included (what a remote-write client waits before it may send on).
 */
import http from 'node:http';
import type { FleetRequest } from './dataset.js';
import { REMOTE_WRITE_HEADERS } from './remote-write.js';
import { type LatencySummary, summarizeLatencies } from './stats.js';

export type PayloadFormat = 'remote-write' | 'native';

export const INGEST_PATHS: Readonly<Record<PayloadFormat, string>> = {
  'remote-write': '/api/v1/write',
  native: '/api/v1/ingest',
};

export interface ReplayOptions {
  /** Base URL, e.g. http://127.0.0.1:8428 */
  readonly baseUrl: string;
  readonly format: PayloadFormat;
  readonly concurrency: number;
  /** Samples per second to aim for; 0 or absent: as fast as the server answers. */
  readonly targetSamplesPerSec?: number;
  /** Stop issuing requests after this long (requests in flight finish). */
  readonly maxSeconds: number;
  /** Only the requests of these chunks (1-based, inclusive); absent: all. */
  readonly chunks?: { readonly first: number; readonly last: number };
  /** Give up retrying one request after this long. */
  readonly retryForMs?: number;
  readonly onProgress?: (p: ReplayProgress) => void;
  readonly progressEveryMs?: number;
}

export interface ReplayProgress {
  readonly elapsedMs: number;
  readonly samplesAccepted: number;
  readonly requestsDone: number;
  readonly requestsTotal: number;
}

export interface ReplayResult {
  readonly format: PayloadFormat;
  readonly url: string;
  readonly concurrency: number;
  readonly targetSamplesPerSec: number;
  readonly requestsTotal: number;
  readonly requestsSent: number;
  readonly requestsAccepted: number;
  readonly requestsRefused: number;
  readonly retries: number;
  readonly samplesTotal: number;
  readonly samplesAccepted: number;
  readonly samplesRefused: number;
  readonly bytesSent: number;
  /** From the first request to the last answer. */
  readonly elapsedMs: number;
  readonly samplesPerSec: number;
  readonly stoppedByTimeLimit: boolean;
  readonly statusCounts: Readonly<Record<string, number>>;
  readonly firstError: string;
  /** Of the accepted requests: first POST → 2xx answer (ms). */
  readonly ackLatencyMs: LatencySummary;
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly retryAfterMs: number | undefined;
}

function post(
  agent: http.Agent,
  url: URL,
  headers: Record<string, string>,
  body: Uint8Array,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...headers, 'content-length': String(body.length) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        // Keep the body of refusals (the error message); drain and drop the body of successes.
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (!ok && text.length < 2000) text += d;
        });
        res.on('end', () => {
          const ra = res.headers['retry-after'];
          const seconds = ra === undefined ? Number.NaN : Number(ra);
          resolve({
            status,
            body: text,
            retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function replay(all: readonly FleetRequest[], opts: ReplayOptions): Promise<ReplayResult> {
  const range = opts.chunks;
  const requests = range ? all.filter((r) => r.chunk >= range.first && r.chunk <= range.last) : all;
  const url = new URL(INGEST_PATHS[opts.format], opts.baseUrl);
  const headers =
    opts.format === 'remote-write'
      ? { ...REMOTE_WRITE_HEADERS }
      : { 'content-type': 'application/x-trainwatch-batch' };
  const concurrency = Math.max(1, opts.concurrency);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const streams: FleetRequest[][] = Array.from({ length: concurrency }, () => []);
  for (const r of requests) streams[r.job % concurrency]!.push(r);

  const rate = opts.targetSamplesPerSec ?? 0;
  const retryForMs = opts.retryForMs ?? 60_000;
  const statusCounts: Record<string, number> = {};
  let firstError = '';
  let sent = 0;
  let accepted = 0;
  let refused = 0;
  let retries = 0;
  let samplesAccepted = 0;
  let samplesRefused = 0;
  let samplesIssued = 0;
  let bytesSent = 0;
  let stoppedByTimeLimit = false;
  const started = performance.now();
  const deadline = started + opts.maxSeconds * 1000;
  let lastAnswer = started;
  const ackMs: number[] = [];

  const progressTimer = opts.onProgress
    ? setInterval(
        () =>
          opts.onProgress!({
            elapsedMs: performance.now() - started,
            samplesAccepted,
            requestsDone: accepted + refused,
            requestsTotal: requests.length,
          }),
        opts.progressEveryMs ?? 2000,
      )
    : undefined;

  const runStream = async (stream: FleetRequest[]) => {
    for (const r of stream) {
      if (performance.now() >= deadline) {
        stoppedByTimeLimit = true;
        return;
      }
      if (rate > 0) {
        // Pace globally: the request may start once the samples issued before it are due.
        const dueAt = started + (samplesIssued / rate) * 1000;
        const wait = dueAt - performance.now();
        if (wait > 0) await sleep(wait);
      }
      samplesIssued += r.samples;
      const body = opts.format === 'remote-write' ? r.remoteWrite : r.native;
      const firstSentAt = performance.now();
      const giveUpAt = firstSentAt + retryForMs;
      sent++;
      for (let attempt = 0; ; attempt++) {
        let answer: Answer;
        try {
          answer = await post(agent, url, headers, body);
        } catch (err) {
          answer = { status: 0, body: (err as Error).message, retryAfterMs: undefined };
        }
        bytesSent += body.length;
        lastAnswer = performance.now();
        const key = String(answer.status);
        statusCounts[key] = (statusCounts[key] ?? 0) + 1;
        if (answer.status >= 200 && answer.status < 300) {
          accepted++;
          samplesAccepted += r.samples;
          ackMs.push(lastAnswer - firstSentAt);
          break;
        }
        const retryable = answer.status === 429 || answer.status === 503 || answer.status === 0;
        if (retryable && performance.now() < giveUpAt && performance.now() < deadline) {
          retries++;
          await sleep(Math.min(answer.retryAfterMs ?? 50 * 2 ** Math.min(attempt, 5), 2000));
          continue;
        }
        refused++;
        samplesRefused += r.samples;
        if (!firstError) firstError = `HTTP ${answer.status}: ${answer.body.slice(0, 500)}`;
        break;
      }
    }
  };

  try {
    await Promise.all(streams.map(runStream));
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    agent.destroy();
  }
  const elapsedMs = lastAnswer - started;
  return {
    format: opts.format,
    url: url.toString(),
    concurrency,
    targetSamplesPerSec: rate,
    requestsTotal: requests.length,
    requestsSent: sent,
    requestsAccepted: accepted,
    requestsRefused: refused,
    retries,
    samplesTotal: requests.reduce((a, r) => a + r.samples, 0),
    samplesAccepted,
    samplesRefused,
    bytesSent,
    elapsedMs,
    samplesPerSec: elapsedMs > 0 ? (samplesAccepted / elapsedMs) * 1000 : 0,
    stoppedByTimeLimit,
    statusCounts,
    firstError,
    ackLatencyMs: summarizeLatencies(ackMs),
  };
}
