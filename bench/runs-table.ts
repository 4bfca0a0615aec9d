/**
 * The runs table at scale: one tenant with N runs (default 100,000), each with a config of 8 keys and summaries,
 * in the embedded (SQLite) job store; then the runs queries the dashboard makes, each timed (median of 5 runs:
 * wall milliseconds, and the process's CPU milliseconds, which a machine shared with other work distorts less) —
 * a page needs no TSDB read, so this is the whole cost of a page.
 *
 *   npx tsx bench/runs-table.ts                 # 100,000 runs
 *   npx tsx bench/runs-table.ts --runs 20000
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { JobStore, MetaStore, type RunQuery, SUMMARY_GAUGES } from '../src/meta/index.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '100000' } } });
const N = Number(args.runs);
const TENANT = 'bench';
const LOSS = SUMMARY_GAUGES.findIndex((g) => g.key === 'loss');
const STEP = SUMMARY_GAUGES.findIndex((g) => g.key === 'step');
const THROUGHPUT = SUMMARY_GAUGES.findIndex((g) => g.key === 'samples_per_second');

const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-runs-bench-'));
const meta = new MetaStore(path.join(dir, 'meta.db'));
const jobs = new JobStore(meta, 10 * 60_000);
const now = Date.now();
const models = ['llama-7b', 'gpt-1b3', 'resnet50', 'vit-l16', 'whisper', 'unet', 'moe-8x1b', 'bert-large'];

const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const id = `run-${i.toString(36).padStart(5, '0')}`;
  const start = now - (N - i) * 1000;
  jobs.applyEvent(TENANT, {
    kind: 'start',
    jobId: id,
    timeMs: start,
    name: models[i % models.length]!,
    owner: `user${i % 50}`,
    worldSize: 8 * (1 + (i % 4)),
    config: {
      model: models[i % models.length],
      learning_rate: 10 ** (-5 + (i % 7) * 0.5),
      batch_size: 2 ** (4 + (i % 5)),
      optimizer: i % 3 === 0 ? 'adam' : 'adamw',
      warmup_steps: 100 * (i % 10),
      seed: i,
      precision: 'bf16',
      dropout: (i % 5) / 10,
    },
  });
  jobs.noteSamples(TENANT, id, start, start + 600_000);
  jobs.noteGauge(
    TENANT,
    id,
    LOSS,
    start + 600_000,
    1 + ((i * 7919) % 1000) / 300,
    1 + ((i * 7919) % 1000) / 400,
  );
  jobs.noteGauge(TENANT, id, STEP, start + 600_000, 1000 + (i % 5000), 1000 + (i % 5000));
  jobs.noteGauge(TENANT, id, THROUGHPUT, start + 600_000, 100 + (i % 300), 120 + (i % 300));
  if (i % 10_000 === 9_999) await jobs.flush();
}
await jobs.flush();
const fillMs = performance.now() - t0;

const queries: [string, RunQuery][] = [
  ['default page (most recent first)', { limit: 100, offset: 0 }],
  ['sort by loss', { limit: 100, offset: 0, sort: { column: 'loss', desc: false } }],
  [
    'sort by config.learning_rate desc',
    { limit: 100, offset: 0, sort: { column: 'config.learning_rate', desc: true } },
  ],
  [
    'filter config.optimizer=adam and loss<2, sort by gpu_hours',
    {
      limit: 100,
      offset: 0,
      filters: [
        { column: 'config.optimizer', op: '=', value: 'adam' },
        { column: 'loss', op: '<', value: '2' },
      ],
      sort: { column: 'gpu_hours', desc: true },
    },
  ],
  ['group by config.model', { limit: 100, offset: 0, groupBy: 'config.model' }],
  ['page 500 (offset 50,000) by loss', { limit: 100, offset: 50_000, sort: { column: 'loss', desc: false } }],
];

console.log(`runs table, SQLite, ${N} runs (filled in ${(fillMs / 1000).toFixed(1)} s)`);
for (const [what, q] of queries) {
  const times: number[] = [];
  const cpus: number[] = [];
  let total = 0;
  for (let k = 0; k < 5; k++) {
    const t = performance.now();
    const c = process.cpuUsage();
    const page = await jobs.runs(TENANT, Date.now(), q);
    const used = process.cpuUsage(c);
    times.push(performance.now() - t);
    cpus.push((used.user + used.system) / 1000);
    total = page.total;
  }
  times.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  console.log(
    `  ${what}: ${times[2]!.toFixed(0)} ms wall, ${cpus[2]!.toFixed(0)} ms CPU (median of 5; ${total} matching)`,
  );
}
meta.close();
rmSync(dir, { recursive: true, force: true });
