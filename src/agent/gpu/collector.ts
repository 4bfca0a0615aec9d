/**
 * GPU metrics from nvidia-smi, without a process per sample: one `nvidia-smi --query-gpu=... -lms N` loop for
 * the readings and one `--query-compute-apps=... -lms M` loop for the processes on each GPU. Each process's
 * environment (/proc/PID/environ) names its job and rank, and a GPU used by one job's process carries that
 * job's `job_id`, `rank` and `local_rank` on all its series; a shared node thus reports each job's GPUs under
 * the right job.
 *
 * Robustness: placeholder values (`[N/A]`, `[Not Supported]`, ...) give no sample; a field this driver does not
 * know is dropped (or replaced by its older name) and the loop restarted; a loop that exits is restarted with
 * backoff; GPUs that stop answering get `gpu_up 0` and a log line; the reading loop is restarted every
 * `rediscoverIntervalMs` so that new GPUs appear; without nvidia-smi the agent says so once and goes on without
 * GPU metrics.
 */
import type { LabelSet } from '../../model/labels.js';
import { jobLabels, type ProcessJob, processJob } from '../labels.js';
import type { AgentLogger } from '../log.js';
import type { RecordedSeries, Recorder, RecordMode } from '../recorder.js';
import {
  COMPUTE_APPS_FIELDS,
  GPU_FIELDS,
  type GpuField,
  IDENTITY_FIELDS,
  invalidFieldOf,
  numberOf,
  THROTTLE_REASONS,
} from './fields.js';
import { LineProcess } from './line-process.js';
import { parseXidLine, pciKey, XidCounts } from './xid.js';

export interface GpuCollectorOptions {
  readonly nvidiaSmi: string;
  readonly intervalMs: number;
  readonly processesIntervalMs: number;
  readonly rediscoverIntervalMs: number;
  /** When readings come faster than batches, gauges are shipped as mean with _min/_max. */
  readonly shipIntervalMs: number;
  /** /proc of the host (for /proc/PID/environ). */
  readonly procRoot: string;
  readonly recorder: Recorder;
  readonly nodeLabels: Readonly<Record<string, string>>;
  readonly logger: AgentLogger;
  /**
   * The command (and its arguments) that prints the kernel log and follows it, e.g. `dmesg --follow`: each
   * GPU's XIDs are counted from it (`gpu_xid_errors_total`, `gpu_xid_last_error`). Empty or absent: not read.
   */
  readonly kernelLog?: readonly string[];
}

interface GpuState {
  readonly uuid: string;
  index: string;
  name: string;
  busId: string;
  lastSeenMs: number;
  present: boolean;
  /** JSON of the job labels attached to this GPU's series; '' = none. */
  attributionKey: string;
  attribution: Record<string, string>;
  /** Series per active field (undefined until first used), rebuilt when labels change. */
  series: (RecordedSeries | undefined)[];
  throttle: RecordedSeries[] | undefined;
  /** gpu_xid_errors_total and gpu_xid_last_error, once the kernel log is read. */
  xid: [RecordedSeries, RecordedSeries] | undefined;
  up: RecordedSeries | undefined;
  info: RecordedSeries | undefined;
}

interface AppLine {
  readonly uuid: string;
  readonly pid: number;
  readonly memoryBytes: number | undefined;
}

export interface GpuCollectorCounters {
  lines: number;
  badLines: number;
  restarts: number;
  /** 1 while nvidia-smi runs and answers, 0 otherwise. */
  up: number;
  gpus: number;
}

