/**
 * Agent footprint: CPU and resident memory of `trainwatch agent` against `prometheus-node-exporter` on the
 * same host, each alone for the same time, each doing its job once a second: the node exporter is scraped
 * every second by the harness (the scrape's cost falls on the harness, not on the exporter); the agent
 * collects at a 1 s interval and ships to a null sink (so no server's cost is counted).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { BenchContext } from '../harness/context.js';
import { REPO_ROOT } from '../harness/generator.js';
import { CpuMeter, freePort, type ManagedProcess, procSample, startProcess } from '../harness/proc.js';
import { missingBinary, startNodeExporter } from '../harness/systems.js';

export const AGENT_FIGURES = [
  ['CPU used', 'cores'],
  ['resident memory (end of run)', 'MiB'],
  ['peak resident memory', 'MiB'],
] as const;

interface Footprint {
  cores: number;
  rssMiB: number;
  peakMiB: number;
}

async function observe(
  p: ManagedProcess,
  seconds: number,
  everySecond: () => Promise<void>,
): Promise<Footprint> {
  // Let start-up costs pass before measuring.
  await new Promise((r) => setTimeout(r, 2000));
  const meter = new CpuMeter({ p: p.pid }).start();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const tick = performance.now();
    await everySecond();
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - tick))));
  }
  const cpu = meter.stop().cpu.p!;
  const mem = procSample(p.pid);
  return {
    cores: cpu.cores,
    rssMiB: (mem?.rssBytes ?? 0) / 2 ** 20,
    peakMiB: (mem?.peakRssBytes ?? 0) / 2 ** 20,
  };
}

function record(ctx: BenchContext, who: 'trainwatch' | 'prometheus', f: Footprint | undefined, why?: string) {
  const values = f ? [f.cores, f.rssMiB, f.peakMiB] : [];
  AGENT_FIGURES.forEach(([name, unit], i) => {
    // The reference for the agent is the node exporter; it is reported in the Prometheus column.
    ctx.results.set('agent footprint', name, unit, 'lower', who, values[i], why);
  });
}

/** The agent's flags, as its --help lists them; undefined when this build has no agent command. */
function agentHelp(): string | undefined {
  try {
    return execFileSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'trainwatch.js'), 'agent', '--help'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  } catch {
    return undefined;
  }
}

export async function runAgentFootprint(ctx: BenchContext, nullSinkUrl: string): Promise<void> {
  const seconds = ctx.sizes.agentSeconds;
  ctx.results.set(
    'agent footprint',
    AGENT_FIGURES[0][0],
    'cores',
    'lower',
    'victoriametrics',
    undefined,
    'not applicable: VictoriaMetrics ships no node agent here; the Prometheus column is prometheus-node-exporter',
  );
  const missing = missingBinary('nodeExporter');
  if (missing) record(ctx, 'prometheus', undefined, `not available (${missing})`);
  else {
    const ne = await startNodeExporter({ workDir: ctx.workDir });
    try {
      ctx.results.settings['prometheus-node-exporter'] = ne.settings;
      ctx.results.versions['prometheus-node-exporter'] = ne.version;
      const f = await observe(ne.process, seconds, async () => {
        await (await fetch(`${ne.url}/metrics`)).arrayBuffer();
      });
      record(ctx, 'prometheus', f, 'prometheus-node-exporter, scraped every second');
      ctx.log(`  node exporter: ${f.cores.toFixed(3)} cores, ${f.rssMiB.toFixed(1)} MiB`);
    } finally {
      await ne.process.stop();
    }
  }

  const help = agentHelp();
  if (!help) {
    record(ctx, 'trainwatch', undefined, 'not available (command `trainwatch agent` missing)');
    return;
  }
  const has = (flag: string) => help.includes(flag);
  const dataDir = path.join(ctx.workDir, 'agent-data');
  mkdirSync(dataDir, { recursive: true });
  const args = [path.join(REPO_ROOT, 'bin', 'trainwatch.js'), 'agent'];
  const agentSettings: string[] = [];
  if (has('--config')) {
    // docs/agent.md: host metrics every second, batches shipped every second, and the SDK endpoint on a free
    // port (its default, 9471, may be taken on a shared machine). GPU collection stays as configured by
    // default (it looks for nvidia-smi).
    const config = {
      server: { url: nullSinkUrl },
      data_dir: dataDir,
      host: { interval_ms: 1000 },
      ship: { interval_ms: 1000 },
      local: { listen: `127.0.0.1:${await freePort()}`, socket: null },
    };
    const file = path.join(ctx.workDir, 'agent.yaml');
    writeFileSync(file, toYaml(config));
    args.push('--config', file);
    agentSettings.push(`agent.yaml: ${toYaml(config).trim().replace(/\n/g, ' ⏎ ')}`);
  } else {
    const urlFlag = ['--server', '--url', '--collector'].find(has);
    if (!urlFlag) {
      record(
        ctx,
        'trainwatch',
        undefined,
        'not available (`trainwatch agent --help` lists no --config or --server)',
      );
      return;
    }
    args.push(urlFlag, nullSinkUrl);
    if (has('--data-dir')) args.push('--data-dir', dataDir);
  }
  const agent = startProcess('trainwatch-agent', process.execPath, args, {
    logFile: path.join(ctx.workDir, 'agent.log'),
  });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    if (!agent.alive()) {
      record(ctx, 'trainwatch', undefined, `not available (the agent exited at start: ${agent.tail(5)})`);
      return;
    }
    const shown = args.map((a) => (a.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, a) : a));
    ctx.results.settings['trainwatch agent'] = [`node ${shown.join(' ')}`, ...agentSettings];
    const sinkStats = async () =>
      (await (await fetch(`${nullSinkUrl}/stats`)).json()) as { requests: number; bytes: number };
    const before = await sinkStats();
    const f = await observe(agent, seconds, async () => {});
    const after = await sinkStats();
    const shipped = after.requests - before.requests;
    record(
      ctx,
      'trainwatch',
      f,
      `trainwatch agent, host metrics every 1 s, shipping every 1 s to a null sink (${shipped} batches, ${((after.bytes - before.bytes) / 1024).toFixed(0)} KiB shipped while measured)`,
    );
    ctx.log(`  trainwatch agent: ${f.cores.toFixed(3)} cores, ${f.rssMiB.toFixed(1)} MiB`);
  } finally {
    await agent.stop();
  }
}
