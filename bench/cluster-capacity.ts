/**
 * The capacity model's measurements (docs/scaling.md): samples per CPU-second of a collector and of a
 * processor when trainwatch runs scaled out on Kafka, PostgreSQL and VictoriaMetrics, each role a separate
 * process on this machine.
 *
 *   npx tsx bench/cluster-capacity.ts [--jobs 40] [--minutes 10] [--concurrency 16] [--out bench/results]
 *
 * The fleet simulator's history is encoded up front (native frames, one per node and 30 s), then sent as
 * fast as one collector takes it. CPU time is read from /proc for every process (trainwatch roles, the Kafka
 * broker, VictoriaMetrics), so the figures are CPU-seconds, not wall time on a shared machine: a role's
 * samples per CPU-second is what one core of it does, and what the process counts of the model are built on.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { SeriesBatchBuilder } from '../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { defaultFleetOptions, FleetSimulator, NodeBatcher } from '../src/simulator/index.js';
import { type ClusterProcess, TestCluster } from '../test/support/cluster.js';
import { waitFor } from '../test/support/helpers.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '40' },
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    partitions: { type: 'string', default: '8' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
  },
});
const JOBS = Number(values.jobs);
const MINUTES = Number(values.minutes);
const CONCURRENCY = Number(values.concurrency);

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function metricSum(cluster: TestCluster, p: ClusterProcess, name: string): Promise<number> {
  let sum = 0;
  for (const v of (await cluster.metric(p, name)).values()) sum += v;
  return sum;
}

const cluster = await TestCluster.start({ partitions: Number(values.partitions) });
try {
  const processor = await cluster.add('processor');
  const collector = await cluster.add('collector');

  // The data: every node's history as native frames, encoded before anything is timed.
  const endMs = Date.now();
  const fleet = new FleetSimulator({
    ...defaultFleetOptions,
    jobs: JOBS,
    incidents: false,
    startMs: endMs - MINUTES * 60_000,
  });
  const batchers = new Map<string, NodeBatcher>();
  const encoder = new NativeEncoder();
  const frames: Uint8Array[] = [];
  const sequences = new Map<string, number>();
  let samples = 0;
  const encode = (nodeId: string, batch: ReturnType<SeriesBatchBuilder['build']>, events = []) => {
    const sequence = sequences.get(nodeId) ?? 0;
    sequences.set(nodeId, sequence + 1);
    samples += batch.sampleCount;
    frames.push(encoder.encodeFrame({ sourceId: `capacity-${nodeId}`, sequence, batch, events }).slice());
  };
  const flush = (onlyFull: boolean) => {
    for (const [nodeId, b] of batchers) {
      if (!b.hasData() || (onlyFull && !b.full)) continue;
      const { batch, events } = b.take();
      encode(nodeId, batch, events as never);
    }
  };
  while (fleet.nowMs + fleet.opts.intervalMs <= endMs) {
    fleet.tick();
    for (const node of fleet.activeNodes()) {
      let b = batchers.get(node.nodeId);
      if (!b) {
        b = new NodeBatcher(node, 30);
        batchers.set(node.nodeId, b);
      }
      b.capture(fleet.nowMs);
    }
    flush(true);
  }
  flush(false);
  const series = [...batchers.values()].reduce((n, b) => n + b.node.series.length, 0);
  const frameBytes = frames.reduce((n, f) => n + f.length, 0);
  console.log(`${frames.length} requests, ${samples} samples of ${series} series, ${frameBytes} bytes`);

  const pids = {
    collector: collector.child.proc.pid!,
    processor: processor.child.proc.pid!,
    kafka: cluster.kafka.pid,
    victoriametrics: cluster.vm.pid,
  };
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const processedBefore = await metricSum(cluster, processor, 'trainwatch_processor_samples_total');
  const started = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < frames.length) {
      const frame = frames[next++]!;
      for (;;) {
        const res = await fetch(`${collector.url}/api/v1/ingest`, {
          method: 'POST',
          headers: { 'content-type': NATIVE_CONTENT_TYPE },
          body: Buffer.from(frame),
        });
        await res.arrayBuffer();
        if (res.ok) break;
        failed++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const ingestWall = (performance.now() - started) / 1000;
  const collectorCpu = cpuSeconds(pids.collector) - before.collector!;
  // The processor has caught up once it appended every sample (derived series come on top).
  await waitFor(
    'the processor caught up',
    async () => {
      const done =
        (await metricSum(cluster, processor, 'trainwatch_processor_samples_total')) - processedBefore;
      const lag = await metricSum(cluster, processor, 'trainwatch_processor_lag_records');
      return done >= samples && lag === 0 ? true : undefined;
    },
    600_000,
    200,
  );
  const processWall = (performance.now() - started) / 1000;
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) - before[k as keyof typeof before]!]),
  );
  const rows = [
    ['collector (HTTP, decode, validate, Kafka produce)', collectorCpu, samples / collectorCpu],
    ['processor (Kafka fetch, decode, detectors, remote-write)', cpu.processor!, samples / cpu.processor!],
    ['Kafka broker', cpu.kafka!, samples / cpu.kafka!],
    ['VictoriaMetrics (ingest of the remote-write)', cpu.victoriametrics!, samples / cpu.victoriametrics!],
  ] as const;
  const table = [
    '| process | CPU seconds | samples per CPU-second |',
    '|---|---:|---:|',
    ...rows.map(
      ([name, s, rate]) => `| ${name} | ${s.toFixed(1)} | ${Math.round(rate).toLocaleString('en')} |`,
    ),
  ].join('\n');
  const report = [
    `# Cluster capacity: samples per CPU-second per role (${new Date().toISOString()})`,
    '',
    `Command: \`npx tsx bench/cluster-capacity.ts --jobs ${JOBS} --minutes ${MINUTES} --concurrency ${CONCURRENCY} --partitions ${values.partitions}\``,
    '',
    `${samples.toLocaleString('en')} samples of ${series.toLocaleString('en')} series (${JOBS} jobs × ${defaultFleetOptions.nodesPerJob} nodes × ${defaultFleetOptions.gpusPerNode} GPUs, ${MINUTES} min at 1 s) in ${frames.length} native requests of 30 s per node, sent with ${CONCURRENCY} in flight to one collector; one processor; Kafka 4.1 (one broker), VictoriaMetrics 1.79 and PostgreSQL 15 on the same 2-core machine. ${failed} requests were answered 503/429 and sent again. Kafka carries the native frames as sent: ${(frameBytes / samples).toFixed(2)} bytes per sample (zlib).`,
    '',
    table,
    '',
    `Wall time: ingest ${ingestWall.toFixed(1)} s (${Math.round(samples / ingestWall).toLocaleString('en')} samples/s accepted), processed ${processWall.toFixed(1)} s. Load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}.`,
    '',
  ].join('\n');
  console.log(report);
  const file = path.join(
    values.out!,
    `${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z-cluster-capacity.md`,
  );
  writeFileSync(file, report);
  console.log(`written to ${file}`);
} finally {
  await cluster.stop();
}
