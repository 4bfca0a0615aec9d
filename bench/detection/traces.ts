/**
 * Scenarios converted from real, public training logs. The logs give the job-level shape (start-up time,
 * throughput per block, evaluation pauses and results, the end); the per-rank GPU series are not in them and
 * are generated around that shape by generator.ts, as are the training loss and the step numbers.
 *
 * They are in the held-out split only: nobody tunes on them.
 */
import { SM_CLOCK_HZ } from './generator.js';
import type { KindDef } from './kind.js';
import type { ModelShape } from './types.js';

/** A job-level trace: milliseconds since the log's `init_start`. */
export interface JobTrace {
  readonly source: string;
  readonly gpus: number;
  readonly globalBatch: number;
  readonly runStartMs: number;
  /** Training segments: [end, throughput in samples/s over the segment]. */
  readonly segments: readonly (readonly [number, number])[];
  /** Evaluations: [start, stop, eval_accuracy]. */
  readonly evals: readonly (readonly [number, number, number])[];
  readonly runStopMs: number;
}

/**
 * MLPerf Training v3.1, BERT-large pre-training, closed division, ASUSTeK ESC-N8-E11 (1 node × 8 H100),
 * result_0.txt: `init_start` (1695794973604), `run_start`, per block `tracked_stats` (throughput),
 * `eval_start` / `eval_stop` / `eval_accuracy`, and `run_stop` (status success). Global batch 768.
 */
export const MLPERF_BERT_ASUS: JobTrace = {
  source:
    'https://github.com/mlcommons/training_results_v3.1/blob/f33f9444205023cf49bf19ec960992b39663f6fd/ASUSTeK/results/ESC-N8-E11/bert/result_0.txt',
  gpus: 8,
  globalBatch: 768,
  runStartMs: 31_229,
  segments: [
    [50_236, 7936.63],
    [70_875, 7247.74],
    [89_972, 7835.77],
    [109_589, 7674.42],
    [128_677, 7815.02],
    [148_135, 7691.97],
    [167_481, 7795.27],
    [187_830, 7343.59],
    [207_066, 7810.34],
    [226_675, 7690.33],
    [245_759, 7841.58],
    [265_297, 7660.5],
    [284_466, 7837.9],
    [303_957, 7665.04],
    [323_056, 7833.73],
    [342_569, 7691.72],
    [361_760, 7841.73],
  ],
  evals: [
    [50_237, 52_470, 0.37602],
    [70_875, 71_984, 0.40015],
    [89_973, 91_074, 0.49469],
    [109_589, 110_694, 0.64094],
    [128_677, 129_780, 0.69909],
    [148_136, 149_260, 0.70784],
    [167_481, 168_603, 0.71071],
    [187_831, 188_949, 0.71298],
    [207_067, 208_191, 0.71413],
    [226_676, 227_786, 0.71548],
    [245_760, 246_877, 0.71633],
    [265_298, 266_406, 0.71722],
    [284_466, 285_573, 0.71835],
    [303_958, 305_061, 0.71866],
    [323_056, 324_169, 0.7194],
    [342_570, 343_690, 0.71998],
    [361_760, 362_874, 0.72021],
  ],
  runStopMs: 362_875,
};

/**
 * MLPerf Training v3.1, ResNet-50 on ImageNet, closed division, ASUSTeK ESC-N8-E11 (1 node × 8 H100),
 * result_0.txt: `init_start` (1695775222447), `run_start`, per epoch `epoch_stop` + `tracked_stats`
 * (throughput), an evaluation every 4 epochs (`eval_start` / `eval_stop` / `eval_accuracy`), `run_stop`
 * (status success) after 35 epochs. Global batch 3200.
 */
export const MLPERF_RESNET_ASUS: JobTrace = {
  source:
    'https://github.com/mlcommons/training_results_v3.1/blob/f33f9444205023cf49bf19ec960992b39663f6fd/ASUSTeK/results/ESC-N8-E11/resnet/result_0.txt',
  gpus: 8,
  globalBatch: 3200,
  runStartMs: 45_472,
  segments: [
    [70_430, 55839.62],
    [93_160, 56364.76],
    [115_910, 56317.25],
    [139_001, 56594.64],
    [161_682, 56487.28],
    [184_425, 56332.33],
    [207_104, 56491.15],
    [230_179, 56616.8],
    [252_909, 56365.35],
    [275_587, 56494.8],
    [298_313, 56373.14],
    [321_376, 56645.7],
    [344_057, 56485.3],
    [366_787, 56365.19],
    [389_469, 56483.8],
    [412_530, 56635.75],
    [435_271, 56338.65],
    [457_942, 56512.92],
    [480_621, 56491.12],
    [503_752, 56463.89],
    [526_435, 56481.31],
    [549_162, 56374.06],
    [571_841, 56490.44],
    [594_907, 56599.89],
    [617_652, 56329.38],
    [640_335, 56480.14],
    [663_010, 56501.38],
    [686_117, 56492.35],
    [708_797, 56488.63],
    [731_488, 56462.66],
    [754_234, 56326.56],
    [777_296, 56602.2],
    [800_035, 56340.82],
    [822_728, 56458.65],
    [845_424, 56448.1],
  ],
  evals: [
    [115_963, 116_363, 0.32766],
    [207_157, 207_550, 0.41536],
    [298_366, 298_758, 0.44214],
    [389_522, 389_909, 0.56888],
    [480_674, 481_062, 0.65004],
    [571_894, 572_271, 0.69188],
    [663_063, 663_438, 0.73056],
    [754_286, 754_661, 0.74776],
    [845_477, 845_843, 0.7596],
  ],
  runStopMs: 845_843,
};

