/**
 * What recording and alerting rules cost the event loop that acknowledges writes: the main thread's busy time
 * (`performance.eventLoopUtilization`, the share of wall time the loop was not idle) while a fleet ingests one
 * sample per series per second, with the rules and without them, and the acknowledgement latency of those
 * writes. The whole server runs in this process (`startTrainwatch`), as `trainwatch start` does.
 *
 * Rules: the community-style files of `testdata/rules/` and the benchmark's `train_loss != train_loss`, every
 * group evaluated each second (`--interval`), so that a short run sees many evaluations.
 *
 *   npx tsx bench/rules-main-thread.ts                       # 16 jobs × 64 GPUs (≈ 6K series), 15 s per phase
 *   npx tsx bench/rules-main-thread.ts --jobs 64 --seconds 30
 *
 * Compare two builds back to back on the same machine; the difference "with rules − without" is the rules'
 * share of the main thread.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { startTrainwatch } from '../src/server/index.js';
import { tempDir } from '../test/support/helpers.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '15' },
    interval: { type: 'string', default: '1s' },
  },
});
const JOBS = Number(args.jobs);
const SECONDS = Number(args.seconds);
const REPO = path.resolve(import.meta.dirname, '..');

/** The testdata rule files with every group's interval set to `--interval`, plus the benchmark's NaN rule. */
function ruleFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of ['gpu', 'node', 'training']) {
    const text = readFileSync(path.join(REPO, 'testdata', 'rules', `${name}.rules.yml`), 'utf8');
    const file = path.join(dir, `${name}.rules.yml`);
    writeFileSync(file, text.replace(/^(\s+)interval: .*$/gm, `$1interval: ${args.interval}`));
    files.push(file);
  }
  const nan = path.join(dir, 'bench.rules.yml');
  writeFileSync(
    nan,
    `groups:\n  - name: bench\n    interval: ${args.interval}\n    rules:\n      - alert: TrainingLossIsNaN\n        expr: train_loss != train_loss\n`,
  );
  files.push(nan);
  return files;
}

/** One tick of the fleet: per GPU 6 series, per rank 4, one native frame per job (as the agent sends). */
function frames(encoder: NativeEncoder, tick: number, t: number): Buffer[] {
  const out: Buffer[] = [];
  for (let j = 0; j < JOBS; j++) {
    const job_id = `job-${j}`;
    const b = new SeriesBatchBuilder();
    for (let n = 0; n < 8; n++) {
      const node_id = `node-${j}-${n}`;
      for (let g = 0; g < 8; g++) {
        const gpu = String(g);
        const rank = String(n * 8 + g);
        const l = { job_id, node_id, gpu };
        b.addSeries({ __name__: 'gpu_utilization_ratio', ...l }).add(t, 0.5 + ((tick + g) % 10) / 20);
        b.addSeries({ __name__: 'gpu_temperature_celsius', ...l }).add(t, 60 + ((tick * 7 + g) % 20));
        b.addSeries({ __name__: 'gpu_memory_used_bytes', ...l }).add(t, 30e9 + g * 1e8);
        b.addSeries({ __name__: 'gpu_memory_total_bytes', ...l }).add(t, 80e9);
        b.addSeries({ __name__: 'gpu_power_watts', ...l }).add(t, 300 + g);
        b.addSeries({ __name__: 'gpu_ecc_errors_total', ...l }).add(t, 0);
        const r = { job_id, node_id, rank };
        b.addSeries({ __name__: 'train_loss', ...r }).add(t, 2 - tick * 0.001);
        b.addSeries({ __name__: 'train_step', ...r }).add(t, tick);
        b.addSeries({ __name__: 'train_step_duration_seconds', ...r }).add(t, 0.5 + g * 0.01);
        b.addSeries({ __name__: 'train_samples_per_second', ...r }).add(t, 100);
      }
    }
    out.push(
      Buffer.from(encoder.encodeFrame({ sourceId: job_id, sequence: tick, batch: b.build(), events: [] })),
    );
  }
  return out;
}

interface Phase {
  readonly rules: boolean;
  readonly eluPercent: number;
  readonly ackP50: number;
  readonly ackP99: number;
  readonly ackMax: number;
}

async function phase(rules: boolean): Promise<Phase> {
  const dir = tempDir('tw-bench-rules-');
  const tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: path.join(dir, 'data'),
        log: { level: 'warn' },
        auth: { anonymous_scopes: ['ingest', 'read'] },
        ...(rules ? { alerting: { rule_files: ruleFiles(dir) } } : {}),
      },
    }),
    pino({ level: 'warn' }),
  );
  const encoder = new NativeEncoder();
  const acks: number[] = [];
  const start = Date.now() - 15 * 60_000;
  try {
    // 15 minutes of history (one sample per minute) so that the rules' windows (5m, 10m) have data, then
    // warm-up seconds, then the measured seconds of real-time ingest.
    const post = async (body: Buffer) => {
      const t0 = performance.now();
      const res = await tw.app.inject({
        method: 'POST',
        url: '/api/v1/ingest',
        headers: { 'content-type': NATIVE_CONTENT_TYPE },
        payload: body,
      });
      acks.push(performance.now() - t0);
      if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}: ${res.body}`);
    };
    for (let m = 0; m < 15; m++) for (const f of frames(encoder, m, start + m * 60_000)) await post(f);
    let tick = 100;
    const runFor = async (seconds: number) => {
      for (let s = 0; s < seconds; s++) {
        const due = performance.now() + 1000;
        await Promise.all(frames(encoder, tick, Date.now()).map(post));
        tick++;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    };
    await runFor(5);
    acks.length = 0;
    const before = performance.eventLoopUtilization();
    await runFor(SECONDS);
    const elu = performance.eventLoopUtilization(before);
    const sorted = [...acks].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
    return { rules, eluPercent: elu.utilization * 100, ackP50: q(0.5), ackP99: q(0.99), ackMax: q(1) };
  } finally {
    await tw.stop();
  }
}

const series = JOBS * 64 * 10;
console.log(
  `${JOBS} jobs, ${series} series, ${SECONDS} s per phase, rule groups every ${args.interval}; Node ${process.version}`,
);
for (const rules of [false, true]) {
  const p = await phase(rules);
  console.log(
    `${rules ? 'with rules   ' : 'without rules'}: main thread busy ${p.eluPercent.toFixed(1)}% of wall time; ingest ack p50 ${p.ackP50.toFixed(1)} ms, p99 ${p.ackP99.toFixed(1)} ms, max ${p.ackMax.toFixed(1)} ms`,
  );
}
