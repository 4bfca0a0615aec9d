/**
 * A fleet of 100,000 jobs for the browser test and the render benchmark (issue 17): the jobs' metadata goes
 * straight into the data directory's metadata store (`insertJobsBulk`, about a second per 100,000 rows on an
 * idle machine) before trainwatch starts, and GPU utilization of the most recent jobs is sent to the running
 * server over the native protocol, as agents send it, so the heatmap has more jobs with data than rows fit.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { insertJobsBulk, JobStore, MetaStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobInfo, JobStatus } from '../../src/model/job.js';
import { NativeClient } from '../../src/protocol/native-client.js';

export const FLEET_PROJECTS = 12;
export const FLEET_OWNERS = 150;

/** Job `i` of a synthetic fleet: ids `fleet-0000000`…, newest first, of varied projects, owners and sizes. */
export function fleetJob(i: number, nowMs: number, tenant = 'default'): JobInfo {
  const statuses: JobStatus[] = ['completed', 'completed', 'failed', 'completed', 'running'];
  const recent = i < 1000;
  return {
    tenant,
    jobId: `fleet-${String(i).padStart(7, '0')}`,
    name: `${['llama', 'bert', 'vit', 'whisper', 'moe', 'gpt'][i % 6]}-${i % 1009}`,
    project: `proj-${i % FLEET_PROJECTS}`,
    owner: `user-${i % FLEET_OWNERS}`,
    framework: 'pytorch',
    worldSize: 8 * (1 + (i % 32)),
    config: { lr: 10 ** -(2 + (i % 4)), batch_size: 32 << (i % 4) },
    tags: [i % 2 ? 'nightly' : 'adhoc'],
    metricKeys: {},
    status: recent ? 'running' : statuses[i % statuses.length]!,
    startMs: nowMs - 3_600_000 - i * 600_000,
    endMs: recent ? null : nowMs - 1_800_000 - i * 600_000,
    lastSampleMs: recent ? nowMs - i * 100 : nowMs - 1_800_000 - i * 600_000,
  };
}

/** Writes `count` jobs into `<dataDir>/meta.db` (created and migrated as trainwatch would). */
export function seedFleet(dataDir: string, count: number, nowMs: number): number {
  mkdirSync(dataDir, { recursive: true });
  const meta = new MetaStore(path.join(dataDir, 'meta.db'));
  try {
    new JobStore(meta, 60_000); // applies the jobs migrations
    const jobs = function* () {
      for (let i = 0; i < count; i++) yield fleetJob(i, nowMs);
    };
    return insertJobsBulk(meta.db, jobs());
  } finally {
    meta.close();
  }
}

/**
 * Sends `minutes` of GPU utilization at 10 s for the `jobs` most recent jobs (one GPU each) up to `nowMs`.
 * Job `i` runs at a utilization that depends on its project, so the grouped heatmap rows differ.
 */
export async function sendFleetUtilization(
  url: string,
  jobs: number,
  nowMs: number,
  minutes = 10,
): Promise<void> {
  const client = new NativeClient({ url, sourceId: `large-fleet-${nowMs}` });
  const perSeries = Math.floor((minutes * 60_000) / 10_000) + 1;
  // Twenty jobs per request, as twenty agents would send them.
  for (let from = 0; from < jobs; from += 20) {
    const to = Math.min(jobs, from + 20);
    const b = new SeriesBatchBuilder((to - from) * perSeries);
    for (let i = from; i < to; i++) {
      const j = fleetJob(i, nowMs);
      b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: j.jobId, node_id: `node-${i}`, gpu: '0' });
      const level = 0.2 + 0.06 * (i % FLEET_PROJECTS);
      // Up to the job's own newest sample, so the fleet's activity order stays the jobs' order.
      const end = j.lastSampleMs ?? nowMs;
      for (let k = perSeries - 1; k >= 0; k--) b.add(end - k * 10_000, level);
    }
    const outcome = await client.send(b.build());
    if (!outcome.ok) throw new Error(`the utilization samples were refused: ${JSON.stringify(outcome)}`);
  }
}
