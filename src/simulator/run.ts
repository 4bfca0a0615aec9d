/**
 * Drives a {@link FleetSimulator} against a collector: first a backfill of recent history as fast as the
 * server takes it (many ticks per batch), then real time, one batch per node per interval, as each node's
 * agent would send it. Bounded by `durationMs` and by the abort signal.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { SeriesBatchBuilder } from '../model/batch.js';
import { doubled } from '../model/grow.js';
import type { JobEvent } from '../model/job.js';
import { NativeClient, sleepUnlessAborted } from '../protocol/native-client.js';
import { type FleetOptions, FleetSimulator, type IncidentRecord, type SimNode } from './fleet.js';

export interface SimulationOptions extends FleetOptions {
  readonly url: string;
  readonly token?: string | undefined;
  /** History to generate before going live, ending now. */
  readonly backfillMs: number;
  /** How long to run in real time after the backfill; 0 = until aborted. */
  readonly durationMs: number;
  /** Ticks per batch during the backfill. */
  readonly backfillTicksPerBatch?: number;
  /** Requests in flight at once. */
  readonly concurrency?: number;
  /** Append each injected incident as a JSON line to this file (the ground truth for detector scoring). */
  readonly incidentsFile?: string | undefined;
  readonly signal?: AbortSignal;
  readonly onProgress?: (report: SimulationReport) => void;
  readonly onIncident?: (incident: IncidentRecord) => void;
}

export interface SimulationReport {
  batches: number;
  samples: number;
  failedBatches: number;
  lastError: string;
  /** Simulated time reached. */
  clockMs: number;
  incidents: IncidentRecord[];
  phase: 'backfill' | 'live' | 'done';
}

/**
 * Accumulates one node's rows over several ticks, then turns them into one columnar batch (with the job
 * events of those ticks): what one agent sends per request.
 */
export class NodeBatcher {
  private times: number[] = [];
  private rows: Float64Array;
  private present: Uint8Array;
  private events: JobEvent[] = [];

  constructor(
    readonly node: SimNode,
    private readonly capacity: number,
  ) {
    this.rows = new Float64Array(capacity * node.series.length);
    this.present = new Uint8Array(capacity * node.series.length);
  }

  get size(): number {
    return this.times.length;
  }

  hasData(): boolean {
    return this.times.length > 0 || this.events.length > 0;
  }

  capture(t: number): void {
    const n = this.node.series.length;
    const at = this.times.length * n;
    if (at + n > this.rows.length) {
      // Sending fell behind: keep everything rather than drop ticks.
      this.rows = doubled(this.rows);
      this.present = doubled(this.present);
    }
    this.rows.set(this.node.values, at);
    this.present.set(this.node.present, at);
    this.times.push(t);
    if (this.node.events.length) {
      this.events.push(...this.node.events);
      this.node.events = [];
    }
  }

  take(): { batch: ReturnType<SeriesBatchBuilder['build']>; events: JobEvent[] } {
    const n = this.node.series.length;
    const b = new SeriesBatchBuilder(this.times.length * n);
    for (let s = 0; s < n; s++) {
      let started = false;
      for (let k = 0; k < this.times.length; k++) {
        if (!this.present[k * n + s]) continue;
        if (!started) {
          b.addSeries(this.node.series[s]!);
          started = true;
        }
        b.add(this.times[k]!, this.rows[k * n + s]!);
      }
    }
    const events = this.events;
    this.events = [];
    this.times = [];
    return { batch: b.build(), events };
  }

  get full(): boolean {
    return this.times.length >= this.capacity;
  }
}

/** A node's batcher with the client that sends its batches to one collector. */
class NodeBuffer extends NodeBatcher {
  readonly client: NativeClient;

  constructor(node: SimNode, capacity: number, url: string, token: string | undefined, runId: string) {
    super(node, capacity);
    // A source id per run and node: sequence numbers restart at 0 with every run, so the id must not repeat.
    this.client = new NativeClient({ url, token, sourceId: `sim-${runId}-${node.nodeId}` });
  }
}

export async function runSimulation(opts: SimulationOptions): Promise<SimulationReport> {
  const now = Date.now();
  const fleet = new FleetSimulator({ ...opts, startMs: now - opts.backfillMs });
  const report: SimulationReport = {
    batches: 0,
    samples: 0,
    failedBatches: 0,
    lastError: '',
    clockMs: fleet.nowMs,
    incidents: fleet.incidents,
    phase: 'backfill',
  };
  const buffers = new Map<SimNode, NodeBuffer>();
  const runId = randomBytes(4).toString('hex');
  const perBatch = Math.max(1, opts.backfillTicksPerBatch ?? 60);
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  let reportedIncidents = 0;
  if (opts.incidentsFile) writeFileSync(opts.incidentsFile, '');

  const noteIncidents = () => {
    while (reportedIncidents < fleet.incidents.length) {
      const inc = fleet.incidents[reportedIncidents++]!;
      if (opts.incidentsFile) appendFileSync(opts.incidentsFile, `${JSON.stringify(inc)}\n`);
      opts.onIncident?.(inc);
    }
  };

  const sendAll = async (onlyFull: boolean) => {
    const ready = [...buffers.values()].filter((b) => b.hasData() && (!onlyFull || b.full));
    let next = 0;
    const worker = async () => {
      while (next < ready.length && !opts.signal?.aborted) {
        const buf = ready[next++]!;
        const { batch, events } = buf.take();
        const outcome = await buf.client.send(batch, events);
        report.batches++;
        if (outcome.ok) report.samples += batch.sampleCount;
        else {
          report.failedBatches++;
          report.lastError = `HTTP ${outcome.status}: ${outcome.error}`;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    // Nodes of jobs that left the fleet have nothing more to send.
    const live = new Set(fleet.activeNodes());
    for (const [node, buf] of buffers) if (!live.has(node) && !buf.hasData()) buffers.delete(node);
  };

  const step = (capacity: number) => {
    fleet.tick();
    for (const node of fleet.activeNodes()) {
      let buf = buffers.get(node);
      if (!buf) {
        buf = new NodeBuffer(node, capacity, opts.url, opts.token, runId);
        buffers.set(node, buf);
      }
      buf.capture(fleet.nowMs);
    }
    noteIncidents();
    report.clockMs = fleet.nowMs;
  };

  // Backfill: as fast as the server accepts, many ticks per batch.
  while (fleet.nowMs + opts.intervalMs <= Date.now() && !opts.signal?.aborted) {
    step(perBatch);
    if ([...buffers.values()].some((b) => b.full)) {
      await sendAll(true);
      opts.onProgress?.(report);
    }
  }
  await sendAll(false);
  report.phase = 'live';
  opts.onProgress?.(report);

  // Live: one batch per node per interval, aligned to the wall clock.
  const liveUntil = opts.durationMs > 0 ? Date.now() + opts.durationMs : Number.POSITIVE_INFINITY;
  while (!opts.signal?.aborted && Date.now() < liveUntil) {
    const due = fleet.nowMs + opts.intervalMs;
    const wait = due - Date.now();
    if (wait > 0) await sleepUnlessAborted(Math.min(wait, liveUntil - Date.now()), opts.signal);
    if (opts.signal?.aborted || Date.now() < due) continue;
    // If sending fell behind, catch up several ticks into the same batches.
    while (fleet.nowMs + opts.intervalMs <= Date.now()) step(perBatch);
    await sendAll(false);
    opts.onProgress?.(report);
  }
  report.phase = 'done';
  return report;
}
