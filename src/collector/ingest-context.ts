/**
 * What every protocol route of the collector shares: the authenticator, the bus writer, limits, per-tenant
 * state and self-metrics, plus the decode-and-encode machinery each route reuses for every request.
 */
import type { FastifyRequest } from 'fastify';
import { type Authenticator, credentialsOf, maybeRequestPrincipal, type Principal } from '../auth/index.js';
import { Errors, TrainwatchError, twError } from '../model/errors.js';
import { ProtoReader } from '../protocol/protobuf.js';
import { type DeclaredMetadata, DeclaredMetadataMemory } from './declared-metadata.js';
import type { IngestEngine } from './ingest-decoder.js';
import type { CollectorMetrics, IngestProtocol } from './metrics.js';
import { PayloadWriter, RefBatch } from './ref-batch.js';
import { type DecodeContext, type DecodeStats, newDecodeStats } from './remote-write-decode.js';
import { SeriesKeyBuilder } from './series-key.js';
import type { SeriesRegistry } from './series-registry.js';
import type { TenantLimits, TenantState } from './tenant-limits.js';
import type { BusWriter } from './to-bus.js';
import type { SeriesLimits } from './validate.js';

export interface IngestLimits extends SeriesLimits {
  readonly maxBodyBytes: number;
  readonly maxPayloadBytes: number;
  readonly maxSamplesPerRequest: number;
  readonly maxInflightBytes: number;
}

export interface CollectorDeps {
  readonly auth: Authenticator;
  readonly busWriter: BusWriter;
  readonly tenants: TenantLimits;
  readonly limits: IngestLimits;
  readonly metrics: CollectorMetrics;
  /**
   * Where request bodies are decoded into bus payloads (ingest-decoder.ts): the ingest worker threads, or
   * this thread (absent: a {@link LocalIngest} over `tenants`).
   */
  readonly engine: IngestEngine;
  /**
   * Where metric metadata senders declared goes (the metadata store, written in batches off the request
   * path); absent: it is dropped. Called only with entries the decoding thread had not passed on before.
   */
  readonly declaredMetadata?: DeclaredMetadataSink;
}

/** Takes declared metric metadata (`MetricMetadataStore` in src/meta implements it); must not block. */
export interface DeclaredMetadataSink {
  noteDeclared(tenant: string, entries: readonly DeclaredMetadata[]): void;
}

/**
 * The reusable pieces of one route's pipeline. Used strictly synchronously from `begin` to `encode`, so one
 * instance serves every request of the route (Node runs one request's synchronous code at a time).
 */
export class DecodePipeline {
  readonly reader = new ProtoReader();
  readonly keys = new SeriesKeyBuilder();
  readonly batch = new RefBatch();
  readonly writer = new PayloadWriter();
  stats: DecodeStats = newDecodeStats();
  /** What this thread's tenants declared about their metrics; only new or changed entries leave it. */
  readonly metadata = new DeclaredMetadataMemory();

  constructor(private readonly deps: { readonly limits: IngestLimits; readonly tenants: TenantLimits }) {
    this.keys.maxLabels = deps.limits.maxLabelsPerSeries;
  }

  /** Opens a request for `tenant`: the registry may compact now, and refs stay valid until `encode`. */
  begin(tenant: string, nowMs: number): { ctx: DecodeContext; state: TenantState } {
    const state = this.deps.tenants.get(tenant, nowMs);
    state.registry.beginRequest(nowMs);
    this.batch.reset();
    this.stats = newDecodeStats();
    this.metadata.begin(tenant);
    return {
      state,
      ctx: {
        reader: this.reader,
        keys: this.keys,
        batch: this.batch,
        registry: state.registry,
        nowMs,
        maxSamples: this.deps.limits.maxSamplesPerRequest,
        stats: this.stats,
        metadata: this.metadata,
      },
    };
  }

  /** Applies the tenant's rate limit to what was decoded, then encodes one payload per partition key. */
  finish(tenant: string, state: TenantState, nowMs: number) {
    const registry: SeriesRegistry = state.registry;
    if (this.batch.sampleCount > 0) {
      this.deps.tenants.chargeSamples(
        state,
        tenant,
        this.batch.sampleCount,
        registry.shown(registry.labelsOf(this.batch.refs[0]!)),
        nowMs,
      );
    }
    return this.writer.encode(this.batch, registry);
  }
}

const PRINCIPAL = Symbol('trainwatch.ingestPrincipal');
type WithPrincipal = FastifyRequest & { [PRINCIPAL]?: Principal };

/**
 * Authenticates an ingest request from its headers alone and remembers the principal on the request. The
 * collector's `onRequest` hook calls it before reserving in-flight budget or reading the body, so a caller
 * without valid credentials costs neither (issue 16, item 1); routes then get the remembered principal.
 */
export function ingestPrincipal(req: FastifyRequest, auth: Authenticator): Principal {
  const r = req as WithPrincipal;
  // The server's access-control hook (src/auth/permissions.ts) has authenticated the route's request already.
  const known = r[PRINCIPAL] ?? maybeRequestPrincipal(req);
  if (known) return known;
  const principal = auth.authenticate(credentialsOf(req), 'ingest');
  r[PRINCIPAL] = principal;
  return principal;
}

/** Maps a refusal to the reason label of `trainwatch_ingest_rejected_requests_total`. */
export function rejectionReason(err: unknown): string {
  if (err instanceof TrainwatchError) {
    const limit = /^limit (?:[a-z_]+\.)?([a-z_]+) exceeded/.exec(err.message);
    if (limit) return limit[1]!;
    switch (err.kind.code) {
      case 'unsupported_media_type':
        return 'content_type';
      case 'unavailable':
        return 'overloaded';
      default:
        return err.kind.code;
    }
  }
  const code = (err as { code?: string }).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return 'body_too_large';
  return 'other';
}

export function protocolOfUrl(url: string | undefined): IngestProtocol | undefined {
  if (url === '/api/v1/write') return 'remote_write';
  if (url === '/v1/metrics') return 'otlp';
  if (url === '/api/v1/ingest') return 'native';
  return undefined;
}

/** The media type of a Content-Type header (lower case, no parameters) and its parameters. */
export function parseContentType(header: string | undefined): { type: string; params: Map<string, string> } {
  const [type = '', ...rest] = (header ?? '').split(';');
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq > 0)
      params.set(
        p.slice(0, eq).trim().toLowerCase(),
        p
          .slice(eq + 1)
          .trim()
          .replace(/^"|"$/g, ''),
      );
  }
  return { type: type.trim().toLowerCase(), params };
}

export function requireBody(body: unknown, what: string): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw twError(Errors.badPayload, `the request has no body: send ${what}`);
  return body;
}
