/**
 * The detector benchmark in its fast mode: on the fleet simulator's injected incidents (20 simulated minutes,
 * 10 jobs: every incident type plus clean jobs), every incident is caught by an alert of the expected kind, at
 * the right node when the incident is located, and nothing fires on clean jobs. The full run (≥ 1 simulated
 * hour, latency) is `npx tsx bench/detectors.ts`, written to bench/results/detectors.md.
 */
import { describe, expect, it } from 'vitest';
import { INCIDENT_TYPES } from '../src/simulator/index.js';
import { tempDir } from '../test/support/helpers.js';
import { measureAlertLatency, renderMarkdown, scoreDetectors } from './detectors.js';

describe('detectors on the simulator (fast mode)', () => {
  it('catch every injected incident with no false alarm on clean jobs', () => {
    const score = scoreDetectors({ jobs: 10, simulatedMs: 20 * 60_000, seed: 1 });
    const report = renderMarkdown(score, undefined, 'bench/detectors.test.ts');
    expect(score.incidents.map((i) => i.incident.type).sort(), report).toEqual([...INCIDENT_TYPES].sort());
    for (const i of score.incidents) expect(i.detectedBy, `${i.incident.type}\n${report}`).toBeDefined();
    expect(score.cleanJobs).toBeGreaterThanOrEqual(3);
    expect(score.falseAlarms, report).toEqual([]);
  }, 120_000);

  it('measures alert latency through a running server (sample POSTed → webhook received)', async () => {
    const latency = await measureAlertLatency(3, tempDir('tw-latency-'));
    expect(latency.n).toBe(3);
    expect(latency.maxMs).toBeGreaterThan(0);
  }, 60_000);
});
