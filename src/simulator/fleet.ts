/**
 * A simulated fleet of training jobs: J concurrent jobs × N nodes × G GPUs, one rank per GPU, with the
 * signals a real fleet produces and the incidents a real fleet suffers, each labelled with when and where it
 * starts so that detectors can be scored against the ground truth.
 *
 * Deterministic: the same options (seed, start time, sizes) produce the same samples and events.
 *
 * Data layout per node (what one node's agent would ship): a fixed list of series, and per tick a row of
 * values plus a presence flag per series (a series absent this tick — eval metrics between evals, a hung
 * rank's loss — is simply not sent). Rows are plain typed arrays, reused every tick.
 */
import type { JobEvent } from '../model/job.js';
import type { LabelSet } from '../model/labels.js';
import { AGENT_UP_JOB } from '../model/metric-catalog.js';
import { Rng } from './rng.js';

export const INCIDENT_TYPES = [
  'straggler',
  'hang',
  'divergence',
  'memory_leak',
  'thermal_throttling',
  'throughput_degradation',
  'idle_gpus',
] as const;
export type IncidentType = (typeof INCIDENT_TYPES)[number];

/** The alerts that count as catching each kind of incident (the detectors' names for them). */
export const EXPECTED_ALERTS: Readonly<Record<IncidentType, readonly string[]>> = {
  straggler: ['TrainingStraggler'],
  hang: ['TrainingStalled'],
  divergence: ['TrainingLossSpike', 'TrainingNaN'],
  memory_leak: ['GPUMemoryLeak', 'GPUMemoryNearFull'],
  thermal_throttling: ['GPUThrottled', 'GPUTemperatureHigh'],
  throughput_degradation: ['ThroughputDegraded'],
  idle_gpus: ['GPUIdle'],
};

/** Ground truth for one injected incident. */
export interface IncidentRecord {
  readonly type: IncidentType;
  readonly jobId: string;
  readonly startMs: number;
  /** Where it is, when it is somewhere in particular. */
  readonly nodeId?: string;
  readonly rank?: number;
  readonly gpu?: number;
  readonly description: string;
}

export interface FleetOptions {
  readonly seed: number;
  /** Jobs running at once; a finished job is replaced by a new one after a short queue. */
  readonly jobs: number;
  readonly nodesPerJob: number;
  readonly gpusPerNode: number;
  readonly intervalMs: number;
  /** Inject one incident of each type into the first jobs (each into its own job). */
  readonly incidents: boolean;
  readonly startMs: number;
  readonly cluster: string;
  /** Incidents start this long after their job starts running. */
  readonly incidentDelayMs: number;
  /** Job length in steps is drawn from this range. */
  readonly minSteps: number;
  readonly maxSteps: number;
}

export const defaultFleetOptions: Omit<FleetOptions, 'startMs'> = {
  seed: 1,
  jobs: 8,
  nodesPerJob: 2,
  gpusPerNode: 4,
  intervalMs: 1000,
  incidents: true,
  cluster: 'sim',
  incidentDelayMs: 5 * 60_000,
  minSteps: 3000,
  maxSteps: 9000,
};

interface Template {
  readonly name: string;
  readonly project: string;
  readonly framework: string;
  /** Tokens per sample for language models; 0 for others. */
  readonly seqLen: number;
  readonly batchPerRank: number;
  readonly stepSeconds: number;
  readonly lossStart: number;
  readonly lossEnd: number;
  readonly lr: number;
  readonly memFraction: number;
}

