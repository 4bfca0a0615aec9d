/**
 * The run generator: one training job, tick by tick, with the series a real job's agents and SDK send (the
 * canonical names and labels of DESIGN.md) and the job events. Behaviours and incidents are *effects*: each
 * tick the generator resets the knobs of {@link RunState}, every effect turns some (a pause, a slow rank, a
 * leak), and the samples follow from the knobs. Deterministic: the same params and effects give the same frames.
 *
 * Model of a synchronous data-parallel job: every rank waits for the slowest at each collective, so the job's
 * step time is the slowest rank's compute time; a rank's own `train_step_duration_seconds` is its compute time
 * (what a per-rank timer around forward/backward reports; the straggler's is longer, the others wait in the
 * collective, spinning their GPU a little less). A frozen rank (hang) or a lost node freezes the whole job.
 */
import type { SeriesBatch } from '../../src/model/batch.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';
import type { LabelSet } from '../../src/model/labels.js';
import { Rng } from '../../src/simulator/rng.js';
import type { Frame, RunParams } from './types.js';

export const GPU_MEMORY_BYTES = 80 * 2 ** 30;
export const SM_CLOCK_HZ = 1.98e9;
export const HOST_MEMORY_BYTES = 180 * 2 ** 30;
const NET_BYTES_PER_SECOND = 2.4e9;

/** What effects turn, per tick (reset before each tick unless said otherwise). */
export class RunState {
  readonly ranks: number;
  readonly nodes: number;
  /** Seconds since the run started, at this tick. */
  tS = 0;
  tMs = 0;
  readonly dtS: number;
  /** The job's step (fractional); persistent. */
  step = 0;
  /** Steps completed in the previous tick. */
  completedLastTick = 0;

  // ---- job-level knobs ----
  /** No step progress this tick (checkpoint, eval, stall); GPUs at `pauseUtil`. */
  paused = false;
  pauseUtil = 0.05;
  /** Step time × this (dynamic batch, curricula, degradation). */
  stepTimeMul = 1;
  /** Samples per step × this (dynamic batch size). */
  batchMul = 1;
  /** Tokens per sample × this (sequence-length curriculum). */
  seqMul = 1;
  /** Extra coefficient of variation of the step time (mixed-length batches, MoE). */
  extraStepNoise = 0;
  lossMul = 1;
  lossAdd = 0;
  /** The loss this tick is NaN / +Inf. */
  lossNonFinite = 0;
  /** The whole job sends nothing this tick (a restart gap, a logging hiccup, a crash). */
  silent = false;
  /** Training metrics are not sent this tick (irregular logging), GPU metrics are. */
  trainSilent = false;
  /** Every GPU's utilization × this. */
  utilMul = 1;
  memMul = 1;

  // ---- per-rank knobs ----
  /** Compute time × this (≥ 1: slower). */
  readonly rankSlow: Float64Array;
  /** Utilization override (NaN: none). */
  readonly rankUtil: Float64Array;
  readonly rankUtilMul: Float64Array;
  readonly rankClockMul: Float64Array;
  readonly rankPowerCapW: Float64Array;
  readonly rankTempAdd: Float64Array;
  readonly rankThrottled: Uint8Array;
  /** The rank's step is stuck (a hang): the whole job freezes. */
  readonly rankFrozen: Uint8Array;
  /** The GPU is allocated to the job but does not take part (no training metrics, nothing computed). */
  readonly rankIdle: Uint8Array;
  /** Memory used × this, and + these bytes. */
  readonly rankMemMul: Float64Array;
  readonly rankMemAdd: Float64Array;
  /** ECC errors added this tick. */
  readonly rankEccAdd: Float64Array;
  /** The node sends nothing. */
  readonly nodeSilent: Uint8Array;
  readonly nodeNetMul: Float64Array;
  readonly nodeCpuAdd: Float64Array;

  /** Events to send with this tick. */
  events: JobEvent[] = [];
  /** The run ends after this tick (a finish event is the effect's to send). */
  ended = false;
  /** An evaluation's result, sent on rank 0 with the next frame (then cleared); persistent until sent. */
  evalResult: EvalResult | undefined;

