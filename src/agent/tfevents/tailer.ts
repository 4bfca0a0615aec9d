/**
 * Follows TensorBoard log directories: every `events.out.tfevents.*` file below a configured directory (new
 * runs and new files included) is read from where the previous scan stopped, and its scalars become series.
 *
 * Per file the tailer remembers (inode, offset) in `<data_dir>/tfevents-state.json`, and writes it only after
 * the samples read up to that offset are in the disk buffer, so a restart neither loses nor re-reads a record
 * (a crash between the two re-reads a few; storage keeps one sample per series and timestamp).
 *
 * Naming: a scalar tagged `train/loss` becomes `train_loss`; its labels are the node's, `run` (the run's
 * directory relative to the configured one), and the job: the directory's configured `job_id`, else the
 * writer process's job (the file name carries the writer's host and PID; when that process runs here, its
 * environment names the job and rank), else the run directory's name. Each event with scalars also gives
 * `train_step` (the event's step) at the same time, so curves can be drawn against step.
 */
import {
  closeSync,
  type Dirent,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { emptyBatch, type SeriesBatch } from '../../model/batch.js';
import { type JobEvent, validateJobId } from '../../model/job.js';
import { sanitizeMetricName } from '../../model/labels.js';
import { jobLabels, processJob } from '../labels.js';
import type { AgentLogger } from '../log.js';
import { Recorder } from '../recorder.js';
import { decodeEvent, ProtoError } from './event.js';
import { readRecord } from './tfrecord.js';

export interface TensorboardDir {
  readonly path: string;
  readonly jobId?: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
}

export interface TfeventsTailerOptions {
  readonly dirs: readonly TensorboardDir[];
  readonly intervalMs: number;
  readonly stateFile: string;
  readonly nodeLabels: Readonly<Record<string, string>>;
  readonly procRoot: string;
  readonly logger: AgentLogger;
  /** Puts a batch in the disk buffer; resolves once it is buffered. */
  readonly emit: (batch: SeriesBatch, events: JobEvent[]) => Promise<void>;
  readonly hostname?: string;
  /** Bytes read from one file per scan (bounds memory and the batch size). */
  readonly maxReadBytes?: number;
}

interface FileState {
  ino: number;
  offset: number;
  /** Job labels fixed at first sight (the writer may be gone later). */
  job: Record<string, string>;
  run: string;
  broken?: string;
}

const EVENTS_FILE = /^events\.out\.tfevents\.(\d+)\.(.+?)\.(\d+)\.\d+(\.v2)?$/;
const MAX_DEPTH = 8;

export interface TfeventsCounters {
  files: number;
  records: number;
  scalars: number;
  corruptFiles: number;
}

export class TfeventsTailer {
  readonly counters: TfeventsCounters = { files: 0, records: 0, scalars: 0, corruptFiles: 0 };
  private state = new Map<string, FileState>();
  private readonly tagPlugins = new Map<string, Map<string, string>>();
  private readonly announced = new Set<string>();
  private readonly lastStep = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly recorder = new Recorder(Number.MAX_SAFE_INTEGER);
  private readonly missingDirs = new Set<string>();
  private readonly hostname: string;

  constructor(private readonly opts: TfeventsTailerOptions) {
    this.hostname = opts.hostname ?? os.hostname();
    try {
      const saved = JSON.parse(readFileSync(opts.stateFile, 'utf8')) as { files?: Record<string, FileState> };
      for (const [file, s] of Object.entries(saved.files ?? {})) this.state.set(file, s);
    } catch {
      // First run, or an unreadable state file: start from the beginning of every file.
    }
  }

  start(): void {
    const tick = () => {
      if (this.scanning) return;
      this.scanning = this.scan()
        .catch((err: Error) =>
          this.opts.logger.error(
            { error: err.message },
            'TensorBoard scan failed; retrying at the next interval',
          ),
        )
        .finally(() => {
          this.scanning = undefined;
        });
    };
    tick();
    this.timer = setInterval(tick, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.scanning;
  }

  /** One pass over every directory and file; resolves after the new samples are buffered and the state saved. */
  async scan(): Promise<void> {
    const changed: [string, FileState][] = [];
    const events: JobEvent[] = [];
    for (const dir of this.opts.dirs) {
      for (const file of this.findFiles(dir.path)) {
        const next = this.readFile(dir, file, events);
        if (next) changed.push([file, next]);
      }
    }
    const batch = this.recorder.flush();
    if (batch || events.length > 0) {
      await this.opts.emit(batch ?? emptyBatch, events);
    }
    if (changed.length > 0) {
      for (const [file, s] of changed) this.state.set(file, s);
      this.saveState();
    }
    this.counters.files = this.state.size;
  }

  private findFiles(root: string): string[] {
    const out: string[] = [];
    const walk = (dir: string, depth: number) => {
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if (depth === 0 && !this.missingDirs.has(root)) {
          this.missingDirs.add(root);
          this.opts.logger.warn(
            { dir: root, error: (err as Error).message },
            'TensorBoard directory not readable yet; watching for it',
          );
        }
        return;
      }
      if (depth === 0) this.missingDirs.delete(root);
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory() && depth < MAX_DEPTH) walk(p, depth + 1);
        else if (e.isFile() && e.name.startsWith('events.out.tfevents.')) out.push(p);
      }
    };
    walk(root, 0);
    return out.sort();
  }

  /** Reads what is new in one file into the recorder; returns its next state if anything moved. */
  private readFile(dir: TensorboardDir, file: string, events: JobEvent[]): FileState | undefined {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return undefined;
    }
    try {
      const st = fstatSync(fd);
      let s = this.state.get(file);
      if (!s || s.ino !== st.ino || st.size < s.offset) {
        // New file, or a different file under the same name: from the beginning.
        s = { ino: st.ino, offset: 0, job: this.jobOf(dir, file), run: runOf(dir.path, file) };
        this.tagPlugins.delete(file);
      }
      if (s.broken || st.size === s.offset) return undefined;
      const len = Math.min(st.size - s.offset, this.opts.maxReadBytes ?? 8 << 20);
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, s.offset + got);
        if (n === 0) break;
        got += n;
      }
      let plugins = this.tagPlugins.get(file);
      if (!plugins) {
        plugins = new Map();
        this.tagPlugins.set(file, plugins);
      }
      const next: FileState = { ...s };
      let pos = 0;
      for (;;) {
        const r = readRecord(buf.subarray(0, got), pos);
        if (r.kind === 'partial') break;
        if (r.kind === 'corrupt') {
          next.broken = r.reason;
          this.counters.corruptFiles++;
          this.opts.logger.warn(
            { file, offset: s.offset + pos, reason: r.reason },
            'TensorBoard file is damaged; stopped reading it (records before the damage were imported)',
          );
          break;
        }
        pos = r.next;
        this.counters.records++;
        try {
          this.importEvent(r.data, plugins, next, dir, events);
        } catch (err) {
          if (!(err instanceof ProtoError)) throw err;
          this.opts.logger.warn(
            { file, offset: s.offset + pos, error: err.message },
            'TensorBoard record is not an Event; skipped',
          );
        }
      }
      next.offset = s.offset + pos;
      return next.offset !== s.offset || next.broken || !this.state.has(file) ? next : undefined;
    } finally {
      closeSync(fd);
    }
  }

  private importEvent(
    data: Uint8Array,
    plugins: Map<string, string>,
    s: FileState,
    dir: TensorboardDir,
    events: JobEvent[],
  ): void {
    const ev = decodeEvent(data, plugins);
    if (ev.scalars.length === 0) return;
    const t = Math.round(ev.wallTimeSec * 1000);
    const base = { ...this.opts.nodeLabels, ...s.job, run: s.run, ...dir.labels };
    const jobId = s.job.job_id;
    const metricKeys: Record<string, string> = {};
    for (const sc of ev.scalars) {
      const name = sanitizeMetricName(sc.tag);
      this.recorder.record(this.recorder.series({ __name__: name, ...base }, 'raw'), t, sc.value);
      this.counters.scalars++;
      const announceKey = `${jobId}\u0000${name}`;
      if (jobId && !this.announced.has(announceKey)) {
        this.announced.add(announceKey);
        metricKeys[name] = sc.tag;
      }
    }
    // Writers such as torch's SummaryWriter put each scalar in its own event: one step sample per (time, step).
    const stepKey = `${t}:${ev.step}`;
    if (this.lastStep.get(s.run) !== stepKey) {
      this.lastStep.set(s.run, stepKey);
      this.recorder.record(this.recorder.series({ __name__: 'train_step', ...base }, 'raw'), t, ev.step);
    }
    if (jobId && Object.keys(metricKeys).length > 0) {
      const first = !this.announced.has(jobId);
      this.announced.add(jobId);
      events.push(
        first
          ? { kind: 'start', jobId, timeMs: t, metricKeys, tags: ['tensorboard'] }
          : { kind: 'update', jobId, timeMs: t, metricKeys },
      );
    }
  }

  private jobOf(dir: TensorboardDir, file: string): Record<string, string> {
    if (dir.jobId) return { job_id: dir.jobId };
    const m = EVENTS_FILE.exec(path.basename(file));
    if (m && m[2] === this.hostname) {
      const job = processJob(Number(m[3]), this.opts.procRoot);
      if (job?.jobId) return jobLabels(job);
    }
    let run = runOf(dir.path, file)
      .replace(/[^A-Za-z0-9._:@/-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '');
    if (run === '' || validateJobId(run) !== undefined)
      run = path.basename(path.resolve(dir.path)).replace(/[^A-Za-z0-9._:@/-]+/g, '-');
    return validateJobId(run) === undefined ? { job_id: run } : {};
  }

  private saveState(): void {
    const tmp = `${this.opts.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ files: Object.fromEntries(this.state) }));
    renameSync(tmp, this.opts.stateFile);
  }
}

/** The run of a file: its directory relative to the configured log directory ('.' becomes the directory's name). */
function runOf(root: string, file: string): string {
  const rel = path.relative(root, path.dirname(file));
  return rel === '' ? path.basename(path.resolve(root)) : rel.split(path.sep).join('/');
}