export class GpuCollector {
  readonly counters: GpuCollectorCounters = { lines: 0, badLines: 0, restarts: 0, up: 0, gpus: 0 };
  private fields: GpuField[] = [...GPU_FIELDS];
  private readonly triedFallback = new Set<string>();
  private readonly gpus = new Map<string, GpuState>();
  private gpuLoop: LineProcess;
  private appsLoop: LineProcess;
  private missing = false;
  private stopped = false;
  private backoffMs = 1000;
  private readonly timers: NodeJS.Timeout[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private appsRestartTimer: NodeJS.Timeout | undefined;
  private loggedBadLine = 0;
  /** The last complete processes snapshot, by GPU UUID. */
  private apps = new Map<string, AppLine[]>();
  private appsGroup: AppLine[] = [];
  private appsGroupStamp: string | undefined;
  private lastAppsLineMs = 0;
  private lastAppsSnapshotMs = 0;
  private readonly jobsByPid = new Map<number, ProcessJob | undefined>();
  private readonly gaugeMode: RecordMode;
  private readonly counterMode: RecordMode;
  private kernelLoop: LineProcess | undefined;
  private readonly xids = new XidCounts();
  /** Whether the kernel log answered: only then is a GPU without XIDs reported with zero, not left unknown. */
  private kernelLogRead = false;
  private kernelLogWarned = false;

  constructor(private readonly opts: GpuCollectorOptions) {
    const fast = opts.intervalMs < opts.shipIntervalMs;
    this.gaugeMode = fast ? 'mean' : 'raw';
    this.counterMode = fast ? 'last' : 'raw';
    this.gpuLoop = this.newGpuLoop();
    this.appsLoop = this.newAppsLoop();
    this.kernelLoop = this.newKernelLoop();
  }

  start(): void {
    this.gpuLoop.start();
    this.appsLoop.start();
    this.kernelLoop?.start();
    this.timers.push(
      setInterval(() => this.checkPresence(), Math.max(1000, this.opts.intervalMs)),
      setInterval(() => this.appsTick(), Math.max(250, Math.floor(this.opts.processesIntervalMs / 2))),
      setInterval(() => this.rediscover(), this.opts.rediscoverIntervalMs),
    );
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.restartTimer);
    clearTimeout(this.appsRestartTimer);
    this.gpuLoop.stop();
    this.appsLoop.stop();
    this.kernelLoop?.stop();
  }

  /** Job labels of the GPU with this UUID or index (for exporters' GPU series, e.g. dcgm-exporter's). */
  attributionOf(uuid: string | undefined, index: string | undefined): Readonly<Record<string, string>> {
    if (uuid !== undefined) {
      const g = this.gpus.get(uuid);
      if (g) return g.attribution;
    }
    if (index !== undefined) for (const g of this.gpus.values()) if (g.index === index) return g.attribution;
    return {};
  }

  // -------------------------------------------------------------------------------------------------------
  // The reading loop

  private gpuArgs(): string[] {
    const query = [...IDENTITY_FIELDS, ...this.fields.map((f) => f.query)].join(',');
    return [`--query-gpu=${query}`, '--format=csv,noheader,nounits', '-lms', String(this.opts.intervalMs)];
  }

  private newGpuLoop(): LineProcess {
    const loop: LineProcess = new LineProcess(this.opts.nvidiaSmi, this.gpuArgs(), {
      onLine: (line, t) => this.onGpuLine(line, t),
      onMissing: (err) => this.onMissing(err),
      onExit: (code, signal, output) => this.onGpuExit(code, signal, output),
    });
    return loop;
  }

  private onMissing(err: Error): void {
    this.counters.up = 0;
    if (!this.missing) {
      this.missing = true;
      this.opts.logger.warn(
        { nvidiaSmi: this.opts.nvidiaSmi, error: err.message },
        'nvidia-smi not found: running without GPU metrics (looked for again every gpu.rediscover_interval_ms)',
      );
    }
  }

  private onGpuExit(code: number | null, signal: string | null, output: string): void {
    this.counters.up = 0;
    if (this.stopped) return;
    const invalid = invalidFieldOf(output);
    const field = invalid ? this.fields.find((f) => f.query === invalid) : undefined;
    if (field) {
      if (field.fallback && !this.triedFallback.has(field.query)) {
        this.triedFallback.add(field.query);
        this.fields = this.fields.map((f) =>
          f === field ? { ...f, query: f.fallback!, fallback: undefined } : f,
        );
        this.opts.logger.info(
          { field: field.query, instead: field.fallback },
          'nvidia-smi does not know a field; asking for its other name',
        );
      } else {
        this.fields = this.fields.filter((f) => f !== field);
        this.opts.logger.warn(
          { field: field.query },
          'nvidia-smi does not know a field; reading the GPUs without it',
        );
      }
      this.resetGpuSeries();
      this.restartGpuLoop(0);
      return;
    }
    this.opts.logger.warn(
      { code, signal, output: output.trim().slice(-500), retryInMs: this.backoffMs },
      'nvidia-smi stopped; restarting it',
    );
    this.restartGpuLoop(this.backoffMs);
    this.backoffMs = Math.min(60_000, this.backoffMs * 2);
  }

