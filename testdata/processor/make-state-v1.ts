/**
 * Writes testdata/processor/state-v1.json: a detector state file (format version 1, JSON) as the build
 * before the typed-array detector engine wrote it, for the test that today's engine restores such files.
 * It was produced with commit 2538ebf's sources:
 *
 *   git archive 2538ebf src | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/node_modules
 *   cp testdata/processor/make-state-v1.ts /tmp/old/ && npx tsx /tmp/old/make-state-v1.ts testdata/processor/state-v1.json
 *
 * The fleet simulator (seed 7, 4 jobs with their injected incidents) runs 9 simulated minutes through the
 * engine with derived series, one record per node per tick; the state is written then, with alerts open.
 */
import { writeFileSync } from 'node:fs';
import { SeriesBatchBuilder } from './src/model/batch.js';
import { DetectorSettings } from './src/processor/detectors/config.js';
import { DetectorEngine } from './src/processor/detectors/engine.js';
import { defaultFleetOptions, FleetSimulator } from './src/simulator/index.js';

const START_MS = Date.UTC(2025, 0, 1);
const fleet = new FleetSimulator({ ...defaultFleetOptions, seed: 7, jobs: 4, startMs: START_MS });
const engine = new DetectorEngine(DetectorSettings.defaults(), { transition() {} }, { derived: true });
while (fleet.nowMs < START_MS + 9 * 60_000) {
  fleet.tick();
  engine.tick(fleet.nowMs, true);
  for (const node of fleet.activeNodes()) {
    const b = new SeriesBatchBuilder(node.series.length);
    for (let s = 0; s < node.series.length; s++) {
      if (!node.present[s]) continue;
      b.addSeries(node.series[s]!);
      b.add(fleet.nowMs, node.values[s]!);
    }
    const batch = b.build();
    if (batch.sampleCount > 0) engine.observe('default', batch);
    if (node.events.length > 0) engine.observeEvents('default', node.events);
    node.events = [];
    engine.takeDerived();
  }
}
const state = { version: 1, savedAtMs: fleet.nowMs, positions: [[0, 1234]], engine: engine.snapshot() };
writeFileSync(process.argv[2]!, JSON.stringify(state));
