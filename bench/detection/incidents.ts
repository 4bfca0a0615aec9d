/**
 * Incident kinds: each starts at a drawn onset (after the job's first minutes, so that detectors have learned
 * its normal behaviour) and declares its ground truth: the alerts that count as catching it, the alerts that
 * are genuine symptoms, the place to name, and the minimum delay the signal allows.
 *
 * Minimum delays, the common cases (seconds; `interval` = sampling interval, `trainPeriod` = how often the
 * training metrics arrive = max(interval, step time × log-every-N), `pause` = the longest legitimate pause
 * the run's background shows, `silence` = its longest legitimate silence):
 * - a value that is wrong at once (NaN, an ECC error, a throttle flag, a loss that jumps): one sample of it;
 * - a frozen step: it must outlast the longest legitimate pause (pause + interval), and at least 3 training
 *   periods; with the 0%-vs-100% signature of a partial hang, 3 samples suffice (no pause looks like that);
 * - a slow rank: enough samples for its mean to stand out of the step-time noise, n = (3 × cv / slowdown)²,
 *   at least 3 samples;
 * - a trend (drift, leak, gradual slowdown): the time until the change exceeds three noise standard deviations
 *   (or 1% of the GPU's memory for a leak), at least 5 samples;
 * - absent series: they must outlast the longest legitimate silence (silence + interval), at least 3 intervals.
 */

import {
  allIdle,
  degradation,
  ecc,
  fastLeak,
  idleGpu,
  powerCap,
  slowLeak,
  thermal,
} from './incidents-gpu.js';
import { network, nodeLost, silent, slowNode, starvation } from './incidents-node.js';
import { driftNan, hang, intermittent, jump, nan, partialHang, straggler } from './incidents-training.js';
import type { KindDef, Made } from './kind.js';

export const INCIDENT_KINDS: readonly KindDef[] = [
  nan,
  driftNan,
  jump,
  hang,
  partialHang,
  straggler,
  intermittent,
  powerCap,
  thermal,
  fastLeak,
  slowLeak,
  degradation,
  idleGpu,
  allIdle,
  nodeLost,
  starvation,
  ecc,
  network,
  slowNode,
  silent,
];

export type { Made };
