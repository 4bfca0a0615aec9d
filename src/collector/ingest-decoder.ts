/**
 * The collector's per-sample work for every protocol, as one synchronous step: request body in, bus payloads
 * out. Decompression, protobuf/native decoding, the tenant's series registry (active-series limit,
 * out-of-order refusals, OTLP delta totals), its rate limit and the encoding of one native payload per
 * partition key all happen in {@link IngestDecoder.decode}; what is left to the caller is HTTP and the bus
 * append (and acknowledging only once that is durable).
 *
 * An {@link IngestEngine} runs the decoder: {@link LocalIngest} on the calling thread (`ingest.workers: 0`),
 * or the ingest worker threads (ingest-workers.ts), each with its own decoder for the tenants it owns.
 * Nothing an engine returns refers to registry state: refs never leave the decoder, parts carry encoded bytes.
 */
import { gunzipSync } from 'node:zlib';
import type { SeriesBatch } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import { formatSeries } from '../model/labels.js';
import { DecodeError } from '../protocol/bytes.js';
import { decodeFrameHeader, decodePayload, framePayload } from '../protocol/native.js';
import { ProtoError } from '../protocol/protobuf.js';
import type { DeclaredMetadata } from './declared-metadata.js';
import { DecodePipeline, type IngestLimits } from './ingest-context.js';
import { NativeRefDecoder } from './native-decode.js';
import { decodeOtlpJson, decodeOtlpProtobuf, OtlpDecodeError, type OtlpMetrics } from './otlp-decode.js';
import { translateOtlp } from './otlp-translate.js';
import { PayloadWriter, RefBatch } from './ref-batch.js';
import {
  type DecodeContext,
  decodeRemoteWriteV1,
  decodeRemoteWriteV2,
  SymbolTable,
} from './remote-write-decode.js';
import { SeriesKeyBuilder } from './series-key.js';
import { SnappyDecoder, SnappyError } from './snappy.js';
import type { TenantLimits, TenantState } from './tenant-limits.js';
import { type EncodedPart, PartEncoder } from './to-bus.js';
import { validateBatch } from './validate.js';

/** What the route checked and read; the body is the request body as received (still compressed). */
export type IngestJob =
  | {
      readonly protocol: 'remote_write';
      readonly tenant: string;
      readonly nowMs: number;
      readonly body: Uint8Array;
      readonly version: 1 | 2;
    }
  | {
      readonly protocol: 'otlp';
      readonly tenant: string;
      readonly nowMs: number;
      readonly body: Uint8Array;
      readonly json: boolean;
      readonly gzip: boolean;
    }
  | {
      readonly protocol: 'native';
      readonly tenant: string;
      readonly nowMs: number;
      /** The whole native frame. */
      readonly body: Uint8Array;
      readonly sourceId: string;
      readonly sequence: number;
    };

export interface IngestResult {
  /** One native payload per partition key; append all, acknowledge once all are durable. */
  readonly parts: EncodedPart[];
  readonly series: number;
  readonly samples: number;
  /** The tenant's active series after this request (self-metrics). */
  readonly liveSeries: number;
  /** Remote-write: not stored, counted. */
  readonly histograms: number;
  readonly exemplars: number;
  readonly events: number;
  /** OTLP: points not stored (unsupported kinds included), the unsupported ones, and why the first was. */
  readonly rejectedPoints: number;
  readonly unsupportedPoints: number;
  readonly firstError?: string;
  /** OTLP: the delta sums this request added, to take back with {@link IngestEngine.undo} if the bus refuses. */
  readonly undo?: AccumulationUndo;
  /**
   * Remote-write and OTLP: metric metadata the sender declared that this thread had not passed on before
   * (declared-metadata.ts); absent when nothing is new, which is nearly always.
   */
  readonly metadata?: DeclaredMetadata[];
}

export interface AccumulationUndo {
  /** (ref, delta) pairs. */
  readonly deltas: Float64Array;
  /** The registry's generation the refs belong to. */
  readonly generation: number;
}

/** Runs {@link IngestDecoder.decode} somewhere: on this thread or on an ingest worker. */
export interface IngestEngine {
  /** Refuses with a TrainwatchError (4xx/429/503) exactly as the decoder would. */
  decode(job: IngestJob): Promise<IngestResult>;
  /** Takes an OTLP request's delta sums back (the bus refused it, so the sender's retry must not count them twice). */
  undo(tenant: string, undo: AccumulationUndo): void;
}

const EMPTY = {
  series: 0,
  histograms: 0,
  exemplars: 0,
  events: 0,
  rejectedPoints: 0,
  unsupportedPoints: 0,
};