  private restartGpuLoop(delayMs: number): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.counters.restarts++;
      // The argument list changes when fields were dropped: a new LineProcess with the current fields.
      this.gpuLoop = this.newGpuLoop();
      this.gpuLoop.start();
    }, delayMs);
    this.restartTimer.unref();
  }

  private rediscover(): void {
    if (this.stopped) return;
    // Restarting the loop makes nvidia-smi enumerate the GPUs again; a missing nvidia-smi is looked for again.
    this.gpuLoop.stop();
    this.restartGpuLoop(0);
    if (!this.appsLoop.running) this.restartAppsLoop(0);
    if (this.kernelLoop && !this.kernelLoop.running) {
      // Counted again from the whole log: the command prints it from the start.
      this.kernelLoop = this.newKernelLoop();
      this.kernelLoop?.start();
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // XIDs from the kernel log

  private newKernelLoop(): LineProcess | undefined {
    const cmd = this.opts.kernelLog;
    if (!cmd || cmd.length === 0) return undefined;
    const counts = new XidCounts();
    let read = false;
    return new LineProcess(cmd[0]!, cmd.slice(1), {
      onLine: (line) => {
        const e = parseXidLine(line);
        // A restarted loop prints the log from the start again: it counts into a table of its own, and each
        // GPU's count is the larger of both, so nothing is counted twice and counters never step back.
        if (e) {
          counts.add(e);
          this.xids.raiseTo(counts);
        }
        if (!read) {
          read = true;
          this.kernelLogRead = true;
        }
      },
      onMissing: (err) => this.kernelLogProblem(err.message),
      onExit: (code, _signal, output) => {
        if (!this.stopped) this.kernelLogProblem(`exited with ${code}: ${output.trim().slice(-300)}`);
      },
    });
  }

  private kernelLogProblem(detail: string): void {
    if (this.kernelLogWarned) return;
    this.kernelLogWarned = true;
    this.opts.logger.warn(
      { command: this.opts.kernelLog?.join(' '), detail },
      'cannot read the kernel log: GPU XID errors are not reported (the agent needs permission to read it, e.g. kernel.dmesg_restrict=0 or CAP_SYSLOG)',
    );
  }

  private onGpuLine(line: string, t: number): void {
    const parts = line.split(',');
    const expected = IDENTITY_FIELDS.length + this.fields.length;
    if (parts.length !== expected) {
      this.counters.badLines++;
      if (this.loggedBadLine++ < 5)
        this.opts.logger.warn(
          { line: line.slice(0, 300), fields: parts.length, expected },
          'nvidia-smi printed a line that is not a reading; ignoring it',
        );
      return;
    }
    for (let i = 0; i < parts.length; i++) parts[i] = parts[i]!.trim();
    const uuid = parts[1]!;
    if (!uuid.startsWith('GPU-') && !uuid.startsWith('MIG-')) {
      this.counters.badLines++;
      return;
    }
    if (this.missing) {
      this.missing = false;
      this.opts.logger.info({ nvidiaSmi: this.opts.nvidiaSmi }, 'nvidia-smi found: reading GPU metrics');
    }
    this.counters.lines++;
    this.counters.up = 1;
    this.backoffMs = 1000;
    const gpu = this.gpuState(uuid, parts[0]!, parts[2]!, parts[3]!);
    gpu.lastSeenMs = t;
    if (!gpu.present) {
      gpu.present = true;
      this.opts.logger.info({ gpu: gpu.index, gpu_uuid: uuid }, 'GPU is answering');
    }
    const rec = this.opts.recorder;
    let lost = false;
    for (let f = 0; f < this.fields.length; f++) {
      const text = parts[IDENTITY_FIELDS.length + f]!;
      if (text === '[GPU is lost]') lost = true;
      const field = this.fields[f]!;
      const v = field.convert(text);
      if (v === undefined) continue;
      if (field.metric === 'gpu_throttled') {
        gpu.throttle ??= THROTTLE_REASONS.map(([, reason]) =>
          rec.series(this.gpuLabels(gpu, 'gpu_throttled', { reason }), this.gaugeMode),
        );
        for (let r = 0; r < THROTTLE_REASONS.length; r++)
          rec.record(gpu.throttle[r]!, t, (v & THROTTLE_REASONS[r]![0]) !== 0 ? 1 : 0);
        continue;
      }
      let s = gpu.series[f];
      if (!s) {
        s = rec.series(
          this.gpuLabels(gpu, field.metric, field.labels),
          field.kind === 'counter' ? this.counterMode : this.gaugeMode,
        );
        gpu.series[f] = s;
      }
      rec.record(s, t, v);
    }
    if (this.kernelLogRead) {
      gpu.xid ??= [
        rec.series(this.gpuLabels(gpu, 'gpu_xid_errors_total'), this.counterMode),
        rec.series(this.gpuLabels(gpu, 'gpu_xid_last_error'), this.counterMode),
      ];
      const x = this.xids.of(pciKey(gpu.busId));
      rec.record(gpu.xid[0], t, x.count);
      rec.record(gpu.xid[1], t, x.last);
    }
    gpu.up ??= rec.series(this.gpuLabels(gpu, 'gpu_up'), this.gaugeMode);
    rec.record(gpu.up, t, lost ? 0 : 1);
  }

  private gpuState(uuid: string, index: string, name: string, busId: string): GpuState {
    let g = this.gpus.get(uuid);
    if (!g) {
      g = {
        uuid,
        index,
        name,
        busId,
        lastSeenMs: 0,
        present: false,
        attributionKey: '',
        attribution: {},
        series: [],
        throttle: undefined,
        xid: undefined,
        up: undefined,
        info: undefined,
      };
      this.gpus.set(uuid, g);
      this.counters.gpus = this.gpus.size;
      this.applyAttribution(g);
    } else if (g.index !== index || g.name !== name || g.busId !== busId) {
      g.index = index;
      g.name = name;
      g.busId = busId;
      this.clearSeries(g);
    }
    return g;
  }

  private gpuLabels(gpu: GpuState, metric: string, extra?: Readonly<Record<string, string>>): LabelSet {
    return {
      __name__: metric,
      ...this.opts.nodeLabels,
      gpu: gpu.index,
      gpu_uuid: gpu.uuid,
      ...gpu.attribution,
      ...extra,
    };
  }

  private clearSeries(g: GpuState): void {
    g.series = [];
    g.throttle = undefined;
    g.xid = undefined;
    g.up = undefined;
    g.info = undefined;
  }

  private resetGpuSeries(): void {
    for (const g of this.gpus.values()) this.clearSeries(g);
  }

  /** GPUs that stopped appearing in the loop's output: `gpu_up 0` and a log line, once per disappearance. */
  private checkPresence(): void {
    const now = Date.now();
    const limit = 3 * this.opts.intervalMs + 2000;
    for (const g of this.gpus.values()) {
      if (now - g.lastSeenMs <= limit) continue;
      if (g.present) {
        g.present = false;
        this.opts.logger.warn(
          { gpu: g.index, gpu_uuid: g.uuid, silentForMs: now - g.lastSeenMs },
          'GPU stopped answering in nvidia-smi',
        );
      }
      g.up ??= this.opts.recorder.series(this.gpuLabels(g, 'gpu_up'), this.gaugeMode);
      this.opts.recorder.record(g.up, now, 0);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Processes on the GPUs, and the jobs they belong to

  private newAppsLoop(): LineProcess {
    return new LineProcess(
      this.opts.nvidiaSmi,
      [
        `--query-compute-apps=${COMPUTE_APPS_FIELDS.join(',')}`,
        '--format=csv,noheader,nounits',
        '-lms',
        String(this.opts.processesIntervalMs),
      ],
      {
        onLine: (line, t) => this.onAppsLine(line, t),
        // The reading loop reports a missing nvidia-smi; this one just waits for the next rediscovery.
        onMissing: () => {},
        onExit: (code, _signal, output) => {
          if (this.stopped) return;
          if (invalidFieldOf(output)) {
            this.opts.logger.warn(
              { output: output.trim().slice(-300) },
              'nvidia-smi cannot list the processes on the GPUs; GPU series carry no job labels',
            );
            return;
          }
          if (code !== 0) this.opts.logger.debug({ code }, 'nvidia-smi (processes) stopped; restarting it');
          this.restartAppsLoop(this.backoffMs);
        },
      },
    );
  }

  private restartAppsLoop(delayMs: number): void {
    clearTimeout(this.appsRestartTimer);
    this.appsRestartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.appsLoop = this.newAppsLoop();
      this.appsLoop.start();
    }, delayMs);
    this.appsRestartTimer.unref();
  }

  private onAppsLine(line: string, t: number): void {
    const parts = line.split(',').map((p) => p.trim());
    if (parts.length !== COMPUTE_APPS_FIELDS.length) return;
    const [stamp, uuid, pidText, mem] = parts as [string, string, string, string];
    const pid = Number(pidText);
    if (!Number.isSafeInteger(pid) || pid <= 0) return;
    // All lines of one listing share its timestamp: a new timestamp closes the previous listing.
    if (this.appsGroupStamp !== undefined && stamp !== this.appsGroupStamp) this.closeAppsGroup(t);
    this.appsGroupStamp = stamp;
    const mib = numberOf(mem);
    this.appsGroup.push({ uuid, pid, memoryBytes: mib === undefined ? undefined : mib * 1024 * 1024 });
    this.lastAppsLineMs = t;
  }

  private appsTick(): void {
    const now = Date.now();
    if (this.appsGroupStamp !== undefined && now - this.lastAppsLineMs > 200) {
      // nvidia-smi prints a listing at once; 200 ms of quiet means it is complete.
      this.closeAppsGroup(now);
    } else if (
      this.appsGroupStamp === undefined &&
      this.appsLoop.running &&
      now - Math.max(this.lastAppsLineMs, this.lastAppsSnapshotMs) > 1.5 * this.opts.processesIntervalMs + 500
    ) {
      // Listings with no process print nothing at all: silence for longer than the interval means none.
      this.closeAppsGroup(now);
    }
  }

  private closeAppsGroup(t: number): void {
    const byGpu = new Map<string, AppLine[]>();
    for (const a of this.appsGroup) {
      const list = byGpu.get(a.uuid);
      if (list) list.push(a);
      else byGpu.set(a.uuid, [a]);
    }
    this.appsGroup = [];
    this.appsGroupStamp = undefined;
    this.lastAppsSnapshotMs = t;
    this.apps = byGpu;
    // Forget processes that are gone (PIDs are reused).
    const live = new Set<number>();
    for (const list of byGpu.values()) for (const a of list) live.add(a.pid);
    for (const pid of this.jobsByPid.keys()) if (!live.has(pid)) this.jobsByPid.delete(pid);
    const rec = this.opts.recorder;
    for (const g of this.gpus.values()) this.applyAttribution(g);
    for (const [uuid, list] of byGpu) {
      const g = this.gpus.get(uuid);
      for (const a of list) {
        if (a.memoryBytes === undefined) continue;
        const job = this.jobOf(a.pid);
        const labels: LabelSet = {
          __name__: 'gpu_process_memory_used_bytes',
          ...this.opts.nodeLabels,
          ...(g ? { gpu: g.index } : {}),
          gpu_uuid: uuid,
          pid: String(a.pid),
          ...(job ? jobLabels(job) : {}),
        };
        rec.record(rec.series(labels, 'raw'), t, a.memoryBytes);
      }
    }
    for (const g of this.gpus.values()) {
      g.info ??= rec.series({ ...this.gpuLabels(g, 'gpu_info'), name: g.name, pci_bus_id: g.busId }, 'raw');
      rec.record(g.info, t, 1);
    }
  }

  private jobOf(pid: number): ProcessJob | undefined {
    if (!this.jobsByPid.has(pid)) this.jobsByPid.set(pid, processJob(pid, this.opts.procRoot));
    return this.jobsByPid.get(pid);
  }

  /** A GPU used by processes of exactly one job (and rank) carries that job's labels; otherwise none. */
  private applyAttribution(g: GpuState): void {
    const list = this.apps.get(g.uuid) ?? [];
    const keys = new Map<string, Record<string, string>>();
    for (const a of list) {
      const job = this.jobOf(a.pid);
      if (!job?.jobId) continue;
      const labels = jobLabels(job);
      keys.set(JSON.stringify(labels), labels);
    }
    const [key, labels] = keys.size === 1 ? [...keys][0]! : ['', {}];
    if (key === g.attributionKey) return;
    if (keys.size > 1)
      this.opts.logger.info(
        { gpu: g.index, jobs: [...keys.keys()] },
        'GPU is shared by several jobs; its series carry no job labels (per-process memory does)',
      );
    else if (key !== '') this.opts.logger.info({ gpu: g.index, ...labels }, 'GPU attributed to a job');
    g.attributionKey = key;
    g.attribution = labels;
    this.clearSeries(g);
  }
}
