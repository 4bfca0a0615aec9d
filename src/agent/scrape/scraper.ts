/**
 * Scrapes Prometheus text-format endpoints (dcgm-exporter, node_exporter, a framework's own exporter) as
 * Prometheus does: every `interval_ms`, with a timeout, `job`/`instance` labels plus the agent's node labels,
 * exporter labels that clash renamed `exported_<name>` (unless `honor_labels`), `up`,
 * `scrape_duration_seconds` and `scrape_samples_scraped` per target, and a staleness marker for every series
 * that disappears (or for all of them when a scrape fails).
 *
 * DCGM series are shipped under their original names and also under DESIGN.md's canonical names (dcgm.ts),
 * carrying the job labels of the GPU when the agent knows which job uses it.
 */
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { STALE_NAN } from '../../model/batch.js';
import { doubled } from '../../model/grow.js';
import { type LabelSet, sanitizeLabelName, sanitizeMetricName } from '../../model/labels.js';
import { THROTTLE_REASONS } from '../gpu/fields.js';
import type { AgentLogger } from '../log.js';
import type { RecordedSeries, Recorder } from '../recorder.js';
import { DCGM_MAP, type DcgmMapping, dcgmGpuLabels, isDcgmBlank } from './dcgm.js';
import { type ParsedSeries, parsePrometheusText, parseSeries } from './text-parser.js';

export interface ScrapeTargetOptions {
  readonly url: string;
  readonly name?: string | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly honorLabels: boolean;
  /** The agent's node labels (node_id, cluster, static labels). */
  readonly nodeLabels: Readonly<Record<string, string>>;
  readonly recorder: Recorder;
  readonly logger: AgentLogger;
  /** Job labels of a GPU by UUID or index, from the agent's own attribution; {} when unknown. */
  readonly gpuAttribution?: (
    uuid: string | undefined,
    index: string | undefined,
  ) => Readonly<Record<string, string>>;
  /** True while the agent reads GPUs with nvidia-smi (DCGM fields it also reads are not duplicated). */
  readonly nvidiaSmiActive?: () => boolean;
  readonly maxBodyBytes?: number;
}

interface CachedSeries {
  readonly original: RecordedSeries;
  readonly parsed: ParsedSeries;
  readonly dcgm: DcgmMapping | undefined;
  /** Canonical DCGM series (one, or one per throttle reason), rebuilt when the GPU's job changes. */
  canonical: RecordedSeries[] | undefined;
  attribution: Readonly<Record<string, string>> | undefined;
  generation: number;
}

export interface ScrapeCounters {
  scrapes: number;
  failures: number;
  samples: number;
  lastDurationMs: number;
  up: number;
}

export class ScrapeTarget {
  readonly counters: ScrapeCounters = { scrapes: 0, failures: 0, samples: 0, lastDurationMs: 0, up: 0 };
  private readonly cache = new Map<string, CachedSeries>();
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly url: URL;
  private readonly targetLabels: Record<string, string>;
  private readonly upSeries: RecordedSeries;
  private readonly durationSeries: RecordedSeries;
  private readonly samplesSeries: RecordedSeries;
  private lastError = '';
  /** One scrape's samples between parsing and recording (reused). */
  private readonly pendingEntries: CachedSeries[] = [];
  private pendingT = new Float64Array(1024);
  private pendingV = new Float64Array(1024);

  constructor(private readonly opts: ScrapeTargetOptions) {
    this.url = new URL(opts.url);
    const instance = this.url.host;
    this.targetLabels = {
      job: opts.name ?? instance,
      instance,
      ...opts.nodeLabels,
      ...opts.labels,
    };
    const synthetic = (name: string) => opts.recorder.series({ __name__: name, ...this.targetLabels }, 'raw');
    this.upSeries = synthetic('up');
    this.durationSeries = synthetic('scrape_duration_seconds');
    this.samplesSeries = synthetic('scrape_samples_scraped');
  }

  get instance(): string {
    return this.targetLabels.instance!;
  }

  start(): void {
    // Spread targets over the interval as Prometheus does, so several targets do not fire together.
    const offset = Math.floor(Math.random() * Math.min(this.opts.intervalMs, 5000));
    this.timer = setTimeout(() => {
      void this.scrapeOnce();
      this.timer = setInterval(() => void this.scrapeOnce(), this.opts.intervalMs);
      this.timer.unref();
    }, offset);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
  }

  /** One scrape; never throws (failures become `up 0`, staleness markers and a log line). */
  async scrapeOnce(): Promise<void> {
    if (this.running) return; // the previous scrape is still waiting for its timeout
    this.running = true;
    const started = Date.now();
    try {
      const body = await this.fetch();
      const gen = ++this.generation;
      const n = this.ingest(body, started, gen);
      this.markStale(gen, started);
      this.counters.samples = n;
      this.counters.up = 1;
      if (this.lastError !== '') {
        this.opts.logger.info({ target: this.opts.url }, 'scrape target is back');
        this.lastError = '';
      }
      this.opts.recorder.record(this.samplesSeries, started, n);
    } catch (err) {
      this.counters.failures++;
      this.counters.up = 0;
      const message = (err as Error).message;
      if (message !== this.lastError)
        this.opts.logger.warn({ target: this.opts.url, error: message }, 'scrape failed');
      this.lastError = message;
      this.markStale(++this.generation, started);
    } finally {
      this.running = false;
      this.counters.scrapes++;
      this.counters.lastDurationMs = Date.now() - started;
      this.opts.recorder.record(this.upSeries, started, this.counters.up);
      this.opts.recorder.record(this.durationSeries, started, this.counters.lastDurationMs / 1000);
    }
  }