  constructor(
    readonly p: RunParams,
    readonly rng: Rng,
  ) {
    this.ranks = p.worldSize;
    this.nodes = p.worldSize / p.gpusPerNode;
    this.dtS = p.intervalMs / 1000;
    const r = this.ranks;
    this.rankSlow = new Float64Array(r);
    this.rankUtil = new Float64Array(r);
    this.rankUtilMul = new Float64Array(r);
    this.rankClockMul = new Float64Array(r);
    this.rankPowerCapW = new Float64Array(r);
    this.rankTempAdd = new Float64Array(r);
    this.rankThrottled = new Uint8Array(r);
    this.rankFrozen = new Uint8Array(r);
    this.rankIdle = new Uint8Array(r);
    this.rankMemMul = new Float64Array(r);
    this.rankMemAdd = new Float64Array(r);
    this.rankEccAdd = new Float64Array(r);
    this.nodeSilent = new Uint8Array(this.nodes);
    this.nodeNetMul = new Float64Array(this.nodes);
    this.nodeCpuAdd = new Float64Array(this.nodes);
  }

  reset(): void {
    this.paused = false;
    this.pauseUtil = 0.05;
    this.stepTimeMul = 1;
    this.batchMul = 1;
    this.seqMul = 1;
    this.extraStepNoise = 0;
    this.lossMul = 1;
    this.lossAdd = 0;
    this.lossNonFinite = 0;
    this.silent = false;
    this.trainSilent = false;
    this.utilMul = 1;
    this.memMul = 1;
    this.rankSlow.fill(1);
    this.rankUtil.fill(Number.NaN);
    this.rankUtilMul.fill(1);
    this.rankClockMul.fill(1);
    this.rankPowerCapW.fill(Number.POSITIVE_INFINITY);
    this.rankTempAdd.fill(0);
    this.rankThrottled.fill(0);
    this.rankFrozen.fill(0);
    this.rankIdle.fill(0);
    this.rankMemMul.fill(1);
    this.rankMemAdd.fill(0);
    this.rankEccAdd.fill(0);
    this.nodeSilent.fill(0);
    this.nodeNetMul.fill(1);
    this.nodeCpuAdd.fill(0);
  }

  nodeOf(rank: number): number {
    return Math.floor(rank / this.p.gpusPerNode);
  }

  nodeId(node: number): string {
    return nodeIdOf(this.p, node);
  }

  /** A phase event (only when the framework reports phases): an `update` whose config carries `phase`. */
  phase(name: 'train' | 'eval' | 'checkpoint' | 'cooldown'): void {
    if (this.p.phaseEvents) this.events.push(phaseEvent(this.p.jobId, this.tMs, name));
  }
}

/**
 * How a framework that knows its phases reports them: a job `update` event with `config.phase`. One place, so
 * that the convention can change with the SDK.
 */
export function phaseEvent(jobId: string, timeMs: number, phase: string): JobEvent {
  return { kind: 'update', jobId, timeMs, config: { phase } };
}

export function nodeIdOf(p: RunParams, node: number): string {
  return `${p.jobId}-node-${node}`;
}

/**
 * A behaviour or an incident: turns knobs each tick. Effects run in order; later ones win where they set the
 * same knob. Effects keep whatever state they need (a leak's size) in their closure.
 */
export interface Effect {
  apply(s: RunState): void;
}

// Series indices within a rank's GPU block and train block.
const G_UTIL = 0;
const G_MEM = 1;
const G_MEM_TOTAL = 2;
const G_POWER = 3;
const G_TEMP = 4;
const G_CLOCK = 5;
const G_THROTTLED = 6;
const G_ECC = 7;
const GPU_SERIES = 8;
const GPU_NAMES = [
  'gpu_utilization_ratio',
  'gpu_memory_used_bytes',
  'gpu_memory_total_bytes',
  'gpu_power_watts',
  'gpu_temperature_celsius',
  'gpu_sm_clock_hertz',
  'gpu_throttled',
  'gpu_ecc_errors_total',
] as const;
const T_STEP = 0;
const T_DURATION = 1;
const T_SAMPLES = 2;
const T_TOKENS = 3;
const T_LOSS = 4;
const TRAIN_SERIES = 5;
const TRAIN_NAMES = [
  'train_step',
  'train_step_duration_seconds',
  'train_samples_per_second',
  'train_tokens_per_second',
  'train_loss',
] as const;
const HOST_NAMES = [
  'host_cpu_utilization_ratio',
  'host_memory_used_bytes',
  'host_network_receive_bytes_total',
  'host_network_transmit_bytes_total',
] as const;

