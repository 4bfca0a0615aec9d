/**
 * The benchmark's data set: the fleet simulator's series (per-GPU, per-rank and per-host metrics with
 * `tenant`, `job_id`, `node_id`, `rank`, `gpu` labels) over a number of ticks, pre-encoded once as
 * Prometheus remote-write 1.0 requests and as trainwatch native frames carrying exactly the same samples, so
 * that every system under test receives the same payloads and encoding costs nothing while replaying.
 *
 * A request holds one training job's series over `ticksPerRequest` ticks (what a per-job shard of a
 * remote-write queue, or an aggregating agent, sends). With one tick per request each series appears once
 * per request, which is what Prometheus's own remote-write sends. Requests are ordered chunk by chunk and the
 * replayer sends one job's requests in order, so every series' samples arrive in time order (Prometheus
 * refuses out-of-order samples).
 *
 * Every request also carries one sample of `bench_drain_marker{job_id}` whose value is the request's chunk
 * number (1-based): once `count(bench_drain_marker >= <last chunk>)` equals the number of jobs, everything
 * sent has been ingested and is queryable (trainwatch processes a job's data in order, one partition per
 * job; the others apply a request as a whole).
 */
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { LabelSet } from '../../src/model/labels.js';
import { ByteWriter } from '../../src/protocol/bytes.js';
import { NativeEncoder } from '../../src/protocol/native.js';
import { defaultFleetOptions, FleetSimulator } from '../../src/simulator/fleet.js';
import { encodeLabels, snappy, writeTimeSeries } from './remote-write.js';

export const DRAIN_MARKER = 'bench_drain_marker';

export interface DatasetOptions {
  readonly seed: number;
  readonly jobs: number;
  readonly nodesPerJob: number;
  readonly gpusPerNode: number;
  /** Ticks of data to encode (one sample per present series per tick). */
  readonly ticks: number;
  readonly ticksPerRequest: number;
  readonly intervalMs: number;
  /** Timestamp of the last tick (rounded down to the interval). */
  readonly endMs: number;
  /** Value of the `tenant` label on every series (trainwatch's anonymous tenant in the benchmark). */
  readonly tenant: string;
  /** Ticks simulated before recording, so that queued jobs have started. */
  readonly warmupTicks?: number;
}

export interface FleetRequest {
  /** Index of the training job (0-based, in order of first appearance). */
  readonly job: number;
  /** 1-based chunk number: requests of chunk k hold ticks ((k-1)·ticksPerRequest, k·ticksPerRequest]. */
  readonly chunk: number;
  readonly samples: number;
  readonly series: number;
  /** Snappy-compressed WriteRequest. */
  readonly remoteWrite: Uint8Array;
  /** Native frame (zlib), source id per job, sequence = chunk. */
  readonly native: Uint8Array;
}

export interface DatasetSummary {
  readonly options: DatasetOptions;
  readonly jobIds: readonly string[];
  /** Distinct series that received at least one sample, the drain markers included. */
  readonly activeSeries: number;
  readonly samples: number;
  readonly requests: number;
  readonly chunks: number;
  /** Jobs with a request in the last chunk: `count(bench_drain_marker >= chunks)` reaches this when drained. */
  readonly lastChunkJobs: number;
  /** Jobs with a request in chunk k + 1, for waiting until a replay of the first chunks is queryable. */
  readonly jobsPerChunk: readonly number[];
  readonly firstMs: number;
  readonly lastMs: number;
  readonly remoteWriteBytes: number;
  readonly remoteWriteUncompressedBytes: number;
  readonly nativeBytes: number;
  /** Metric names and how many series each has. */
  readonly seriesPerMetric: Readonly<Record<string, number>>;
  readonly buildMs: number;
}

export interface Dataset {
  readonly summary: DatasetSummary;
  /** Chunk-major: all of chunk 1 (job order), then chunk 2, ... */
  readonly requests: readonly FleetRequest[];
}

/** Series per job: per GPU 7 + per rank 5, rank 0 has 4 more, per host 4. */
export function seriesPerJob(nodesPerJob: number, gpusPerNode: number): number {
  return nodesPerJob * (gpusPerNode * 12 + 4) + 4;
}