  /**
   * Parses the whole body first and records it only if every line parsed: a scrape is taken whole or not
   * at all, as Prometheus does.
   */
  private ingest(body: string, scrapeMs: number, gen: number): number {
    const rec = this.opts.recorder;
    const smiActive = this.opts.nvidiaSmiActive?.() ?? false;
    const entries = this.pendingEntries;
    entries.length = 0;
    let n = 0;
    parsePrometheusText(body, {
      sample: (seriesText, value, ts, _type, lineNo) => {
        let c = this.cache.get(seriesText);
        if (!c) {
          const parsed = parseSeries(seriesText, lineNo);
          c = {
            original: rec.series(this.originalLabels(parsed), 'raw'),
            parsed,
            dcgm: Object.hasOwn(DCGM_MAP, parsed.name) ? DCGM_MAP[parsed.name] : undefined,
            canonical: undefined,
            attribution: undefined,
            generation: 0,
          };
          this.cache.set(seriesText, c);
        }
        if (n === this.pendingT.length) this.growPending();
        entries.push(c);
        this.pendingT[n] = Number.isNaN(ts) ? scrapeMs : ts;
        this.pendingV[n] = value;
        n++;
      },
    });
    for (let i = 0; i < n; i++) {
      const c = entries[i]!;
      const t = this.pendingT[i]!;
      const value = this.pendingV[i]!;
      c.generation = gen;
      rec.record(c.original, t, value);
      if (c.dcgm && !(smiActive && c.dcgm.alsoFromNvidiaSmi) && !isDcgmBlank(value))
        this.canonical(c, t, value);
    }
    entries.length = 0;
    return n;
  }

  private growPending(): void {
    this.pendingT = doubled(this.pendingT);
    this.pendingV = doubled(this.pendingV);
  }

  private canonical(c: CachedSeries, t: number, value: number): void {
    const map = c.dcgm!;
    const gpu = dcgmGpuLabels(c.parsed.labels);
    const attribution = this.opts.gpuAttribution?.(gpu.gpu_uuid, gpu.gpu) ?? {};
    if (!c.canonical || c.attribution !== attribution) {
      const base = { ...this.opts.nodeLabels, ...this.opts.labels, ...gpu, ...attribution };
      c.canonical = map.throttleMask
        ? THROTTLE_REASONS.map(([, reason]) =>
            this.opts.recorder.series({ __name__: map.metric, ...base, reason }, 'raw'),
          )
        : [this.opts.recorder.series({ __name__: map.metric, ...base, ...map.labels }, 'raw')];
      c.attribution = attribution;
    }
    if (map.throttleMask) {
      for (let r = 0; r < THROTTLE_REASONS.length; r++)
        this.opts.recorder.record(c.canonical[r]!, t, (value & THROTTLE_REASONS[r]![0]) !== 0 ? 1 : 0);
    } else {
      this.opts.recorder.record(c.canonical[0]!, t, value * map.scale);
    }
  }

  /** Prometheus's rules: target labels win; the exporter's clashing labels become exported_<name>. */
  private originalLabels(parsed: ParsedSeries): LabelSet {
    const out: Record<string, string> = { __name__: sanitizeMetricName(parsed.name) };
    const fromExporter: Record<string, string> = {};
    for (const [rawName, value] of parsed.labels) {
      if (value === '') continue; // an empty label is the same as no label
      let name = sanitizeLabelName(rawName);
      if (name.startsWith('__')) name = `exported_${name}`;
      fromExporter[name] = value;
    }
    for (const [k, v] of Object.entries(this.targetLabels)) out[k] = v;
    for (const [k, v] of Object.entries(fromExporter)) {
      if (out[k] !== undefined && k !== '__name__') {
        if (this.opts.honorLabels) out[k] = v;
        else out[`exported_${k}`] = v;
      } else {
        out[k] = v;
      }
    }
    return out;
  }

  private markStale(gen: number, t: number): void {
    for (const [key, c] of this.cache) {
      if (c.generation === gen) continue;
      if (c.generation === 0) {
        // Parsed in a scrape that failed: never recorded, nothing to mark.
        this.cache.delete(key);
        continue;
      }
      this.opts.recorder.record(c.original, t, STALE_NAN);
      for (const s of c.canonical ?? []) this.opts.recorder.record(s, t, STALE_NAN);
      this.cache.delete(key);
    }
  }

  private async fetch(): Promise<string> {
    // TLS is loaded only for https targets: most exporters are plain http on the node.
    const client = this.url.protocol === 'https:' ? (await import('node:https')).default : http;
    const limit = this.opts.maxBodyBytes ?? 64 << 20;
    return new Promise<string>((resolve, reject) => {
      const req = client.get(
        this.url,
        {
          headers: {
            accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1',
            'accept-encoding': 'gzip',
            'x-prometheus-scrape-timeout-seconds': String(this.opts.timeoutMs / 1000),
            'user-agent': 'trainwatch-agent',
          },
          timeout: this.opts.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > limit) {
              req.destroy(new Error(`response larger than ${limit} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            if (res.statusCode !== 200) {
              reject(new Error(`HTTP ${res.statusCode} from ${this.opts.url}`));
              return;
            }
            try {
              let body = Buffer.concat(chunks);
              if (res.headers['content-encoding'] === 'gzip')
                body = gunzipSync(body, { maxOutputLength: limit });
              resolve(body.toString('utf8'));
            } catch (err) {
              reject(err as Error);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.timeoutMs} ms`)));
      req.on('error', reject);
    });
  }
}
