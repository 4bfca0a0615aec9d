/**
 * `trainwatch agent`: one per training node. Sources (nvidia-smi, /proc and /sys, scrape targets,
 * TensorBoard files, the local endpoint for the SDK) record into one {@link Recorder}; every
 * `ship.interval_ms` (or when `max_batch_samples` wait) the readings become one native frame with the agent's
 * idempotency key, appended to the on-disk {@link SegmentQueue}; the {@link Shipper} sends the queue to the
 * collector. Sinks start before sources and sources stop first, so nothing read is left behind in memory at a
 * clean stop (a kill -9 loses at most the readings of the interval in progress, which nobody acknowledged).
 *
 * ```
 * nvidia-smi ─┐
 * /proc /sys ─┼─► Recorder ─(≤ ship.interval_ms)─► frame ─┐
 * scrapes ────┘                                           ├─► SegmentQueue (disk) ─► Shipper ─► collector
 * TensorBoard files ─────────────(per scan)─────► frame ──┤
 * SDK ─► local endpoint (node labels added) ─────► frame ─┘
 * ```
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SeriesBatch } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import type { LabelSet } from '../model/labels.js';
import { AGENT_UP_JOB } from '../model/metric-catalog.js';
import { NativeEncoder, type NativeFrame } from '../protocol/native.js';
import { AgentIdentity } from './buffer/identity.js';
import { type DropReason, SegmentQueue } from './buffer/segment-queue.js';
import { type AgentConfig, AgentConfigError } from './config.js';
import { GpuCollector } from './gpu/collector.js';
import { HostCollector } from './host.js';
import { type Env, nodeLabels, ownJobLabels } from './labels.js';
import { LocalEndpoint } from './local-endpoint.js';
import type { AgentLogger } from './log.js';
import { type RecordedSeries, Recorder } from './recorder.js';
import { ScrapeTarget } from './scrape/scraper.js';
import { Shipper } from './ship/shipper.js';
import { TfeventsTailer } from './tfevents/tailer.js';

const DROP_REASONS: readonly DropReason[] = ['ttl', 'size', 'rejected', 'corrupt'];

export interface AgentOptions {
  readonly env: Env;
  readonly logger: AgentLogger;
}

export class Agent {
  readonly nodeLabels: Readonly<Record<string, string>>;
  private readonly recorder: Recorder;
  private readonly encoder = new NativeEncoder();
  private readonly timers: NodeJS.Timeout[] = [];
  private gpu: GpuCollector | undefined;
  private host: HostCollector | undefined;
  private readonly scrapes: ScrapeTarget[] = [];
  private tailer: TfeventsTailer | undefined;
  private local: LocalEndpoint | undefined;
  private shipper: Shipper | undefined;
  private queue: SegmentQueue | undefined;
  private identity: AgentIdentity | undefined;
  private readonly dropped = {
    frames: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
    samples: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
  };
  private readonly bufferedSamples: Record<'agent' | 'local' | 'tensorboard', number> = {
    agent: 0,
    local: 0,
    tensorboard: 0,
  };
  private bufferErrors = 0;
  private readonly selfSeries = new Map<string, RecordedSeries>();
  private readonly startedCpu = process.cpuUsage();

  constructor(
    private readonly config: AgentConfig,
    private readonly opts: AgentOptions,
  ) {
    this.nodeLabels = nodeLabels({ nodeId: config.node_id, staticLabels: config.labels, env: opts.env });
    this.recorder = new Recorder(config.ship.max_batch_samples);
  }

  /** Where the local endpoint listens (host:port), once started. */
  get localAddress(): string | undefined {
    return this.local?.address;
  }

  get sourceId(): string | undefined {
    return this.identity?.sourceId;
  }

  async start(): Promise<void> {
    const c = this.config;
    const log = this.opts.logger;
    if (!c.server.url)
      throw new AgentConfigError(
        'no collector URL: pass --server URL (or set server.url in the config file)',
      );
    let token = c.server.token;
    if (!token && c.server.token_file) {
      try {
        token = readFileSync(c.server.token_file, 'utf8').trim();
      } catch (err) {
        throw new AgentConfigError(
          `server.token_file: cannot read ${c.server.token_file}: ${(err as Error).message}`,
        );
      }
    }

    const readTlsFile = (file: string | undefined, key: string) => {
      if (file === undefined) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new AgentConfigError(`server.tls.${key}: cannot read ${file}: ${(err as Error).message}`);
      }
    };
    const t = c.server.tls;
    const tls = {
      ca: readTlsFile(t.ca_file, 'ca_file'),
      cert: readTlsFile(t.cert_file, 'cert_file'),
      key: readTlsFile(t.key_file, 'key_file'),
      servername: t.server_name,
    };

    // Sinks first: the buffer and the shipper.
    this.identity = AgentIdentity.load(c.data_dir);
    this.queue = await SegmentQueue.open({
      dir: path.join(c.data_dir, 'buffer'),
      maxBytes: c.buffer.max_bytes,
      segmentBytes: c.buffer.segment_bytes,
      ttlMs: c.buffer.ttl_ms,
      fsync: c.buffer.fsync,
      logger: log,
      onDrop: (reason, frames, samples) => {
        this.dropped.frames[reason] += frames;
        this.dropped.samples[reason] += samples;
      },
    });
    this.shipper = new Shipper(this.queue, {
      url: c.server.url,
      token,
      requestTimeoutMs: c.server.request_timeout_ms,
      baseDelayMs: c.ship.base_delay_ms,
      maxDelayMs: c.ship.max_delay_ms,
      ttlMs: c.buffer.ttl_ms,
      logger: log,
      tls,
    });
    await this.shipper.start();

    this.recorder.onFull = () => this.flush();
    this.every(c.ship.interval_ms, () => this.flush());
    this.every(Math.min(5000, Math.max(1000, Math.floor(c.buffer.ttl_ms / 10))), () => this.queue?.expire());
    this.every(c.self_metrics_interval_ms, () => this.recordSelfMetrics());

    // Then the sources.
    const hostLabels = { ...this.nodeLabels, ...ownJobLabels(this.opts.env) };
    const procRoot = path.join(c.host.root, 'proc');
    // Each source gets its own options object: the fields they share (intervals, recorder, logger) mean the
    // same, the rest does not, so a shared builder would hide more than it saves.
    if (c.gpu.enabled) {
      this.gpu = new GpuCollector({
        nvidiaSmi: c.gpu.nvidia_smi,
        intervalMs: c.gpu.interval_ms,
        processesIntervalMs: c.gpu.processes_interval_ms,
        rediscoverIntervalMs: c.gpu.rediscover_interval_ms,
        kernelLog: c.gpu.kernel_log.split(' ').filter((w) => w !== ''),
        shipIntervalMs: c.ship.interval_ms,
        procRoot,
        recorder: this.recorder,
        nodeLabels: this.nodeLabels,
        logger: log,
      });
      this.gpu.start();
    }
    if (c.host.enabled) {
      this.host = new HostCollector({
        root: c.host.root,
        intervalMs: c.host.interval_ms,
        shipIntervalMs: c.ship.interval_ms,
        networkExclude: c.host.network_exclude,
        diskExclude: c.host.disk_exclude,
        filesystems: c.host.filesystems,
        recorder: this.recorder,
        labels: hostLabels,
        logger: log,
      });
      this.host.start();
    }
    for (const t of c.scrape) {
      const target = new ScrapeTarget({
        url: t.url,
        name: t.name,
        intervalMs: t.interval_ms,
        timeoutMs: t.timeout_ms,
        labels: t.labels,
        honorLabels: t.honor_labels,
        nodeLabels: this.nodeLabels,
        recorder: this.recorder,
        logger: log,
        gpuAttribution: (uuid, index) => this.gpu?.attributionOf(uuid, index) ?? {},
        nvidiaSmiActive: () => (this.gpu?.counters.up ?? 0) === 1,
      });
      target.start();
      this.scrapes.push(target);
    }
    if (c.tensorboard.dirs.length > 0) {
      this.tailer = new TfeventsTailer({
        dirs: c.tensorboard.dirs.map((d) => ({ path: d.path, jobId: d.job_id, labels: d.labels })),
        intervalMs: c.tensorboard.interval_ms,
        stateFile: path.join(c.data_dir, 'tfevents-state.json'),
        nodeLabels: this.nodeLabels,
        procRoot,
        logger: log,
        emit: (batch, events) => this.bufferBatch(batch, events, 'tensorboard'),
      });
      this.tailer.start();
    }
    const socket = c.local.socket === undefined ? path.join(c.data_dir, 'agent.sock') : c.local.socket;
    if (c.local.listen !== null || socket !== null) {
      this.local = new LocalEndpoint({
        listen: c.local.listen,
        socket,
        maxBodyBytes: c.local.max_body_bytes,
        nodeLabels: this.nodeLabels,
        buffer: (frame, original) => this.bufferLocal(frame, original),
        metricsText: () => this.metricsText(),
        logger: log,
      });
      await this.local.start();
    }
    // `up` (and the self-metrics) from the start, not one self-metrics interval later.
    this.recordSelfMetrics();
    log.info(
      {
        server: c.server.url,
        node: this.nodeLabels,
        sourceId: this.identity.sourceId,
        local: this.local?.address ?? null,
        socket,
        gpu: c.gpu.enabled,
        host: c.host.enabled,
        scrape: c.scrape.map((s) => s.url),
        tensorboard: c.tensorboard.dirs.map((d) => d.path),
        buffer: {
          dir: path.join(c.data_dir, 'buffer'),
          maxBytes: c.buffer.max_bytes,
          ttlMs: c.buffer.ttl_ms,
        },
      },
      'trainwatch agent started',
    );
  }

  /** Stops sources first, buffers what they read, then stops shipping; the buffer keeps what was not sent. */
  async stop(): Promise<void> {
    this.gpu?.stop();
    this.host?.stop();
    for (const s of this.scrapes) s.stop();
    await this.tailer?.stop();
    await this.local?.stop();
    for (const t of this.timers) clearInterval(t);
    this.recordSelfMetrics();
    await this.flush();
    await this.shipper?.stop();
    await this.queue?.close();
    this.opts.logger.info({}, 'trainwatch agent stopped');
  }

  /** Closes the current interval: its readings become one frame in the disk buffer. */
  async flush(): Promise<void> {
    const batch = this.recorder.flush();
    if (batch) await this.bufferBatch(batch, [], 'agent');
  }

  private async bufferBatch(
    batch: SeriesBatch,
    events: JobEvent[],
    source: 'agent' | 'tensorboard',
  ): Promise<void> {
    const frame = this.encoder.encodeFrame(
      { sourceId: this.identity!.sourceId, sequence: this.identity!.nextSequence(), batch, events },
      this.config.ship.compression,
    );
    try {
      await this.queue!.append(frame, batch.sampleCount);
      this.bufferedSamples[source] += batch.sampleCount;
    } catch (err) {
      this.bufferErrors++;
      this.opts.logger.error(
        { error: (err as Error).message, samples: batch.sampleCount },
        'cannot buffer a batch',
      );
      if (source === 'tensorboard') throw err; // the tailer re-reads it next time
    }
  }

  private async bufferLocal(frame: NativeFrame, original: Uint8Array | undefined): Promise<void> {
    const bytes = original ?? this.encoder.encodeFrame(frame, this.config.ship.compression);
    await this.queue!.append(bytes, frame.batch.sampleCount);
    this.bufferedSamples.local += frame.batch.sampleCount;
  }

  private every(ms: number, fn: () => unknown): void {
    const t = setInterval(() => {
      try {
        const r = fn();
        if (r instanceof Promise)
          r.catch((err: Error) => this.opts.logger.error({ error: err.message }, 'agent task failed'));
      } catch (err) {
        this.opts.logger.error({ error: (err as Error).message }, 'agent task failed');
      }
    }, ms);
    this.timers.push(t);
  }

  // -------------------------------------------------------------------------------------------------------
  // The agent's own metrics (trainwatch_agent_*): shipped like every other series, and served at /metrics.

  private selfValues(): [string, Record<string, string>, number][] {
    const out: [string, Record<string, string>, number][] = [];
    const q = this.queue?.stats() ?? { bytes: 0, records: 0, samples: 0, segments: 0 };
    out.push(['trainwatch_agent_buffer_bytes', {}, q.bytes]);
    out.push(['trainwatch_agent_buffer_frames', {}, q.records]);
    out.push(['trainwatch_agent_buffer_samples', {}, q.samples]);
    for (const r of DROP_REASONS) {
      out.push(['trainwatch_agent_dropped_frames_total', { reason: r }, this.dropped.frames[r]]);
      out.push(['trainwatch_agent_dropped_samples_total', { reason: r }, this.dropped.samples[r]]);
    }
    for (const [source, n] of Object.entries(this.bufferedSamples))
      out.push(['trainwatch_agent_buffered_samples_total', { source }, n]);
    out.push(['trainwatch_agent_buffer_errors_total', {}, this.bufferErrors]);
    const sh = this.shipper?.counters;
    if (sh) {
      out.push(['trainwatch_agent_shipped_frames_total', {}, sh.shippedFrames]);
      out.push(['trainwatch_agent_shipped_samples_total', {}, sh.shippedSamples]);
      out.push(['trainwatch_agent_duplicate_frames_total', {}, sh.duplicateFrames]);
      out.push(['trainwatch_agent_send_retries_total', {}, sh.retries]);
      out.push(['trainwatch_agent_collector_up', {}, sh.up]);
      for (const [outcome, n] of Object.entries(sh.requests))
        out.push(['trainwatch_agent_requests_total', { outcome }, n]);
    }
    if (this.gpu) {
      out.push(['trainwatch_agent_gpu_collector_up', {}, this.gpu.counters.up]);
      out.push(['trainwatch_agent_gpus', {}, this.gpu.counters.gpus]);
      out.push(['trainwatch_agent_nvidia_smi_restarts_total', {}, this.gpu.counters.restarts]);
      out.push(['trainwatch_agent_nvidia_smi_bad_lines_total', {}, this.gpu.counters.badLines]);
    }
    for (const s of this.scrapes)
      out.push(['trainwatch_agent_scrape_failures_total', { instance: s.instance }, s.counters.failures]);
    if (this.tailer) {
      out.push(['trainwatch_agent_tfevents_files', {}, this.tailer.counters.files]);
      out.push(['trainwatch_agent_tfevents_records_total', {}, this.tailer.counters.records]);
    }
    if (this.local) {
      out.push(['trainwatch_agent_local_frames_total', {}, this.local.counters.frames]);
      out.push(['trainwatch_agent_local_rejected_total', {}, this.local.counters.rejected]);
    }
    const cpu = process.cpuUsage(this.startedCpu);
    out.push(['trainwatch_agent_cpu_seconds_total', {}, (cpu.user + cpu.system) / 1e6]);
    out.push(['trainwatch_agent_resident_memory_bytes', {}, process.memoryUsage.rss()]);
    out.push(['trainwatch_agent_series', {}, this.recorder.seriesCount]);
    return out;
  }

  /**
   * `up{job="trainwatch_agent", instance=<node>, node_id=…}` = 1, recorded with the self-metrics while the agent
   * collects, so that `up` lists the fleet's agents as Prometheus lists its scrape targets. It is not on the
   * agent's own /metrics page: a Prometheus scraping that page makes its own `up` for it.
   */
  private upValue(): [string, Record<string, string>, number] {
    return ['up', { job: AGENT_UP_JOB, instance: this.nodeLabels.node_id ?? '' }, 1];
  }

  private recordSelfMetrics(): void {
    const now = Date.now();
    for (const [name, extra, value] of [...this.selfValues(), this.upValue()]) {
      const key = `${name}\u0000${Object.values(extra).join('\u0000')}`;
      let s = this.selfSeries.get(key);
      if (!s) {
        const labels: LabelSet = { __name__: name, ...this.nodeLabels, ...extra };
        s = this.recorder.series(labels, 'raw');
        this.selfSeries.set(key, s);
      }
      this.recorder.record(s, now, value);
    }
  }

  private metricsText(): string {
    let text = '';
    for (const [name, extra, value] of this.selfValues()) {
      const labels = Object.entries({ ...this.nodeLabels, ...extra })
        .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
        .join(',');
      text += `${name}{${labels}} ${value}\n`;
    }
    return text;
  }
}
