/**
 * Where the CPU of `trainwatch start` goes under the benchmark's remote-write ingest, per component, in
 * microseconds per accepted sample.
 *
 * Builds the quick benchmark's data set (bench/harness/dataset.ts: the simulator's fleet, remote-write 1.0),
 * starts the built server (`node --cpu-prof bin/trainwatch.js start`, configured as `npm run bench` configures
 * it: anonymous ingest, limits out of the way, the benchmark's rule file evaluated every second, a webhook
 * receiver), replays the data set as fast as the server accepts it, waits until everything is queryable, stops
 * the server gracefully (which writes the V8 CPU profile) and attributes the profile's samples to components.
 *
 * Attribution: each profile sample is charged to the innermost frame of the stack that belongs to a
 * component (a file of trainwatch's build, or a known library); frames of shared helpers (`model/`,
 * `protocol/bytes`), of Node's core and native code are transparent, so e.g. SQLite's C++ time is charged to
 * the trainwatch module that called it. Only samples between the first request and the end of the drain
 * count (start-up and the final checkpoint are left out); `(idle)` is reported apart.
 *
 *   npm run build:server && npx tsx bench/ingest-profile.ts                 # 40K series × 30 ticks
 *   npx tsx bench/ingest-profile.ts --series 200000 --ticks 10 --keep        # keep the .cpuprofile
 *   npx tsx bench/ingest-profile.ts --ingest-workers 0                       # collector on the main thread
 *
 * The profiler itself costs some CPU (about 5–10%): compare runs of this script with each other, and take
 * throughput figures from `npm run bench`.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { fleetForSeries } from './harness/dataset.js';
import { GeneratorProcess, REPO_ROOT } from './harness/generator.js';
import { CpuMeter, freePort, procSample, startProcess, waitHttpOk } from './harness/proc.js';
import { PromApi } from './harness/prom-api.js';
import { fitTrainwatchConfig, trainwatchBaseConfig } from './harness/systems.js';
import { WebhookReceiver } from './harness/webhook.js';
import { writeRulesFile } from './scenarios/alert.js';
import { waitDrained } from './scenarios/ingest.js';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '40000' },
    ticks: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '8' },
    /** Without the profiler: only throughput, CPU and memory (the figures `npm run bench` reports). */
    'no-profile': { type: 'boolean', default: false },
    /** Extra flags for the server's node (e.g. --max-semi-space-size=4), space-separated. */
    'node-args': { type: 'string', default: '' },
    /** `ingest.workers` of the server (default: the server's default); 0 decodes on the main thread. */
    'ingest-workers': { type: 'string' },
    /** `processor.workers` of the server (default: the server's default). */
    'processor-workers': { type: 'string' },
    /** Without the alerting section (rule file, webhook): isolates the cost of rule evaluation. */
    'no-alerting': { type: 'boolean', default: false },
    /** Print the N functions with the most self time. */
    top: { type: 'string', default: '40' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    /** Only attribute an existing .cpuprofile (with --samples, the samples accepted during its run). */
    analyze: { type: 'string' },
    samples: { type: 'string' },
  },
});

// ---------------------------------------------------------------------------------------------------------
// Components