/** Label sets of one run, built once (the engine caches its series by label object). */
class RunLabels {
  readonly gpu: LabelSet[] = [];
  readonly train: LabelSet[] = [];
  readonly host: LabelSet[] = [];
  readonly rank0: Record<'lr' | 'evalLoss' | 'evalAcc' | 'trainAcc', LabelSet>;

  constructor(p: RunParams) {
    for (let r = 0; r < p.worldSize; r++) {
      const node = Math.floor(r / p.gpusPerNode);
      const g = r % p.gpusPerNode;
      const base = { job_id: p.jobId, node_id: nodeIdOf(p, node), cluster: 'scenarios' };
      const gpuLabels = { ...base, gpu: String(g), gpu_uuid: `GPU-${p.jobId}-${node}-${g}`, rank: String(r) };
      for (const name of GPU_NAMES)
        this.gpu.push(
          name === 'gpu_throttled'
            ? { __name__: name, ...gpuLabels, reason: 'hw_thermal_slowdown' }
            : { __name__: name, ...gpuLabels },
        );
      const rankLabels = { ...base, rank: String(r), local_rank: String(g) };
      for (const name of TRAIN_NAMES) this.train.push({ __name__: name, ...rankLabels });
    }
    for (let n = 0; n < p.worldSize / p.gpusPerNode; n++) {
      const base = { job_id: p.jobId, node_id: nodeIdOf(p, n), cluster: 'scenarios' };
      for (const name of HOST_NAMES) this.host.push({ __name__: name, ...base });
    }
    const r0 = { job_id: p.jobId, node_id: nodeIdOf(p, 0), cluster: 'scenarios', rank: '0', local_rank: '0' };
    this.rank0 = {
      lr: { __name__: 'train_learning_rate', ...r0 },
      evalLoss: { __name__: 'eval_loss', ...r0 },
      evalAcc: { __name__: 'eval_accuracy', ...r0 },
      trainAcc: { __name__: 'train_accuracy', ...r0 },
    };
  }
}

/** Extra samples an effect asks for on rank 0 this tick (evaluation results). */
export interface EvalResult {
  /** Undefined: the framework reports no eval loss (only the accuracy). */
  loss: number | undefined;
  accuracy: number;
}

/** The loss curve without noise at `step` (what effects scale). */
export function lossCurve(p: RunParams, step: number): number {
  const m = p.model;
  return m.lossEnd + (m.lossStart - m.lossEnd) * (1 + step / m.lossTau) ** -0.7;
}

