/**
 * The agent's footprint on a training node (issue 6, item 9): `trainwatch agent` reading 8 GPUs every second
 * (the fake nvidia-smi of testdata/nvidia-smi replaying modelled H100 output), host metrics every second, one
 * scrape target (Debian's prometheus-node-exporter when installed, every 15 s), shipping to a real
 * `trainwatch start` on this machine. Measures the agent process alone (not nvidia-smi, not the exporter):
 * CPU time from /proc/PID/stat over the measured window, and resident memory (VmRSS, VmHWM).
 *
 *   npm run build:server && node --import tsx bench/agent-footprint.ts [--seconds 120] [--node-options=...]
 *       [--node-args '--no-opt']
 *
 * The agent runs with the NODE_OPTIONS deploy/ sets by default (--node-options='' measures plain `node`);
 * --node-args passes flags to `node` itself (V8 flags that NODE_OPTIONS does not accept).
 *
 * Prints one JSON line and writes it to bench/results/agent-footprint.json.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const REPO = path.resolve(import.meta.dirname, '..');
const CLI = path.join(REPO, 'bin', 'trainwatch.js');
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    'node-options': { type: 'string', default: '--max-semi-space-size=1' },
    'node-args': { type: 'string', default: '' },
  },
});
const seconds = Number(values.seconds);
const nodeOptions = values['node-options'];
const nodeArgs = values['node-args'].split(' ').filter(Boolean);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim() || 100);

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}

function memKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-agent-bench-'));
const children: ChildProcess[] = [];
const stopAll = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
};
process.on('exit', stopAll);

const serverPort = await freePort();
const server = spawn(
  process.execPath,
  [
    CLI,
    'start',
    '--listen',
    `127.0.0.1:${serverPort}`,
    '--data-dir',
    path.join(dir, 'server'),
    '--log-level',
    'warn',
  ],
  {
    env: { ...process.env, TRAINWATCH_AUTH__ANONYMOUS_SCOPES: '[ingest, read]' },
    stdio: 'ignore',
  },
);
children.push(server);

let scrapeUrl: string;
const haveExporter = spawnSync('prometheus-node-exporter', ['--version']).status === 0;
if (haveExporter) {
  const p = await freePort();
  children.push(
    spawn('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${p}`], { stdio: 'ignore' }),
  );
  scrapeUrl = `http://127.0.0.1:${p}/metrics`;
} else {
  // Without node_exporter: serve its recorded page (same size and shape).
  const page = readFileSync(path.join(REPO, 'testdata/scrape/node-exporter.txt'));
  const http = await import('node:http');
  const srv = http.createServer((_q, s) => s.end(page)).listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  scrapeUrl = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/metrics`;
}

for (let i = 0; i < 100; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${serverPort}/readyz`)).ok) break;
  } catch {}
  await sleep(200);
}

mkdirSync(path.join(dir, 'agent'));
const config = path.join(dir, 'agent.yaml');
const localPort = await freePort();
writeFileSync(
  config,
  `data_dir: ${path.join(dir, 'agent')}\ngpu:\n  interval_ms: 1000\nhost:\n  interval_ms: 1000\nlocal:\n  listen: 127.0.0.1:${localPort}\nscrape:\n  - url: ${scrapeUrl}\n    interval_ms: 15000\n`,
);
const agent = spawn(
  process.execPath,
  [
    ...nodeArgs,
    CLI,
    'agent',
    '--server',
    `http://127.0.0.1:${serverPort}`,
    '--config',
    config,
    '--log-level',
    'warn',
  ],
  {
    env: {
      ...process.env,
      PATH: `${path.join(REPO, 'testdata/nvidia-smi/bin')}:${process.env.PATH}`,
      FAKE_NVIDIA_SMI_LOOP: '1',
      // As deploy/systemd and deploy/kubernetes run it (a 1 MB young generation); --node-options '' measures
      // plain `node` instead.
      NODE_OPTIONS: nodeOptions,
    },
    stdio: 'ignore',
  },
);
children.push(agent);
const pid = agent.pid!;

await sleep(20_000); // warm-up: start-up, first scrapes, JIT
const cpu0 = cpuSeconds(pid);
const t0 = performance.now();
const rss: number[] = [];
while (performance.now() - t0 < seconds * 1000) {
  await sleep(1000);
  rss.push(memKb(pid, 'VmRSS'));
}
const cpu1 = cpuSeconds(pid);
const wall = (performance.now() - t0) / 1000;
const shipped = await (await fetch(`http://127.0.0.1:${localPort}/metrics`)).text();
const result = {
  scenario: 'agent: 8 GPUs at 1 s (fake nvidia-smi), host metrics at 1 s, one node_exporter scrape at 15 s',
  scrape: haveExporter ? 'prometheus-node-exporter (live)' : 'recorded node_exporter page',
  measuredSeconds: Math.round(wall),
  cpuPercentOfOneCore: Number(((100 * (cpu1 - cpu0)) / wall).toFixed(3)),
  rssMbMean: Number((rss.reduce((a, b) => a + b, 0) / rss.length / 1024).toFixed(1)),
  rssMbMax: Number((Math.max(...rss) / 1024).toFixed(1)),
  rssMbPeak: Number((memKb(pid, 'VmHWM') / 1024).toFixed(1)),
  shippedSamples: Number(/trainwatch_agent_shipped_samples_total\{[^}]*\} (\d+)/.exec(shipped)?.[1] ?? 0),
  node: process.version,
  agentNodeOptions: nodeOptions,
  ...(nodeArgs.length ? { agentNodeArgs: nodeArgs.join(' ') } : {}),
  command: `node --import tsx bench/agent-footprint.ts --seconds ${seconds} --node-options='${nodeOptions}'${nodeArgs.length ? ` --node-args='${nodeArgs.join(' ')}'` : ''}`,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
writeFileSync(path.join(REPO, 'bench/results/agent-footprint.json'), `${JSON.stringify(result, null, 2)}\n`);
stopAll();
await sleep(500);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