/** Component of a frame, by the file it is in (trainwatch's build or a dependency); undefined: transparent. */
export function componentOf(url: string, functionName: string): string | undefined {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8 (program: compile, IC, runtime)';
    return undefined; // native code: charged to its caller
  }
  const dist = url.includes('/node_modules/') ? null : url.match(/\/dist\/(.+)\.js$/);
  if (dist) {
    const f = dist[1]!;
    if (f.startsWith('model/') || f === 'protocol/bytes') return undefined;
    if (/^collector\/(snappy|protobuf|remote-write-decode|otlp-decode)$/.test(f))
      return 'collector: decode (snappy, protobuf)';
    if (/^collector\/(series-registry|series-key|validate)$/.test(f))
      return 'collector: series registry (lookup, cardinality)';
    if (f === 'collector/ref-batch') return 'collector: encode bus payloads';
    if (f.startsWith('collector/')) return 'collector: request handling, limits';
    if (f.startsWith('bus/')) return 'bus (append, group commit, read)';
    if (f === 'protocol/native') return 'processor: decode bus payload';
    if (f === 'processor/derived') return 'processor: derived series';
    if (f.startsWith('processor/detectors/')) return 'processor: detectors';
    if (f.startsWith('processor/')) return 'processor: loop, job notes, checkpoint';
    if (f === 'alerting/store') return 'alerting: store (SQLite)';
    if (f.startsWith('alerting/rules/') || f.startsWith('query/')) return 'rules + queries (PromQL)';
    if (f.startsWith('alerting/')) return 'alerting: tracker, hub, dispatch';
    if (f.startsWith('storage/')) return 'storage';
    if (f.startsWith('meta/')) return 'metadata (jobs, SQLite)';
    if (f.startsWith('server/') || f.startsWith('auth/')) return 'server, auth';
    return `other trainwatch (${f.split('/')[0]})`;
  }
  const mod = url.match(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (mod) {
    const m = mod[1]!;
    if (m === 'better-sqlite3') return undefined;
    if (/fastify|find-my-way|avvio|light-my-request|secure-json-parse|fast-json-stringify/.test(m))
      return 'HTTP (fastify)';
    if (/pino|sonic-boom/.test(m)) return 'logging';
    if (m === 'prom-client') return 'self-metrics (prom-client)';
    return `library ${m}`;
  }
  if (url.startsWith('node:')) return undefined;
  return undefined;
}

/** Where Node's own frames (HTTP parser, streams, timers) are charged when no component is on the stack. */
function fallbackOf(url: string): string {
  if (/_http_|node:http|node:net|stream/.test(url)) return 'Node core: HTTP, sockets, streams';
  if (url.startsWith('node:')) return 'Node core: other';
  return 'unattributed';
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Breakdown {
  /** Component → microseconds of CPU in the window. */
  readonly byComponent: Map<string, number>;
  /** `function (file:line) [component]` → self microseconds. */
  readonly byFunction: Map<string, number>;
  readonly windowUs: number;
  readonly busyUs: number;
}

export function attribute(profile: CpuProfile): Breakdown {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const ownerOf = new Map<number, string>();
  const owner = (id: number): string => {
    const cached = ownerOf.get(id);
    if (cached !== undefined) return cached;
    let cur: number | undefined = id;
    let found: string | undefined;
    while (cur !== undefined && found === undefined) {
      const f = byId.get(cur)!.callFrame;
      found = componentOf(f.url, f.functionName);
      cur = parent.get(cur);
    }
    const leaf = byId.get(id)!.callFrame;
    const result = found ?? fallbackOf(leaf.url);
    ownerOf.set(id, result);
    return result;
  };
  // The window: from the first sample in a request handler or the processor to the last one in either (with
  // processor workers, each thread's profile holds one of them: the main thread the collector, a worker the
  // processor).
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) {
    t += d;
    times.push(t);
  }
  const onStack = (id: number, re: RegExp): boolean => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur))
      if (re.test(byId.get(cur)!.callFrame.url)) return true;
    return false;
  };
  let first = -1;
  let last = -1;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const inIngest = onStack(id, /dist\/(collector\/|processor\/processor\.js$)/);
    if (first < 0 && inIngest) first = i;
    if (inIngest) last = i;
  }
  const byComponent = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  if (first < 0 || last < first) return { byComponent, byFunction, windowUs: 0, busyUs: 0 };
  for (let i = first; i <= last; i++) {
    const id = profile.samples[i]!;
    const dt = (times[i + 1] ?? times[i]!) - times[i]!;
    const c = owner(id);
    byComponent.set(c, (byComponent.get(c) ?? 0) + dt);
    if (c !== 'idle') busy += dt;
    const f = byId.get(id)!.callFrame;
    const key = `${f.functionName || '(anonymous)'} (${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}) [${c}]`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
  }
  return { byComponent, byFunction, windowUs: times[last]! - times[first]!, busyUs: busy };
}

/** What a worker thread does, from where its CPU went: the collector's decoding, or a processor. */
function roleOf(b: Breakdown): string {
  let collector = 0;
  let processor = 0;
  for (const [c, us] of b.byComponent) {
    if (c.startsWith('collector:')) collector += us;
    else if (c.startsWith('processor:') || c === 'storage') processor += us;
  }
  if (collector === 0 && processor === 0) return 'other';
  return collector > processor ? 'ingest worker' : 'processor worker';
}