/**
 * A clean kind that replays a job trace at 1 s sampling: init (no steps, memory coming up), training at the
 * logged throughput per segment, the evaluations (no steps, eval accuracy after), a finish at `run_stop`.
 */
function traceKind(name: string, summary: string, variant: string, tr: JobTrace, model: ModelShape): KindDef {
  return {
    name,
    category: 'clean',
    summary,
    variants: [{ name: variant, splits: ['heldout'] }],
    make() {
      const nominal = tr.segments.reduce((a, [, x]) => a + x, 0) / tr.segments.length;
      let seg = 0;
      let ev = 0;
      return {
        source: tr.source,
        params: {
          worldSize: tr.gpus,
          gpusPerNode: 8,
          intervalMs: 1000,
          durationMs: tr.runStopMs + 2000,
          stepNoise: 0.02,
          model: { ...model, stepSeconds: tr.globalBatch / nominal, batchPerRank: tr.globalBatch / tr.gpus },
          logEverySteps: 1,
        },
        effects: [
          {
            apply(s) {
              const ms = s.tS * 1000;
              if (ms < tr.runStartMs) {
                // init: weights, data, compilation; memory comes up, no steps.
                s.paused = true;
                s.pauseUtil = 0.05;
                s.memMul *= 0.1 + (0.9 * ms) / tr.runStartMs;
                return;
              }
              while (ev < tr.evals.length && ms >= tr.evals[ev]![1]) {
                s.evalResult = { loss: undefined, accuracy: tr.evals[ev]![2] };
                ev++;
              }
              if (ms >= tr.runStopMs) {
                s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'completed' });
                s.ended = true;
                return;
              }
              if (ev < tr.evals.length && ms >= tr.evals[ev]![0]) {
                s.paused = true;
                s.pauseUtil = 0.7;
                return;
              }
              while (seg < tr.segments.length - 1 && ms >= tr.segments[seg]![0]) seg++;
              s.stepTimeMul *= nominal / tr.segments[seg]![1];
              // H100 SXM at full load: the clock a little below boost.
              s.rankClockMul.fill(1.755e9 / SM_CLOCK_HZ);
            },
          },
        ],
        description: `replay of ${tr.source.split('/').slice(-4).join('/')} (MLLOG timings, throughput, eval accuracy; GPU series generated)`,
      };
    },
  };
}

export const TRACE_KINDS: readonly KindDef[] = [
  traceKind(
    'real_mlperf_bert',
    'real: MLPerf v3.1 BERT on 8 H100 (ASUSTeK): 31 s init, 17 blocks of ~19 s at the logged throughput, ~1 s evaluations, success',
    'asus_esc_n8_e11',
    MLPERF_BERT_ASUS,
    {
      name: 'bert-large-mlperf',
      framework: 'pytorch',
      stepSeconds: 0.1,
      batchPerRank: 96,
      seqLen: 512,
      lossStart: 4.2,
      lossEnd: 1.6,
      lossTau: 600,
      memFraction: 0.72,
      utilBase: 0.96,
    },
  ),
  traceKind(
    'real_mlperf_resnet',
    'real: MLPerf v3.1 ResNet-50 on 8 H100 (ASUSTeK): 45 s init, 35 epochs of ~22.7 s at the logged throughput, an evaluation every 4 epochs, success',
    'asus_esc_n8_e11',
    MLPERF_RESNET_ASUS,
    {
      name: 'resnet50-mlperf',
      framework: 'mxnet',
      stepSeconds: 0.057,
      batchPerRank: 400,
      seqLen: 0,
      lossStart: 6.9,
      lossEnd: 1.3,
      lossTau: 2000,
      memFraction: 0.6,
      utilBase: 0.97,
    },
  ),
];
