/**
 * The `detectors` scenario of `npm run bench`: detection quality, in-process, no servers.
 *
 * 1. The scenario library (bench/detection): every clean behaviour and incident kind, train and held-out
 *    splits, through the real detector engine; per kind precision, recall, false alarms per job-hour, delays
 *    (and ÷ the minimum the signal allows), culprit named.
 * 2. The fleet simulator's injected incidents (bench/detectors.ts), which the demo must keep catching with no
 *    false alarm.
 *
 * Both go to bench/results/<date>-detection.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DETECTION_SIZES,
  type DetectionReport,
  renderDetectionMarkdown,
  scoreLibrary,
} from '../detection/score.js';
import { renderMarkdown, type ScoreReport, scoreDetectors } from '../detectors.js';

export interface DetectorsScenarioOptions {
  readonly quick: boolean;
  readonly outDir: string;
  readonly command: string;
  readonly log: (msg: string) => void;
}

export interface DetectorsScenarioResult {
  readonly file: string;
  readonly library: DetectionReport;
  readonly simulator: ScoreReport;
}

export function runDetectorsScenario(opts: DetectorsScenarioOptions): DetectorsScenarioResult {
  const sizes = opts.quick ? DETECTION_SIZES.quick : DETECTION_SIZES.full;
  const load = os.loadavg()[0]!;
  opts.log(`detectors: the fleet simulator's injected incidents …`);
  const simulator = scoreDetectors(
    opts.quick
      ? { jobs: 10, simulatedMs: 20 * 60_000, seed: 1 }
      : { jobs: 16, simulatedMs: 70 * 60_000, seed: 1 },
  );
  const caught = simulator.incidents.filter((i) => i.detectedBy).length;
  opts.log(
    `detectors: simulator: ${caught} of ${simulator.incidents.length} incidents caught, ${simulator.falseAlarms.length} false alarms`,
  );
  opts.log(`detectors: the scenario library (${sizes.perKind} per kind and split) …`);
  let lastLog = 0;
  const library = scoreLibrary(sizes, undefined, (done, total) => {
    const now = performance.now();
    if (now - lastLog > 15_000 || done === total) {
      lastLog = now;
      opts.log(`detectors: ${done}/${total} scenario runs`);
    }
  });
  for (const t of library.totals)
    opts.log(
      `detectors: ${t.split}: recall ${(t.recall * 100).toFixed(0)}%, culprit ${(t.culprit * 100).toFixed(0)}%, ${t.cleanFalseAlarms} false alarms in ${t.cleanJobHours.toFixed(1)} clean job-hours`,
    );
  const md = [
    renderDetectionMarkdown(library, opts.command),
    // The simulator's report, its headings one level down.
    renderMarkdown(simulator, undefined, `${opts.command} (bench/detectors.ts, no latency)`).replace(
      /^#/gm,
      '##',
    ),
    `Load average when this started: ${load.toFixed(1)} on ${os.availableParallelism()} cores${load > 1.5 ? ": the samples/s above is not the engine's throughput on an idle core (`npx tsx bench/detectors.ts` on an idle machine measures that)" : ''}.`,
    '',
  ].join('\n');
  const file = path.join(
    opts.outDir,
    `${new Date().toISOString().slice(0, 10)}-detection${opts.quick ? '-quick' : ''}.md`,
  );
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(file, md);
  return { file, library, simulator };
}