function report(file: string, n: number, extra: Record<string, number>, thread: number): void {
  const log = (m: string) => process.stdout.write(`${m}\n`);
  const b = attribute(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  log(`\n## thread ${thread} (${thread === 0 ? 'main' : roleOf(b)})`);
  const rows = [...b.byComponent].filter(([c]) => c !== 'idle').sort((x, y) => y[1] - x[1]);
  log(
    `\nprofile window ${(b.windowUs / 1e6).toFixed(2)} s, busy ${(b.busyUs / 1e6).toFixed(2)} s = ${(b.busyUs / n).toFixed(2)} µs/sample (idle ${((b.byComponent.get('idle') ?? 0) / 1e6).toFixed(2)} s)\n`,
  );
  log('| component | CPU s | µs per sample | share |');
  log('|---|---:|---:|---:|');
  for (const [c, us] of rows) {
    if (us / n < 0.005) continue;
    log(
      `| ${c} | ${(us / 1e6).toFixed(2)} | ${(us / n).toFixed(3)} | ${((100 * us) / b.busyUs).toFixed(1)}% |`,
    );
  }
  log('\ntop functions by self time:');
  const top = [...b.byFunction].sort((x, y) => y[1] - x[1]).slice(0, Number(args.top));
  for (const [f, us] of top) log(`  ${(us / n).toFixed(3)} µs/sample  ${f}`);
  if (args.out) {
    writeFileSync(
      args.out,
      JSON.stringify(
        {
          ...extra,
          samples: n,
          busyUsPerSample: b.busyUs / n,
          components: Object.fromEntries(rows.map(([c, us]) => [c, us / n])),
        },
        null,
        2,
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// The run

async function main(): Promise<void> {
  if (args.analyze) {
    report(args.analyze, Number(args.samples ?? 1), {}, 0);
    return;
  }
  const series = Number(args.series);
  const ticks = Number(args.ticks);
  const concurrency = Number(args.concurrency);
  const profile = !args['no-profile'];
  const work = mkdtempSync(path.join(os.tmpdir(), 'trainwatch-ingest-profile-'));
  const profDir = path.join(work, 'profile');
  mkdirSync(profDir);
  const log = (m: string) => process.stdout.write(`${m}\n`);
  const webhook = await new WebhookReceiver().start();
  const generator = new GeneratorProcess();
  let server: ReturnType<typeof startProcess> | undefined;
  try {
    // The main data set as run.ts builds it, one option per line (twin: data-dir-bytes.ts:main): each tool stands alone.
    const fleet = fleetForSeries(series);
    const ds = await generator.build('main', {
      seed: 42,
      ...fleet,
      ticks,
      ticksPerRequest: 1,
      intervalMs: 1000,
      endMs: Date.now(),
      tenant: 'bench',
    });
    log(`data set: ${ds.activeSeries} active series, ${ds.samples} samples, ${ds.requests} requests`);

    const port = await freePort();
    const dataDir = path.join(work, 'data');
    const rulesFile = writeRulesFile(work);
    const { config } = await fitTrainwatchConfig({
      ...trainwatchBaseConfig(),
      ...(args['ingest-workers'] !== undefined
        ? { ingest: { workers: Number(args['ingest-workers']) } }
        : {}),
      ...(args['processor-workers'] !== undefined
        ? { processor: { workers: Number(args['processor-workers']) } }
        : {}),
      ...(args['no-alerting']
        ? {}
        : {
            alerting: {
              rule_files: [rulesFile],
              evaluation_interval: '1s',
              receivers: [
                {
                  name: 'bench',
                  webhook_configs: [{ url: webhook.url('/trainwatch'), send_resolved: false }],
                },
              ],
              route: {
                receiver: 'bench',
                group_by: ['alertname', 'job_id'],
                group_wait: '0s',
                group_interval: '1s',
              },
            },
          }),
    });
    const configFile = path.join(work, 'trainwatch.yaml');
    writeFileSync(configFile, toYaml(config));
    const nodeArgs = [
      ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=500'] : []),
      ...args['node-args'].split(' ').filter(Boolean),
    ];
    server = startProcess(
      'trainwatch',
      process.execPath,
      [
        ...nodeArgs,
        path.join(REPO_ROOT, 'bin', 'trainwatch.js'),
        'start',
        '--config',
        configFile,
        '--data-dir',
        dataDir,
        '--listen',
        `127.0.0.1:${port}`,
      ],
      { logFile: path.join(work, 'trainwatch.log') },
    );
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitHttpOk(server, `${baseUrl}/readyz`, 120_000);
    const rssBefore = procSample(server.pid)?.rssBytes ?? 0;
    const idle = await (await fetch(`${baseUrl}/metrics`)).text();
    const idleGauge = (name: string) => {
      const line = idle.split('\n').find((l) => l.startsWith(`${name} `));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
    };
    log(
      `memory before ingest: heap used ${(idleGauge('trainwatch_nodejs_heap_size_used_bytes') / 2 ** 20).toFixed(1)} MiB, ` +
        `external ${(idleGauge('trainwatch_nodejs_external_memory_bytes') / 2 ** 20).toFixed(1)} MiB, RSS ${(rssBefore / 2 ** 20).toFixed(1)} MiB`,
    );
    const meter = new CpuMeter({ server: server.pid }).start();
    const replay = await generator.replay('main', {
      baseUrl,
      format: 'remote-write',
      concurrency,
      maxSeconds: 300,
    });
    const sys = { name: 'trainwatch', process: server, query: new PromApi(baseUrl) } as Parameters<
      typeof waitDrained
    >[0];
    await waitDrained(sys, ds, 120_000);
    const cpu = meter.stop();
    const rss = procSample(server.pid);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    const gauge = (name: string, labels = '') => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${name}${labels} `));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
    };
    const perSeries = (bytes: number) => `${Math.round(bytes / ds.activeSeries)} B/series`;
    log(
      `memory after drain (per active series): heap used ${perSeries(gauge('trainwatch_nodejs_heap_size_used_bytes'))}, ` +
        `heap total ${perSeries(gauge('trainwatch_nodejs_heap_size_total_bytes'))}, external ${perSeries(gauge('trainwatch_nodejs_external_memory_bytes'))}, ` +
        `RSS ${perSeries(gauge('trainwatch_process_resident_memory_bytes'))}`,
    );
    const transitions = metrics
      .split('\n')
      .filter((l) => l.startsWith('trainwatch_alert_transitions_total'))
      .map((l) => `  ${l}`);
    const alerts = (await (await fetch(`${baseUrl}/api/tw/v1/alerts?state=pending,firing`)).json()) as
      | { data?: unknown[] }
      | unknown[];
    const open = Array.isArray(alerts) ? alerts.length : (alerts.data?.length ?? 0);
    const serverCpu = cpu.cpu.server!.cpuSeconds;
    log(
      `accepted ${replay.samplesAccepted} samples in ${(replay.elapsedMs / 1000).toFixed(2)} s: ${Math.round(replay.samplesAccepted / (replay.elapsedMs / 1000))} samples/s, ` +
        `${Math.round(replay.samplesAccepted / serverCpu)} per server CPU-second (${((serverCpu * 1e6) / replay.samplesAccepted).toFixed(2)} µs/sample)`,
    );
    log(
      `RSS after drain ${((rss?.rssBytes ?? 0) / ds.activeSeries) | 0} B/series, growth ${(((rss?.rssBytes ?? 0) - rssBefore) / ds.activeSeries) | 0} B/series, peak ${((rss?.peakRssBytes ?? 0) / ds.activeSeries) | 0} B/series`,
    );
    log(`alert transitions:\n${transitions.join('\n') || '  none'}\nopen alerts: ${open}`);
    await server.stop(120_000);
    server = undefined;
    if (!profile) return;
    // One profile per thread: the main thread (HTTP, collector, bus) and each worker (processors, queries).
    // Names are CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) throw new Error(`no CPU profile written in ${profDir}`);
    for (const file of files.sort((a, b) => threadOf(a) - threadOf(b))) {
      report(
        path.join(profDir, file),
        replay.samplesAccepted,
        { series: ds.activeSeries, samplesPerCpuSecond: replay.samplesAccepted / serverCpu },
        threadOf(file),
      );
      if (args.keep) log(`\nprofile: ${path.join(profDir, file)}`);
    }
  } finally {
    if (server) await server.stop(30_000);
    await generator.stop();
    await webhook.stop();
    if (!args.keep) rmSync(work, { recursive: true, force: true });
  }
}

/** The thread id in a V8 profile's file name (0: the main thread). */
function threadOf(file: string): number {
  return Number(file.split('.').at(-3) ?? 0);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
