/**
 * Scenarios converted from real, public training logs. The logs give the job-level shape (start-up time,
 * throughput per block, evaluation pauses and results, the end); the per-rank GPU series are not in them and
 * are generated around that shape by generator.ts, as are the training loss and the step numbers.
 *
 * They are in the held-out split only: nobody tunes on them.
 */
import { SM_CLOCK_HZ } from './generator.js';
import type { KindDef } from './kind.js';

/**
 * MLPerf Training v3.1, BERT-large pre-training, closed division, ASUSTeK ESC-N8-E11 (1 node × 8 H100),
 * result_0.txt: the `:::MLLOG` events `init_start`, `run_start`, per block `tracked_stats` (throughput,
 * samples/s), `eval_start` / `eval_stop` / `eval_accuracy`, and `run_stop` (status success). Global batch 768.
 * Times are milliseconds since `init_start` (1695794973604); throughput and accuracy as logged.
 */
export const MLPERF_BERT_ASUS = {
  source:
    'https://github.com/mlcommons/training_results_v3.1/blob/f33f9444205023cf49bf19ec960992b39663f6fd/ASUSTeK/results/ESC-N8-E11/bert/result_0.txt',
  gpus: 8,
  globalBatch: 768,
  runStartMs: 31_229,
  /** [tracked_stats time, throughput samples/s, eval_start, eval_stop, eval_accuracy] per block. */
  blocks: [
    [50_236, 7936.63, 50_237, 52_470, 0.37602],
    [70_875, 7247.74, 70_875, 71_984, 0.40015],
    [89_972, 7835.77, 89_973, 91_074, 0.49469],
    [109_589, 7674.42, 109_589, 110_694, 0.64094],
    [128_677, 7815.02, 128_677, 129_780, 0.69909],
    [148_135, 7691.97, 148_136, 149_260, 0.70784],
    [167_481, 7795.27, 167_481, 168_603, 0.71071],
    [187_830, 7343.59, 187_831, 188_949, 0.71298],
    [207_066, 7810.34, 207_067, 208_191, 0.71413],
    [226_675, 7690.33, 226_676, 227_786, 0.71548],
    [245_759, 7841.58, 245_760, 246_877, 0.71633],
    [265_297, 7660.5, 265_298, 266_406, 0.71722],
    [284_466, 7837.9, 284_466, 285_573, 0.71835],
    [303_957, 7665.04, 303_958, 305_061, 0.71866],
    [323_056, 7833.73, 323_056, 324_169, 0.7194],
    [342_569, 7691.72, 342_570, 343_690, 0.71998],
    [361_760, 7841.73, 361_760, 362_874, 0.72021],
  ] as const,
  runStopMs: 362_875,
} as const;

const bertTrace: KindDef = {
  name: 'real_mlperf_bert',
  category: 'clean',
  summary:
    'real: MLPerf v3.1 BERT on 8 H100 (ASUSTeK): 31 s start-up, 17 blocks of ~19 s with the logged throughput, ~1 s evaluations, success',
  variants: [{ name: 'asus_esc_n8_e11', splits: ['heldout'] }],
  make() {
    const tr = MLPERF_BERT_ASUS;
    const perRank = tr.globalBatch / tr.gpus;
    const nominal = 7750;
    const stepSeconds = tr.globalBatch / nominal;
    const blocks = tr.blocks;
    let block = 0;
    let lastEval = -1;
    return {
      source: tr.source,
      params: {
        worldSize: tr.gpus,
        gpusPerNode: 8,
        intervalMs: 1000,
        durationMs: tr.runStopMs + 2000,
        stepNoise: 0.02,
        model: {
          name: 'bert-large-mlperf',
          framework: 'pytorch',
          stepSeconds,
          batchPerRank: perRank,
          seqLen: 512,
          lossStart: 4.2,
          lossEnd: 1.6,
          lossTau: 600,
          memFraction: 0.72,
          utilBase: 0.96,
        },
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
            if (ms >= tr.runStopMs) {
              s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'completed' });
              s.ended = true;
              return;
            }
            while (block < blocks.length - 1 && ms >= blocks[block]![3]) block++;
            const [, throughput, evalStart, evalStop, acc] = blocks[block]!;
            if (ms >= evalStart && ms < evalStop + 1000) {
              s.paused = true;
              s.pauseUtil = 0.7;
              if (lastEval !== block && ms >= evalStop) {
                lastEval = block;
                s.evalResult = { loss: undefined, accuracy: acc };
              }
              return;
            }
            s.stepTimeMul *= nominal / throughput;
            // H100 SXM at full load: the clock a little below boost.
            s.rankClockMul.fill(1.755e9 / SM_CLOCK_HZ);
          },
        },
      ],
      description: `replay of ${tr.source.split('/').slice(-4).join('/')} (MLLOG timings, throughput, eval accuracy; GPU series generated)`,
    };
  },
};

export const TRACE_KINDS: readonly KindDef[] = [bertTrace];