/** Generates the frames of one run. */
export function* generateRun(p: RunParams, effects: readonly Effect[]): Generator<Frame> {
  if (p.worldSize % p.gpusPerNode !== 0)
    throw new Error(`world size ${p.worldSize} not a multiple of ${p.gpusPerNode}`);
  const rng = new Rng(p.seed);
  const noise = rng.fork(7);
  const s = new RunState(p, rng);
  const labels = new RunLabels(p);
  const m = p.model;
  const ranks = s.ranks;
  const gpn = p.gpusPerNode;
  const ecc = new Float64Array(ranks);
  const netRx = new Float64Array(s.nodes);
  const netTx = new Float64Array(s.nodes);
  const util = new Float64Array(ranks);
  // Each node's agent samples on its own phase within the interval (agents are not synchronised); the
  // training metrics carry the step's completion time, the same on every rank.
  const phase = new Float64Array(s.nodes);
  for (let n = 0; n < s.nodes; n++) phase[n] = Math.floor(noise.next() * 0.8 * Math.min(p.intervalMs, 5000));
  /** Paused seconds not yet covered by a completed step (the first step after a pause covers them). */
  let uncovered = 0;
  let lastDuration = m.stepSeconds;
  let lastLogBucket = -1;
  const ticks = Math.floor(p.durationMs / p.intervalMs);
  for (let i = 1; i <= ticks; i++) {
    s.reset();
    s.events = [];
    s.tS = (i * p.intervalMs) / 1000;
    s.tMs = p.startMs + i * p.intervalMs;
    if (i === 1)
      s.events.push({
        kind: 'start',
        jobId: p.jobId,
        timeMs: s.tMs,
        name: m.name,
        framework: m.framework,
        worldSize: p.worldSize,
        config: {
          model: m.name,
          batch_size_per_rank: m.batchPerRank,
          global_batch_size: m.batchPerRank * p.worldSize,
          seq_len: m.seqLen || undefined,
        },
      });
    for (const e of effects) e.apply(s);
    const t = s.tMs;
    const dt = s.dtS;

    // ---- the job's step progress ----
    let maxSlow = 1;
    let frozen = false;
    for (let r = 0; r < ranks; r++) {
      if (s.rankIdle[r]) continue;
      if (s.rankFrozen[r]) frozen = true;
      else if (s.rankSlow[r]! > maxSlow) maxSlow = s.rankSlow[r]!;
    }
    const cv = p.stepNoise + s.extraStepNoise;
    const jitter = Math.max(0.3, 1 + cv * noise.gauss());
    const stepTime = m.stepSeconds * s.stepTimeMul * maxSlow * jitter;
    const before = s.step;
    const halted = s.paused || frozen;
    if (halted) uncovered += dt;
    else s.step += dt / stepTime;
    const completed = Math.floor(s.step) - Math.floor(before);
    s.completedLastTick = completed;
    let duration = lastDuration;
    if (completed > 0) {
      duration = stepTime + uncovered;
      uncovered = 0;
      lastDuration = stepTime;
    }
    const logBucket = Math.floor(Math.floor(s.step) / p.logEverySteps);
    let reportTrain: boolean;
    if (p.trainReport === 'on_step') reportTrain = completed > 0 && logBucket !== lastLogBucket;
    else reportTrain = p.logEverySteps === 1 || logBucket !== lastLogBucket;
    if (reportTrain) lastLogBucket = logBucket;
    if (s.trainSilent) reportTrain = false;
    const samplesPerStep = m.batchPerRank * s.batchMul;
    const samplesPerSec =
      p.trainReport === 'on_step' ? samplesPerStep / duration : ((s.step - before) * samplesPerStep) / dt;
    const loss0 = lossCurve(p, s.step) * s.lossMul + s.lossAdd;

    if (s.silent) {
      // An empty frame still advances the clock (absence is judged against it).
      yield { tMs: t, batches: [], events: s.events };
      if (s.ended) return;
      continue;
    }

    // ---- per GPU ----
    for (let r = 0; r < ranks; r++) {
      let u: number;
      if (s.rankIdle[r]) u = 0;
      else if (halted && !s.rankFrozen[r]) u = s.paused ? s.pauseUtil : m.utilBase;
      else if (halted) u = 0;
      else u = m.utilBase * (1 - 0.25 * (1 - s.rankSlow[r]! / maxSlow));
      u = u * s.utilMul * s.rankUtilMul[r]! + 0.02 * noise.gauss();
      if (!Number.isNaN(s.rankUtil[r]!)) u = s.rankUtil[r]! + 0.005 * noise.gauss();
      u = Math.min(1, Math.max(0, u));
      util[r] = u;
    }

    const batches: SeriesBatch[] = [];
    for (let n = 0; n < s.nodes; n++) {
      if (s.nodeSilent[n]) continue;
      const b = new SeriesBatchBuilder(gpn * (GPU_SERIES + TRAIN_SERIES) + 8);
      let nodeUtil = 0;
      const tg = t + phase[n]!;
      for (let g = 0; g < gpn; g++) {
        const r = n * gpn + g;
        const u = util[r]!;
        nodeUtil += u;
        const clock = SM_CLOCK_HZ * s.rankClockMul[r]! * (1 + 0.002 * noise.gauss());
        const power =
          Math.min(s.rankPowerCapW[r]!, 80 + 600 * u * (clock / SM_CLOCK_HZ) ** 1.5) + 6 * noise.gauss();
        const temp = 38 + 30 * u + s.rankTempAdd[r]! + 0.7 * noise.gauss();
        const mem = Math.min(
          GPU_MEMORY_BYTES,
          GPU_MEMORY_BYTES *
            (s.rankIdle[r] ? 0.006 : m.memFraction) *
            s.memMul *
            s.rankMemMul[r]! *
            (1 + 0.0003 * noise.gauss()) +
            s.rankMemAdd[r]!,
        );
        ecc[r]! += s.rankEccAdd[r]!;
        const gl = labels.gpu;
        const k = r * GPU_SERIES;
        b.addSample(gl[k + G_UTIL]!, tg, u);
        b.addSample(gl[k + G_MEM]!, tg, Math.max(0, mem));
        b.addSample(gl[k + G_MEM_TOTAL]!, tg, GPU_MEMORY_BYTES);
        b.addSample(gl[k + G_POWER]!, tg, Math.max(0, power));
        b.addSample(gl[k + G_TEMP]!, tg, temp);
        b.addSample(gl[k + G_CLOCK]!, tg, clock);
        b.addSample(gl[k + G_THROTTLED]!, tg, s.rankThrottled[r]!);
        b.addSample(gl[k + G_ECC]!, tg, ecc[r]!);
      }
      if (reportTrain) {
        for (let g = 0; g < gpn; g++) {
          const r = n * gpn + g;
          if (s.rankIdle[r] || (s.rankFrozen[r] && p.trainReport === 'on_step')) continue;
          const tl = labels.train;
          const k = r * TRAIN_SERIES;
          const own =
            completed > 0 || p.trainReport === 'every_interval'
              ? (duration - stepTime + (stepTime * s.rankSlow[r]!) / maxSlow) * (1 + 0.015 * noise.gauss())
              : duration;
          b.addSample(tl[k + T_STEP]!, t, Math.floor(s.step));
          b.addSample(tl[k + T_DURATION]!, t, Math.max(0.001, own));
          b.addSample(tl[k + T_SAMPLES]!, t, Math.max(0, samplesPerSec * (1 + 0.005 * noise.gauss())));
          if (m.seqLen > 0)
            b.addSample(
              tl[k + T_TOKENS]!,
              t,
              Math.max(0, samplesPerSec * m.seqLen * s.seqMul * (1 + 0.005 * noise.gauss())),
            );
          if (r === 0 || p.lossRanks === 'all') {
            const loss =
              s.lossNonFinite === 1
                ? Number.NaN
                : s.lossNonFinite === 2
                  ? Number.POSITIVE_INFINITY
                  : loss0 * (1 + p.lossNoise * noise.gauss());
            b.addSample(tl[k + T_LOSS]!, t, loss);
          }
          if (r === 0) {
            b.addSample(labels.rank0.lr, t, learningRate(s.step));
            if (Number.isFinite(loss0))
              b.addSample(
                labels.rank0.trainAcc,
                t,
                Math.max(0, Math.min(1, 1 - loss0 / (m.lossStart * 1.05))),
              );
          }
        }
      }
      if (n === 0 && s.evalResult) {
        if (s.evalResult.loss !== undefined) b.addSample(labels.rank0.evalLoss, t, s.evalResult.loss);
        b.addSample(labels.rank0.evalAcc, t, s.evalResult.accuracy);
        s.evalResult = undefined;
      }
      const busy = nodeUtil / gpn;
      netRx[n]! += NET_BYTES_PER_SECOND * (halted ? 0.001 : 0.6 + 0.4 * busy) * s.nodeNetMul[n]! * dt;
      netTx[n]! += NET_BYTES_PER_SECOND * (halted ? 0.001 : 0.58 + 0.4 * busy) * s.nodeNetMul[n]! * dt;
      const hl = labels.host;
      const hk = n * HOST_NAMES.length;
      b.addSample(
        hl[hk]!,
        tg,
        Math.min(1, Math.max(0, 0.2 + 0.3 * busy + s.nodeCpuAdd[n]! + 0.02 * noise.gauss())),
      );
      b.addSample(hl[hk + 1]!, tg, HOST_MEMORY_BYTES * (0.5 + 0.01 * noise.gauss()));
      b.addSample(hl[hk + 2]!, tg, netRx[n]!);
      b.addSample(hl[hk + 3]!, tg, netTx[n]!);
      batches.push(b.build());
    }
    yield { tMs: t, batches, events: s.events };
    if (s.ended) return;
  }
}

/** Warm-up then cosine, in units of the peak (the shape is all the detectors may see). */
function learningRate(step: number): number {
  if (step < 200) return (3e-4 * step) / 200;
  return 3e-4 * (0.55 + 0.45 * Math.cos(Math.min(Math.PI, (step - 200) / 20_000)));
}