/** A fleet shape with about `targetSeries` active series: 8 nodes × 8 GPUs per job, as many jobs as needed. */
export function fleetForSeries(targetSeries: number): {
  jobs: number;
  nodesPerJob: number;
  gpusPerNode: number;
} {
  const nodesPerJob = 8;
  const gpusPerNode = 8;
  const jobs = Math.max(1, Math.round(targetSeries / seriesPerJob(nodesPerJob, gpusPerNode)));
  return { jobs, nodesPerJob, gpusPerNode };
}

interface SeriesCodec {
  readonly labels: LabelSet;
  readonly remoteWriteLabels: Uint8Array;
}

/** One job's rows over the ticks of the current chunk. */
class JobChunk {
  readonly times: number[] = [];
  /** Per node: rows of values and presence flags, tick-major. */
  readonly rows: Float64Array[];
  readonly present: Uint8Array[];

  constructor(
    readonly jobIndex: number,
    readonly jobId: string,
    readonly nodeSeries: readonly (readonly LabelSet[])[],
    ticksPerRequest: number,
  ) {
    this.rows = nodeSeries.map((s) => new Float64Array(s.length * ticksPerRequest));
    this.present = nodeSeries.map((s) => new Uint8Array(s.length * ticksPerRequest));
  }
}

export function buildDataset(opts: DatasetOptions): Dataset {
  const started = Date.now();
  if (opts.ticks < 1 || opts.ticksPerRequest < 1) throw new Error('ticks and ticksPerRequest must be >= 1');
  const warmup = opts.warmupTicks ?? 40;
  const endMs = Math.floor(opts.endMs / opts.intervalMs) * opts.intervalMs;
  const fleet = new FleetSimulator({
    ...defaultFleetOptions,
    seed: opts.seed,
    jobs: opts.jobs,
    nodesPerJob: opts.nodesPerJob,
    gpusPerNode: opts.gpusPerNode,
    intervalMs: opts.intervalMs,
    // Incidents would put NaN and odd shapes into a few jobs; the benchmark measures load, not detection.
    incidents: false,
    cluster: 'bench',
    startMs: endMs - (warmup + opts.ticks) * opts.intervalMs,
  });
  for (let i = 0; i < warmup; i++) fleet.tick();

  const codecs = new WeakMap<LabelSet, SeriesCodec>();
  const codecOf = (labels: LabelSet): SeriesCodec => {
    let c = codecs.get(labels);
    if (!c) {
      const withTenant: LabelSet = { ...labels, tenant: opts.tenant };
      c = { labels: withTenant, remoteWriteLabels: encodeLabels(withTenant) };
      codecs.set(labels, c);
    }
    return c;
  };
  const markerCodecs = new Map<string, SeriesCodec>();
  const markerOf = (jobId: string): SeriesCodec => {
    let c = markerCodecs.get(jobId);
    if (!c) {
      const labels: LabelSet = { __name__: DRAIN_MARKER, job_id: jobId, tenant: opts.tenant };
      c = { labels, remoteWriteLabels: encodeLabels(labels) };
      markerCodecs.set(jobId, c);
    }
    return c;
  };

  const jobIndex = new Map<string, number>();
  const jobIds: string[] = [];
  const seen = new Set<LabelSet>();
  const seriesPerMetric: Record<string, number> = {};
  const requests: FleetRequest[] = [];
  const rw = new ByteWriter(1 << 20);
  const nativeEncoder = new NativeEncoder();
  const ts = new Float64Array(opts.ticksPerRequest);
  const vs = new Float64Array(opts.ticksPerRequest);
  let chunks = 0;
  let samples = 0;
  let rwBytes = 0;
  let rwRawBytes = 0;
  let nativeBytes = 0;
  let firstMs = Number.POSITIVE_INFINITY;
  let lastMs = 0;

  let current = new Map<string, JobChunk>();
  const flushChunk = () => {
    chunks++;
    const ordered = [...current.values()].sort((a, b) => a.jobIndex - b.jobIndex);
    for (const jc of ordered) {
      rw.reset();
      const builder = new SeriesBatchBuilder(jc.times.length * 128);
      let reqSamples = 0;
      let reqSeries = 0;
      for (let n = 0; n < jc.nodeSeries.length; n++) {
        const series = jc.nodeSeries[n]!;
        const rows = jc.rows[n]!;
        const present = jc.present[n]!;
        const width = series.length;
        for (let s = 0; s < width; s++) {
          let k = 0;
          for (let t = 0; t < jc.times.length; t++) {
            if (!present[t * width + s]) continue;
            ts[k] = jc.times[t]!;
            vs[k] = rows[t * width + s]!;
            k++;
          }
          if (k === 0) continue;
          const raw = series[s]!;
          const codec = codecOf(raw);
          if (!seen.has(raw)) {
            seen.add(raw);
            const name = raw.__name__!;
            seriesPerMetric[name] = (seriesPerMetric[name] ?? 0) + 1;
          }
          writeTimeSeries(rw, codec.remoteWriteLabels, ts, vs, 0, k);
          builder.addSeries(codec.labels);
          for (let i = 0; i < k; i++) builder.add(ts[i]!, vs[i]!);
          reqSamples += k;
          reqSeries++;
        }
      }
      // The drain marker: one sample at the chunk's last tick, value = chunk number.
      const marker = markerOf(jc.jobId);
      const last = jc.times[jc.times.length - 1]!;
      ts[0] = last;
      vs[0] = chunks;
      writeTimeSeries(rw, marker.remoteWriteLabels, ts, vs, 0, 1);
      builder.addSeries(marker.labels).add(last, chunks);
      if (chunks === 1) seriesPerMetric[DRAIN_MARKER] = (seriesPerMetric[DRAIN_MARKER] ?? 0) + 1;
      reqSamples++;
      reqSeries++;

      const raw = rw.view_();
      const remoteWrite = snappy.compress(raw);
      const native = nativeEncoder.encodeFrame(
        { sourceId: `bench-job-${jc.jobIndex}`, sequence: chunks, batch: builder.build(), events: [] },
        'zlib',
      );
      rwRawBytes += raw.length;
      rwBytes += remoteWrite.length;
      nativeBytes += native.length;
      samples += reqSamples;
      requests.push({
        job: jc.jobIndex,
        chunk: chunks,
        samples: reqSamples,
        series: reqSeries,
        remoteWrite,
        native,
      });
    }
    current = new Map();
  };

  for (let tick = 0; tick < opts.ticks; tick++) {
    fleet.tick();
    const now = fleet.nowMs;
    firstMs = Math.min(firstMs, now);
    lastMs = Math.max(lastMs, now);
    for (const job of fleet.jobs) {
      if (job.phase !== 'running') continue;
      let idx = jobIndex.get(job.id);
      if (idx === undefined) {
        idx = jobIds.length;
        jobIndex.set(job.id, idx);
        jobIds.push(job.id);
      }
      let jc = current.get(job.id);
      if (!jc) {
        jc = new JobChunk(
          idx,
          job.id,
          job.nodes.map((n) => n.series),
          opts.ticksPerRequest,
        );
        current.set(job.id, jc);
      }
      const t = jc.times.length;
      jc.times.push(now);
      for (let n = 0; n < job.nodes.length; n++) {
        const node = job.nodes[n]!;
        const width = node.series.length;
        jc.rows[n]!.set(node.values, t * width);
        jc.present[n]!.set(node.present, t * width);
      }
    }
    if ((tick + 1) % opts.ticksPerRequest === 0 || tick === opts.ticks - 1) flushChunk();
  }

  return {
    requests,
    summary: {
      options: { ...opts, endMs },
      jobIds,
      activeSeries: seen.size + markerCodecs.size,
      samples,
      requests: requests.length,
      chunks,
      lastChunkJobs: requests.filter((r) => r.chunk === chunks).length,
      jobsPerChunk: Array.from(
        { length: chunks },
        (_, k) => requests.filter((r) => r.chunk === k + 1).length,
      ),
      firstMs,
      lastMs,
      remoteWriteBytes: rwBytes,
      remoteWriteUncompressedBytes: rwRawBytes,
      nativeBytes,
      seriesPerMetric,
      buildMs: Date.now() - started,
    },
  };
}
