/**
 * `POST /api/v1/ingest`: the native protocol (docs/protocol.md). Reads the body up to the size limit,
 * authenticates, drops retried batches by idempotency key, decodes and validates the whole batch, appends it
 * to the bus, and answers 200 only once the bus made it durable.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth/index.js';
import type { SeriesBatch } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import { formatSeries } from '../model/labels.js';
import { DecodeError } from '../protocol/bytes.js';
import {
  type DecodeLimits,
  decodeFrameHeader,
  decodePayload,
  framePayload,
  NATIVE_CONTENT_TYPE,
} from '../protocol/native.js';
import type { IdempotencyWindow } from './idempotency.js';
import { ingestPrincipal } from './ingest-context.js';
import type { CollectorMetrics } from './metrics.js';
import { NativeRefDecoder } from './native-decode.js';
import { ProtoError } from './protobuf.js';
import { PayloadWriter, RefBatch } from './ref-batch.js';
import { SeriesKeyBuilder } from './series-key.js';
import type { TenantLimits } from './tenant-limits.js';
import type { BusWriter, EncodedPart } from './to-bus.js';
import { type SeriesLimits, validateBatch } from './validate.js';

export interface NativeIngestDeps {
  readonly auth: Authenticator;
  readonly busWriter: BusWriter;
  readonly idempotency: IdempotencyWindow;
  readonly limits: SeriesLimits &
    DecodeLimits & { readonly maxBodyBytes: number; readonly maxSamplesPerRequest?: number };
  readonly metrics: CollectorMetrics;
  /** Per-tenant active-series and rate limits; absent: none (unit tests of the route alone). */
  readonly tenants?: TenantLimits;
}

export interface IngestSummary {
  readonly series: number;
  readonly samples: number;
  readonly events: number;
}

export function registerNativeIngest(app: FastifyInstance, deps: NativeIngestDeps): void {
  if (!app.hasContentTypeParser(NATIVE_CONTENT_TYPE)) {
    app.addContentTypeParser(
      NATIVE_CONTENT_TYPE,
      { parseAs: 'buffer', bodyLimit: deps.limits.maxBodyBytes },
      (_req, body, done) => done(null, body),
    );
  }
  const keys = new SeriesKeyBuilder();
  const fast = deps.tenants ? new NativeFastPath(deps, deps.tenants) : undefined;

  app.post(
    '/api/v1/ingest',
    { bodyLimit: deps.limits.maxBodyBytes, config: { permission: 'ingest' } },
    async (req, reply) => {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (contentType !== NATIVE_CONTENT_TYPE) {
        throw twError(
          Errors.unsupportedMediaType,
          `Content-Type must be ${NATIVE_CONTENT_TYPE}, got ${JSON.stringify(contentType)}`,
        );
      }
      const principal = ingestPrincipal(req, deps.auth);
      const frame = req.body as Buffer;
      if (!Buffer.isBuffer(frame) || frame.length === 0)
        throw twError(Errors.badPayload, 'the request has no body: send one native frame');
      let header: ReturnType<typeof decodeFrameHeader>;
      try {
        header = decodeFrameHeader(frame);
      } catch (err) {
        throw badPayload(err);
      }

      const { result, duplicate } = await deps.idempotency.run(
        principal.tenant,
        header.sourceId,
        header.sequence,
        async () => {
          let payload: Uint8Array;
          try {
            payload = framePayload(frame, header, deps.limits);
          } catch (err) {
            throw badPayload(err);
          }
          if (fast) {
            const done = await fast.ingest(principal.tenant, header.sourceId, header.sequence, payload);
            if (done) {
              deps.metrics.bytes.inc({ protocol: 'native', tenant: principal.tenant }, frame.length);
              return done;
            }
          }
          let decoded: ReturnType<typeof decodePayload>;
          try {
            decoded = decodePayload(payload, deps.limits);
          } catch (err) {
            throw badPayload(err);
          }
          const nowMs = Date.now();
          const maxSamples = deps.limits.maxSamplesPerRequest ?? Number.POSITIVE_INFINITY;
          if (decoded.batch.sampleCount > maxSamples) {
            throw twError(
              Errors.limitExceeded,
              `limit ingest.max_samples_per_request exceeded: the batch has ${decoded.batch.sampleCount} samples, ` +
                `the limit is ${maxSamples}; send smaller batches`,
            );
          }
          validateBatch(decoded.batch, decoded.events, deps.limits, nowMs);
          if (deps.tenants) {
            chargeTenant(deps.tenants, principal.tenant, decoded.batch, keys, nowMs);
            deps.metrics.activeSeries.set(
              { tenant: principal.tenant },
              deps.tenants.get(principal.tenant, nowMs).registry.live,
            );
          }
          await deps.busWriter.write(
            {
              tenant: principal.tenant,
              sourceId: header.sourceId,
              sequence: header.sequence,
              receivedAtMs: Date.now(),
            },
            decoded.batch,
            decoded.events,
            payload,
          );
          const summary: IngestSummary = {
            series: decoded.batch.series.length,
            samples: decoded.batch.sampleCount,
            events: decoded.events.length,
          };
          deps.metrics.samples.inc({ protocol: 'native', tenant: principal.tenant }, summary.samples);
          deps.metrics.bytes.inc({ protocol: 'native', tenant: principal.tenant }, frame.length);
          return summary;
        },
      );
      if (duplicate) deps.metrics.dedupHits.inc({ protocol: 'native' });
      return reply.code(200).send({ status: 'success', data: { ...result, duplicate } });
    },
  );
}