/** What {@link IngestDecoder.throughPipeline} gives back: the common result, and what the decoding returned. */
interface PipelineRun<T> {
  readonly result: IngestResult;
  readonly value: T;
  readonly ctx: DecodeContext;
  readonly state: TenantState;
}

/**
 * One thread's decoding state: reused buffers and the registries of the tenants it serves. Used strictly
 * synchronously per request (registry refs are valid only within one `decode`), so one instance serves every
 * request of its thread.
 */
export class IngestDecoder {
  private readonly pipelineOrNone?: DecodePipeline;
  private readonly snappy = new SnappyDecoder();
  private readonly symbols = new SymbolTable();
  private readonly nativeDecoder = new NativeRefDecoder();
  private readonly nativeKeys = new SeriesKeyBuilder();
  private readonly nativeBatch = new RefBatch();
  private readonly writer = new PayloadWriter();
  private readonly partEncoder = new PartEncoder();

  /** `tenants` absent: no per-tenant limits (the native route's unit tests alone). */
  constructor(
    private readonly limits: IngestLimits,
    readonly tenants?: TenantLimits,
  ) {
    if (tenants) this.pipelineOrNone = new DecodePipeline({ limits, tenants });
    this.nativeKeys.maxLabels = limits.maxLabelsPerSeries;
  }

  private get pipeline(): DecodePipeline {
    if (!this.pipelineOrNone) throw new Error('remote-write and OTLP need per-tenant limits (TenantLimits)');
    return this.pipelineOrNone;
  }

  decode(job: IngestJob): IngestResult {
    switch (job.protocol) {
      case 'remote_write':
        return this.remoteWrite(job.tenant, job.nowMs, job.body, job.version);
      case 'otlp':
        return this.otlp(job.tenant, job.nowMs, job.body, job.json, job.gzip);
      case 'native':
        return this.native(job.tenant, job.nowMs, job.body, job.sourceId);
    }
  }

  undo(tenant: string, undo: AccumulationUndo): void {
    this.tenants?.get(tenant).registry.undoAccumulations(undo.deltas, undo.generation);
  }

  private remoteWrite(tenant: string, nowMs: number, body: Uint8Array, version: 1 | 2): IngestResult {
    let raw: Uint8Array;
    try {
      raw = this.snappy.decode(body, this.limits.maxPayloadBytes);
    } catch (err) {
      if (!(err instanceof SnappyError)) throw err;
      throw twError(
        err.tooLarge ? Errors.payloadTooLarge : Errors.badPayload,
        `${err.message}${err.tooLarge ? ' (ingest.max_payload_bytes)' : ''}`,
      );
    }
    let run: PipelineRun<void>;
    try {
      run = this.throughPipeline(tenant, nowMs, (ctx) =>
        version === 1 ? decodeRemoteWriteV1(raw, ctx) : decodeRemoteWriteV2(raw, ctx, this.symbols),
      );
    } catch (err) {
      if (err instanceof ProtoError)
        throw twError(Errors.badPayload, `malformed remote-write ${version}.0 request: ${err.message}`);
      throw err;
    }
    return { ...run.result, histograms: run.ctx.stats.histograms, exemplars: run.ctx.stats.exemplars };
  }

  /**
   * Runs one request's `decode` through the pipeline: what it registered is rolled back if it throws; else the
   * result carries the encoded parts, the declared metadata and the request's counts.
   */
  private throughPipeline<T>(
    tenant: string,
    nowMs: number,
    decode: (ctx: DecodeContext) => T,
  ): PipelineRun<T> {
    const { ctx, state } = this.pipeline.begin(tenant, nowMs);
    let value: T;
    let parts: EncodedPart[];
    try {
      value = decode(ctx);
      parts = this.pipeline.finish(tenant, state, nowMs);
    } catch (err) {
      state.registry.rollbackRequest();
      this.pipeline.metadata.rollback();
      throw err;
    }
    const metadata = this.pipeline.metadata.take();
    const result: IngestResult = {
      ...EMPTY,
      ...(metadata ? { metadata } : {}),
      parts,
      series: ctx.batch.seriesCount,
      samples: ctx.batch.sampleCount,
      liveSeries: state.registry.live,
    };
    return { result, value, ctx, state };
  }