const TEMPLATES: readonly Template[] = [
  {
    name: 'llama-7b-pretrain',
    project: 'llm',
    framework: 'pytorch',
    seqLen: 4096,
    batchPerRank: 4,
    stepSeconds: 1.6,
    lossStart: 10.5,
    lossEnd: 2.1,
    lr: 3e-4,
    memFraction: 0.86,
  },
  {
    name: 'gpt-1b3-sft',
    project: 'llm',
    framework: 'huggingface',
    seqLen: 2048,
    batchPerRank: 8,
    stepSeconds: 0.9,
    lossStart: 3.2,
    lossEnd: 1.4,
    lr: 2e-5,
    memFraction: 0.71,
  },
  {
    name: 'resnet50-imagenet',
    project: 'vision',
    framework: 'lightning',
    seqLen: 0,
    batchPerRank: 256,
    stepSeconds: 0.35,
    lossStart: 6.9,
    lossEnd: 1.1,
    lr: 0.1,
    memFraction: 0.52,
  },
  {
    name: 'vit-l16-finetune',
    project: 'vision',
    framework: 'pytorch',
    seqLen: 0,
    batchPerRank: 64,
    stepSeconds: 0.55,
    lossStart: 4.6,
    lossEnd: 0.8,
    lr: 1e-4,
    memFraction: 0.64,
  },
  {
    name: 'whisper-small-asr',
    project: 'speech',
    framework: 'huggingface',
    seqLen: 448,
    batchPerRank: 32,
    stepSeconds: 0.7,
    lossStart: 5.1,
    lossEnd: 0.9,
    lr: 1e-4,
    memFraction: 0.58,
  },
  {
    name: 'unet-diffusion',
    project: 'research',
    framework: 'pytorch',
    seqLen: 0,
    batchPerRank: 16,
    stepSeconds: 1.1,
    lossStart: 0.9,
    lossEnd: 0.12,
    lr: 1e-4,
    memFraction: 0.77,
  },
  {
    name: 'moe-8x1b-pretrain',
    project: 'llm',
    framework: 'pytorch',
    seqLen: 2048,
    batchPerRank: 8,
    stepSeconds: 1.3,
    lossStart: 10.8,
    lossEnd: 2.4,
    lr: 2e-4,
    memFraction: 0.9,
  },
  {
    name: 'bert-large-mlm',
    project: 'nlp',
    framework: 'keras',
    seqLen: 512,
    batchPerRank: 32,
    stepSeconds: 0.6,
    lossStart: 7.5,
    lossEnd: 1.7,
    lr: 1e-4,
    memFraction: 0.6,
  },
];

const OWNERS = ['alice', 'bob', 'chen', 'dana', 'emeka', 'farah', 'goran', 'hana'];
const GPU_MEMORY_BYTES = 80 * 2 ** 30;
const SM_CLOCK_HZ = 1.98e9;
const EVAL_EVERY_STEPS = 250;

/** Per-GPU series, in this order, for each GPU of a node. */
const GPU_METRICS = [
  'gpu_utilization_ratio',
  'gpu_memory_used_bytes',
  'gpu_memory_total_bytes',
  'gpu_power_watts',
  'gpu_temperature_celsius',
  'gpu_sm_clock_hertz',
  'gpu_throttled',
  // Health and interconnect, as the agent reads them (src/agent/gpu/fields.ts; DCGM's names for the throughputs).
  'gpu_ecc_errors_total',
  'gpu_ecc_errors_total',
  'gpu_xid_errors_total',
  'gpu_pcie_receive_bytes_per_second',
  'gpu_pcie_transmit_bytes_per_second',
  'gpu_nvlink_receive_bytes_per_second',
  'gpu_nvlink_transmit_bytes_per_second',
] as const;
/** Fixed labels of a per-GPU series beside the GPU's own, by its position in GPU_METRICS. */
const GPU_METRIC_LABELS: Readonly<Record<number, Readonly<Record<string, string>>>> = {
  6: { reason: 'hw_thermal_slowdown' },
  7: { type: 'corrected' },
  8: { type: 'uncorrected' },
};
/** A rank's input pipeline over PCIe (bytes/s at full utilization), and its all-reduce traffic over NVLink. */
const PCIE_RX_BYTES_PER_SECOND = 3.2e9;
const NVLINK_BYTES_PER_SECOND = 140e9;
/** Per-rank series, for each rank of a node. */
const RANK_METRICS = [
  'train_step',
  'train_step_duration_seconds',
  'train_samples_per_second',
  'train_tokens_per_second',
  'train_loss',
] as const;
/** Rank 0 only. */
const RANK0_METRICS = ['train_accuracy', 'train_learning_rate', 'eval_loss', 'eval_accuracy'] as const;
const HOST_METRICS = [
  'host_cpu_utilization_ratio',
  'host_memory_used_bytes',
  'host_network_receive_bytes_total',
  'host_network_transmit_bytes_total',
] as const;