/**
 * The route's hot path (native-decode.ts): the payload walked once into registry refs, with no object per
 * series; forwarded to the bus as is when its series share one partition key, else split by key as
 * remote-write splits. Payloads with job events or empty label values, and series keyed by their sender
 * alone (no `job_id`, `node_id` or `instance`), take the general path, which keeps events in order with the
 * samples and keys such series by the request's source id.
 */
class NativeFastPath {
  private readonly decoder = new NativeRefDecoder();
  private readonly keys = new SeriesKeyBuilder();
  private readonly batch = new RefBatch();
  private readonly writer = new PayloadWriter();

  constructor(
    private readonly deps: NativeIngestDeps,
    private readonly tenants: TenantLimits,
  ) {}

  /** Appends the payload and resolves with the summary, or resolves undefined: take the general path. */
  async ingest(
    tenant: string,
    sourceId: string,
    sequence: number,
    payload: Uint8Array,
  ): Promise<IngestSummary | undefined> {
    const nowMs = Date.now();
    const state = this.tenants.get(tenant, nowMs);
    const registry = state.registry;
    // Synchronous from here to the encoding: the registry's refs are valid only until the next request.
    registry.beginRequest(nowMs);
    const batch = this.batch;
    let parts: EncodedPart[];
    let series: number;
    try {
      const decoded = this.decoder.decode(payload, this.keys, batch, registry, this.deps.limits, nowMs);
      series = decoded.series;
      const fallback = `${tenant}\u0000\u0000`;
      let single = batch.seriesCount > 0 ? registry.partitionIndexOf(batch.refs[0]!) : -1;
      let senderKeyed = false;
      for (let i = 0; i < batch.seriesCount; i++) {
        const p = registry.partitionIndexOf(batch.refs[i]!);
        if (p !== single) single = -1;
        if (registry.partitionKeys[p] === fallback) senderKeyed = true;
      }
      if (decoded.general || senderKeyed) {
        registry.rollbackRequest();
        return undefined;
      }
      const maxSamples = this.deps.limits.maxSamplesPerRequest ?? Number.POSITIVE_INFINITY;
      if (batch.sampleCount > maxSamples) {
        throw twError(
          Errors.limitExceeded,
          `limit ingest.max_samples_per_request exceeded: the batch has ${batch.sampleCount} samples, ` +
            `the limit is ${maxSamples}; send smaller batches`,
        );
      }
      if (batch.sampleCount > 0) {
        this.tenants.chargeSamples(
          state,
          tenant,
          batch.sampleCount,
          registry.shown(registry.labelsOf(batch.refs[0]!)),
          nowMs,
        );
      }
      if (batch.seriesCount === 0) parts = [];
      else if (single >= 0) parts = [{ key: registry.partitionKeys[single]!, payload }];
      else parts = this.writer.encode(batch, registry);
    } catch (err) {
      registry.rollbackRequest();
      if (err instanceof ProtoError)
        throw twError(Errors.badPayload, `malformed native batch: ${err.message}`);
      throw badPayload(err);
    }
    const samples = batch.sampleCount;
    await this.deps.busWriter.writeParts({ tenant, sourceId, sequence, receivedAtMs: Date.now() }, parts);
    this.deps.metrics.activeSeries.set({ tenant }, registry.live);
    this.deps.metrics.samples.inc({ protocol: 'native', tenant }, samples);
    return { series, samples, events: 0 };
  }
}

function badPayload(err: unknown): Error {
  if (err instanceof DecodeError) return twError(Errors.badPayload, `malformed native batch: ${err.message}`);
  return err as Error;
}

/**
 * Counts the batch's series against the tenant's active-series limit and its samples against the rate
 * limit. Refuses the whole batch (nothing counted) when either is exceeded.
 */
function chargeTenant(
  tenants: TenantLimits,
  tenant: string,
  batch: SeriesBatch,
  keys: SeriesKeyBuilder,
  nowMs: number,
): void {
  const state = tenants.get(tenant, nowMs);
  const registry = state.registry;
  registry.beginRequest(nowMs);
  try {
    for (let i = 0; i < batch.series.length; i++) {
      const labels = batch.series[i]!;
      keys.beginStrings();
      for (const name in labels) keys.addStrings(name, labels[name]!);
      keys.finish();
      const ref = registry.resolve(keys, nowMs);
      for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
        registry.noteSampleTime(ref, batch.timestamps[j]!);
    }
    if (batch.sampleCount > 0)
      tenants.chargeSamples(state, tenant, batch.sampleCount, formatSeries(batch.series[0]!), nowMs);
  } catch (err) {
    registry.rollbackRequest();
    throw err;
  }
}