  private otlp(tenant: string, nowMs: number, body: Uint8Array, json: boolean, gzip: boolean): IngestResult {
    let raw = body;
    if (gzip) {
      try {
        raw = gunzipSync(body, { maxOutputLength: this.limits.maxPayloadBytes });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ERR_BUFFER_TOO_LARGE') {
          throw twError(
            Errors.payloadTooLarge,
            `the gzip body inflates to more than the limit of ${this.limits.maxPayloadBytes} bytes (ingest.max_payload_bytes)`,
          );
        }
        throw twError(Errors.badPayload, `the body is not valid gzip: ${e.message}`);
      }
    }
    let request: OtlpMetrics;
    try {
      request = json ? decodeOtlpJson(raw) : decodeOtlpProtobuf(raw);
    } catch (err) {
      if (err instanceof OtlpDecodeError) throw twError(Errors.badPayload, err.message);
      throw err;
    }
    const { result, value, state } = this.throughPipeline(tenant, nowMs, (ctx) =>
      translateOtlp(request, ctx),
    );
    return {
      ...result,
      rejectedPoints: value.rejectedPoints,
      unsupportedPoints: value.unsupportedPoints,
      ...(value.firstError !== undefined ? { firstError: value.firstError } : {}),
      undo: {
        deltas: Float64Array.from(state.registry.accumulations()),
        generation: state.registry.generation,
      },
    };
  }

  private native(tenant: string, nowMs: number, frame: Uint8Array, sourceId: string): IngestResult {
    let payload: Uint8Array;
    try {
      payload = framePayload(frame, decodeFrameHeader(frame), this.limits);
    } catch (err) {
      throw badNativePayload(err);
    }
    const fast = this.tenants ? this.nativeFast(this.tenants, tenant, nowMs, payload) : undefined;
    if (fast) return fast;

    let decoded: ReturnType<typeof decodePayload>;
    try {
      decoded = decodePayload(payload, this.limits);
    } catch (err) {
      throw badNativePayload(err);
    }
    const maxSamples = this.limits.maxSamplesPerRequest;
    if (decoded.batch.sampleCount > maxSamples) {
      throw twError(
        Errors.limitExceeded,
        `limit ingest.max_samples_per_request exceeded: the batch has ${decoded.batch.sampleCount} samples, ` +
          `the limit is ${maxSamples}; send smaller batches`,
      );
    }
    validateBatch(decoded.batch, decoded.events, this.limits, nowMs);
    let liveSeries = 0;
    if (this.tenants) {
      chargeTenant(this.tenants, tenant, decoded.batch, this.nativeKeys, nowMs);
      liveSeries = this.tenants.get(tenant, nowMs).registry.live;
    }
    const parts = this.partEncoder.encode(tenant, sourceId, decoded.batch, decoded.events, payload);
    return {
      ...EMPTY,
      parts,
      series: decoded.batch.series.length,
      samples: decoded.batch.sampleCount,
      events: decoded.events.length,
      liveSeries,
    };
  }

  /**
   * The native hot path (native-decode.ts): the payload walked once into registry refs, with no object per
   * series; forwarded as is when its series share one partition key, else split by key as remote-write
   * splits. Payloads with job events or empty label values, and series keyed by their sender alone (no
   * `job_id`, `node_id` or `instance`), take the general path (undefined here), which keeps events in order
   * with the samples and keys such series by the request's source id.
   */
  private nativeFast(
    tenants: TenantLimits,
    tenant: string,
    nowMs: number,
    payload: Uint8Array,
  ): IngestResult | undefined {
    const state = tenants.get(tenant, nowMs);
    const registry = state.registry;
    registry.beginRequest(nowMs);
    const batch = this.nativeBatch;
    let parts: EncodedPart[];
    let series: number;
    try {
      const decoded = this.nativeDecoder.decode(
        payload,
        this.nativeKeys,
        batch,
        registry,
        this.limits,
        nowMs,
      );
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
      const maxSamples = this.limits.maxSamplesPerRequest;
      if (batch.sampleCount > maxSamples) {
        throw twError(
          Errors.limitExceeded,
          `limit ingest.max_samples_per_request exceeded: the batch has ${batch.sampleCount} samples, ` +
            `the limit is ${maxSamples}; send smaller batches`,
        );
      }
      if (batch.sampleCount > 0) {
        tenants.chargeSamples(
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
      throw badNativePayload(err);
    }
    return { ...EMPTY, parts, series, samples: batch.sampleCount, liveSeries: registry.live };
  }
}

/** Decodes on the calling thread (`ingest.workers: 0`, and the routes' unit tests). */
export class LocalIngest implements IngestEngine {
  readonly decoder: IngestDecoder;

  constructor(limits: IngestLimits, tenants?: TenantLimits) {
    this.decoder = new IngestDecoder(limits, tenants);
  }

  async decode(job: IngestJob): Promise<IngestResult> {
    return this.decoder.decode(job);
  }

  undo(tenant: string, undo: AccumulationUndo): void {
    this.decoder.undo(tenant, undo);
  }
}

function badNativePayload(err: unknown): Error {
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