type Phase = 'queued' | 'running' | 'done';

export class SimNode {
  readonly series: LabelSet[] = [];
  /** The current tick's values and whether each series has a sample this tick. */
  readonly values: Float64Array;
  readonly present: Uint8Array;
  /** Job events to send with this node's next batch. */
  events: JobEvent[] = [];
  netRx = 0;
  netTx = 0;
  /**
   * Noise of the interconnect series: its own generator, so that adding them left every other series' values
   * (and the incidents the detectors are scored on) as they were.
   */
  readonly linkNoise: Rng;

  constructor(
    readonly job: SimJob,
    readonly index: number,
    readonly nodeId: string,
    gpus: number,
    cluster: string,
  ) {
    const base = { job_id: job.id, node_id: nodeId, cluster };
    this.linkNoise = job.rng.fork(1000 + index);
    for (let g = 0; g < gpus; g++) {
      const rank = index * gpus + g;
      const gpuLabels = {
        ...base,
        gpu: String(g),
        gpu_uuid: `GPU-${job.id}-${index}-${g}`,
        rank: String(rank),
      };
      GPU_METRICS.forEach((m, i) => {
        this.series.push({ __name__: m, ...gpuLabels, ...GPU_METRIC_LABELS[i] });
      });
    }
    for (let g = 0; g < gpus; g++) {
      const rank = index * gpus + g;
      const rankLabels = { ...base, rank: String(rank), local_rank: String(g) };
      for (const m of RANK_METRICS) this.series.push({ __name__: m, ...rankLabels });
      if (rank === 0) for (const m of RANK0_METRICS) this.series.push({ __name__: m, ...rankLabels });
    }
    for (const m of HOST_METRICS) this.series.push({ __name__: m, ...base });
    // The node's agent reports itself up (src/agent/agent.ts) while it collects: last in the row.
    this.series.push({ __name__: 'up', job: AGENT_UP_JOB, instance: nodeId, node_id: nodeId, cluster });
    this.values = new Float64Array(this.series.length);
    this.present = new Uint8Array(this.series.length);
  }
}

export class SimJob {
  phase: Phase = 'queued';
  readonly nodes: SimNode[] = [];
  /** Fractional step count; every rank of a data-parallel job is at the same step. */
  step = 0;
  runningSinceMs = 0;
  incident: IncidentRecord | undefined;
  /** Per-job state of the incident (e.g. how far a leak has grown). */
  /** Evaluation runs every EVAL_EVERY_STEPS steps: the last bucket evaluated. */
  lastEvalBucket = 0;
  finishStatus: 'completed' | 'failed' = 'completed';

  constructor(
    readonly id: string,
    readonly template: Template,
    readonly owner: string,
    readonly totalSteps: number,
    readonly createdMs: number,
    readonly queuedForMs: number,
    readonly rng: Rng,
    readonly gpusPerNode: number,
    readonly lrScale: number,
  ) {}

  get worldSize(): number {
    return this.nodes.length * this.gpusPerNode;
  }
}

export class FleetSimulator {
  readonly jobs: SimJob[] = [];
  readonly incidents: IncidentRecord[] = [];
  private readonly rng: Rng;
  private jobCounter = 0;
  private pendingIncidents: IncidentType[];
  nowMs: number;

