/**
 * Remote-write throughput: samples/s through RemoteWriteQueue into a real VictoriaMetrics (Debian's
 * `victoria-metrics`, started on a free port with a temporary data directory and stopped at the end), and the
 * queue's own cost in samples per CPU-second of this process (process.cpuUsage: user + system; encoding,
 * snappy, HTTP). VictoriaMetrics runs on the same cores, so wall-clock throughput is the pair's.
 *
 * Shape: `--series` GPU-like series, `--ticks` batches of one sample per series (what a processor appends per
 * bus batch). Label sets are the same objects every tick, as the processor's decoder hands them over; with
 * `--fresh-labels` every tick builds new ones (the queue then interns by key, not by identity).
 *
 *   npx tsx bench/remote-write.ts                       # 20k series × 25 ticks = 500k samples
 *   npx tsx bench/remote-write.ts --series 100000 --ticks 20 --shards 4
 */
import { parseArgs } from 'node:util';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import type { LabelSet } from '../src/model/labels.js';
import { RemoteWriteQueue } from '../src/storage/remote/remote-write.js';
import {
  startVictoriaMetrics,
  VICTORIA_METRICS_INSTALL,
  victoriaMetricsAvailable,
} from '../test/support/victoria-metrics.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '20000' },
    ticks: { type: 'string', default: '25' },
    shards: { type: 'string', default: '4' },
    'max-samples-per-send': { type: 'string', default: '2000' },
    'fresh-labels': { type: 'boolean', default: false },
  },
});
const SERIES = Number(args.series);
const TICKS = Number(args.ticks);

if (!victoriaMetricsAvailable) {
  console.error(`victoria-metrics not found: ${VICTORIA_METRICS_INSTALL}`);
  process.exit(1);
}

function labelSets(): LabelSet[] {
  const out: LabelSet[] = [];
  for (let i = 0; i < SERIES; i++) {
    const gpu = i % 8;
    const node = Math.floor(i / 8) % 64;
    const job = Math.floor(i / 512);
    out.push({
      __name__: ['gpu_utilization_ratio', 'gpu_memory_used_bytes', 'gpu_power_watts'][i % 3]!,
      job_id: `job-${job}`,
      node_id: `node-${node}`,
      gpu: String(gpu),
      cluster: 'bench',
    });
  }
  return out;
}

const vm = await startVictoriaMetrics();
try {
  const queue = new RemoteWriteQueue({
    url: vm.writeUrl,
    shards: Number(args.shards),
    maxSamplesPerSend: Number(args['max-samples-per-send']),
    capacity: Number(args['max-samples-per-send']) * 5,
  });
  let labels = labelSets();
  const t0 = Math.floor(Date.now() / 1000) * 1000 - TICKS * 1000;
  // Batches built up front: the timed loop measures the queue, not the batch builder.
  const batches = [];
  for (let k = 0; k < TICKS; k++) {
    if (args['fresh-labels'] && k > 0) labels = labelSets();
    const b = new SeriesBatchBuilder(SERIES);
    for (let i = 0; i < SERIES; i++) b.addSeries(labels[i]!).add(t0 + k * 1000, Math.sin(i + k) * 100 + 0.25);
    batches.push(b.build());
  }
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  for (const b of batches) await queue.append('bench', b);
  await queue.flush();
  const wall = (performance.now() - wall0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const samples = SERIES * TICKS;
  const stats = queue.stats();
  await queue.close();
  if (stats.sent !== samples)
    throw new Error(`sent ${stats.sent} of ${samples} samples: ${JSON.stringify(stats)}`);
  console.log(
    JSON.stringify({
      series: SERIES,
      ticks: TICKS,
      samples,
      shards: Number(args.shards),
      freshLabels: args['fresh-labels'],
      wallSeconds: Number(wall.toFixed(3)),
      samplesPerSecond: Math.round(samples / wall),
      clientCpuSeconds: Number(cpuSeconds.toFixed(3)),
      samplesPerClientCpuSecond: Math.round(samples / cpuSeconds),
      retried: stats.retried,
    }),
  );
} finally {
  await vm.stop();
}