  constructor(readonly opts: FleetOptions) {
    this.rng = new Rng(opts.seed);
    this.nowMs = Math.floor(opts.startMs / opts.intervalMs) * opts.intervalMs;
    this.pendingIncidents = opts.incidents ? [...INCIDENT_TYPES] : [];
    for (let j = 0; j < opts.jobs; j++)
      this.jobs.push(this.newJob(j === 0 ? 0 : this.rng.int(0, 3) * opts.intervalMs * 10));
  }

  /** Nodes whose job is running now; their rows hold this tick's samples after {@link tick}. */
  activeNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const job of this.jobs)
      if (job.phase === 'running' || job.nodes.some((n) => n.events.length > 0)) out.push(...job.nodes);
    return out;
  }

  /** Advances the clock one interval and computes every running node's row. */
  tick(): void {
    this.nowMs += this.opts.intervalMs;
    const now = this.nowMs;
    for (let i = 0; i < this.jobs.length; i++) {
      const job = this.jobs[i]!;
      for (const n of job.nodes) n.present.fill(0);
      if (job.phase === 'queued' && now - job.createdMs >= job.queuedForMs) this.startJob(job);
      if (job.phase === 'running') this.advance(job);
      if (job.phase === 'done' && job.nodes.every((n) => n.events.length === 0)) {
        // The finished job leaves the fleet; a new one is queued in its place.
        this.jobs[i] = this.newJob(this.rng.int(2, 12) * 10_000);
      }
    }
  }

  private newJob(queueMs: number): SimJob {
    const n = this.jobCounter++;
    const template = TEMPLATES[n % TEMPLATES.length]!;
    const jobRng = this.rng.fork(n + 1);
    const suffix = Math.floor(jobRng.next() * 0xffffff)
      .toString(16)
      .padStart(6, '0');
    const job = new SimJob(
      `${template.name}-${suffix}`,
      template,
      this.rng.pick(OWNERS),
      this.rng.int(this.opts.minSteps, this.opts.maxSteps),
      this.nowMs,
      queueMs,
      jobRng,
      this.opts.gpusPerNode,
      this.rng.pick([0.5, 1, 1, 2]),
    );
    for (let i = 0; i < this.opts.nodesPerJob; i++) {
      job.nodes.push(
        new SimNode(job, i, `${job.id.slice(-6)}-node-${i}`, this.opts.gpusPerNode, this.opts.cluster),
      );
    }
    job.nodes[0]!.events.push({
      kind: 'update',
      jobId: job.id,
      timeMs: this.nowMs,
      status: 'queued',
      name: template.name,
      project: template.project,
      owner: job.owner,
      framework: template.framework,
      worldSize: job.worldSize,
      tags: [template.project, template.framework, 'simulated'],
      config: {
        model: template.name,
        learning_rate: template.lr * job.lrScale,
        batch_size_per_rank: template.batchPerRank,
        global_batch_size: template.batchPerRank * job.worldSize,
        seq_len: template.seqLen || undefined,
        total_steps: job.totalSteps,
        optimizer: template.framework === 'keras' ? 'adam' : 'adamw',
        precision: 'bf16',
        seed: this.opts.seed * 1000 + n,
      },
    });
    return job;
  }

  private startJob(job: SimJob): void {
    job.phase = 'running';
    job.runningSinceMs = this.nowMs;
    job.nodes[0]!.events.push({ kind: 'start', jobId: job.id, timeMs: this.nowMs, worldSize: job.worldSize });
    const type = this.pendingIncidents.shift();
    if (type) {
      const node = job.nodes[job.nodes.length - 1]!;
      const gpu = this.opts.gpusPerNode - 1;
      const rank = node.index * this.opts.gpusPerNode + gpu;
      const startMs = this.nowMs + this.opts.incidentDelayMs;
      const where = { nodeId: node.nodeId, rank, gpu };
      const described: Record<IncidentType, [string, boolean]> = {
        straggler: [`rank ${rank} on ${node.nodeId} runs 30% slower than the others`, true],
        hang: ['step stops advancing (NCCL hang): some ranks at 0% GPU, others spinning at 100%', false],
        divergence: ['loss spikes, then becomes NaN', false],
        memory_leak: [`GPU memory of rank ${rank} grows linearly until out of memory`, true],
        thermal_throttling: [`GPU ${gpu} on ${node.nodeId} overheats and its SM clock drops`, true],
        throughput_degradation: ['throughput degrades gradually (about 2% per minute)', false],
        idle_gpus: [`GPU ${gpu} on ${node.nodeId} is allocated but idle`, true],
      };
      const [description, located] = described[type];
      job.incident = { type, jobId: job.id, startMs, description, ...(located ? where : {}) };
      this.incidents.push(job.incident);
    }
  }

  private advance(job: SimJob): void {
    const t = job.template;
    const now = this.nowMs;
    const dt = this.opts.intervalMs / 1000;
    const inc = job.incident && now >= job.incident.startMs ? job.incident : undefined;
    const sinceIncident = inc ? (now - inc.startMs) / 1000 : 0;
    const rng = job.rng;
    const gpus = this.opts.gpusPerNode;
    const incidentRank = inc?.rank ?? -1;

    // Step time of the job: every rank waits for the slowest at each all-reduce.
    let stepSeconds = t.stepSeconds * (1 + 0.03 * rng.gauss());
    if (inc?.type === 'straggler' || inc?.type === 'thermal_throttling') stepSeconds *= 1.3;
    if (inc?.type === 'throughput_degradation') stepSeconds *= 1 + Math.min(1.5, 0.02 * (sinceIncident / 60));
    const hung = inc?.type === 'hang';
    if (!hung) job.step += dt / stepSeconds;
    const step = Math.floor(job.step);

    // Loss follows a power law with noise; divergence multiplies it, then turns it into NaN.
    let loss = t.lossEnd + (t.lossStart - t.lossEnd) * (1 + job.step / 150) ** -0.7;
    if (inc?.type === 'divergence') loss = sinceIncident < 90 ? loss * (1 + sinceIncident / 8) : Number.NaN;
    const accuracy = Math.max(0, Math.min(1, 1 - loss / (t.lossStart * 1.05)));
    const lr = this.learningRate(job, t);
    const evalBucket = Math.floor(step / EVAL_EVERY_STEPS);
    const evalNow = !hung && evalBucket > job.lastEvalBucket;
    if (evalNow) job.lastEvalBucket = evalBucket;

    for (const node of job.nodes) {
      let k = 0;
      const row = node.values;
      const present = node.present;
      const set = (v: number) => {
        row[k] = v;
        present[k] = 1;
        k++;
      };
      const skip = () => {
        k++;
      };
      let nodeUtil = 0;
      for (let g = 0; g < gpus; g++) {
        const rank = node.index * gpus + g;
        const isIncidentGpu = rank === incidentRank;
        let util = Math.min(1, Math.max(0, 0.93 + 0.03 * rng.gauss()));
        if (inc?.type === 'straggler') util = isIncidentGpu ? 0.99 : util * 0.77;
        if (inc?.type === 'idle_gpus' && isIncidentGpu) util = 0;
        if (hung) util = rank % 2 === 0 ? 0 : 1;
        let mem = GPU_MEMORY_BYTES * t.memFraction * (1 + 0.0003 * rng.gauss());
        if (inc?.type === 'idle_gpus' && isIncidentGpu) mem = 512 * 2 ** 20;
        if (inc?.type === 'memory_leak' && isIncidentGpu) {
          mem = Math.min(GPU_MEMORY_BYTES, mem + 40 * 2 ** 20 * sinceIncident);
          if (mem >= GPU_MEMORY_BYTES * 0.999) job.finishStatus = 'failed';
        }
        const thermal = inc?.type === 'thermal_throttling' && isIncidentGpu;
        const temp = thermal ? Math.min(92, 70 + sinceIncident / 6) : 58 + 12 * util + 0.8 * rng.gauss();
        const power = 90 + 560 * util + 10 * rng.gauss();
        const clock = thermal && temp > 85 ? 1.23e9 : SM_CLOCK_HZ;
        set(util);
        set(mem);
        set(GPU_MEMORY_BYTES);
        set(power);
        set(temp);
        set(clock);
        set(thermal && temp > 85 ? 1 : 0);
        // Healthy GPUs: no ECC error, no XID (the counters stay at zero, as on a real healthy node).
        set(0);
        set(0);
        set(0);
        // Input batches in over PCIe, checkpoints and logs out; the gradient all-reduce over NVLink. A hung
        // collective moves nothing; a straggler's peers wait, so their links idle with them.
        const busy = hung ? 0 : util;
        const noise = node.linkNoise;
        set(Math.max(0, PCIE_RX_BYTES_PER_SECOND * busy * (1 + 0.05 * noise.gauss())));
        set(Math.max(0, 0.08 * PCIE_RX_BYTES_PER_SECOND * busy * (1 + 0.05 * noise.gauss())));
        const nvlink = Math.max(0, NVLINK_BYTES_PER_SECOND * busy * (1 + 0.03 * noise.gauss()));
        set(nvlink);
        set(nvlink * (1 + 0.01 * noise.gauss()));
        nodeUtil += util;
      }
      for (let g = 0; g < gpus; g++) {
        const rank = node.index * gpus + g;
        const idle = inc?.type === 'idle_gpus' && rank === incidentRank;
        // A rank's own compute time: the straggler's is 30% longer; the others wait for it at the all-reduce.
        let own = t.stepSeconds * (1 + 0.02 * rng.gauss());
        if ((inc?.type === 'straggler' || inc?.type === 'thermal_throttling') && rank === incidentRank)
          own *= 1.3;
        if (inc?.type === 'throughput_degradation') own = stepSeconds;
        const samplesPerSec = idle || hung ? 0 : t.batchPerRank / stepSeconds;
        if (idle) {
          skip();
          skip();
          skip();
          skip();
          skip();
        } else {
          set(step);
          if (hung) skip();
          else set(own);
          set(samplesPerSec);
          if (t.seqLen > 0) set(samplesPerSec * t.seqLen);
          else skip();
          if (hung) skip();
          else set(loss * (1 + 0.01 * rng.gauss()));
        }
        if (rank === 0) {
          if (hung) {
            skip();
            skip();
          } else {
            set(accuracy);
            set(lr);
          }
          if (evalNow) {
            set(loss * 1.08);
            set(accuracy * 0.97);
          } else {
            skip();
            skip();
          }
        }
      }
      const cpu = Math.min(1, 0.25 + 0.3 * (nodeUtil / gpus) + 0.03 * rng.gauss());
      set(Math.max(0, cpu));
      set(180 * 2 ** 30 + 2 ** 30 * rng.gauss());
      node.netRx += (hung ? 1e4 : 2.4e9) * dt;
      node.netTx += (hung ? 1e4 : 2.3e9) * dt;
      set(node.netRx);
      set(node.netTx);
      set(1); // up
    }

    const finished = job.step >= job.totalSteps;
    // An OOM kills the job; a diverged job is stopped by its owner; a hung job hits the NCCL timeout (30 min).
    const failed =
      job.finishStatus === 'failed' ||
      (inc?.type === 'divergence' && sinceIncident > 600) ||
      (inc?.type === 'hang' && sinceIncident > 1800);
    if (finished || failed) {
      job.phase = 'done';
      job.nodes[0]!.events.push({
        kind: 'finish',
        jobId: job.id,
        timeMs: now,
        status: failed ? 'failed' : 'completed',
      });
    }
  }

  private learningRate(job: SimJob, t: Template): number {
    const warmup = 200;
    const peak = t.lr * job.lrScale;
    if (job.step < warmup) return (peak * job.step) / warmup;
    const p = Math.min(1, (job.step - warmup) / Math.max(1, job.totalSteps - warmup));
    return peak * 0.5 * (1 + Math.cos(Math.PI * p));
  }
}
