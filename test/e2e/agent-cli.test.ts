/**
 * `trainwatch agent` as a node's operator runs it: bin/trainwatch.js starts it without the rest of the CLI
 * (docs/agent.md, Footprint), its help and misspelt flags still get commander's answers, a bad
 * configuration exits 2 naming the key, and the agent's module graph keeps out the packages that would
 * take it over 60 MB.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Child,
  CLI,
  freePort,
  REPO_ROOT,
  startCli,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';

const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGKILL')));
});

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
}

/**
 * Every module the agent's entry (dist/agent/cli.js) can load: its static imports and its dynamic imports
 * of literal paths, followed through dist/; packages are listed by name and not followed.
 */
function agentModuleGraph(): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [path.join(REPO_ROOT, 'dist/agent/cli.js')];
  const importRe =
    /(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm;
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(importRe)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) pending.push(path.resolve(path.dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe('trainwatch agent command line', () => {
  it('loads only what the agent needs: no commander, zod, yaml, server or other commands', () => {
    expect(existsSync(path.join(REPO_ROOT, 'dist/agent/cli.js')), 'run npm run build:server').toBe(true);
    const { files, packages } = agentModuleGraph();
    expect([...packages].sort()).toEqual(['js-yaml']);
    const outside = [...files]
      .map((f) => path.relative(path.join(REPO_ROOT, 'dist'), f))
      .filter((f) => !f.startsWith('agent/') && !f.startsWith('model/') && !f.startsWith('protocol/'));
    expect(outside).toEqual([]);
    // The graph is real: it reaches the collectors, the buffer and the shipper.
    for (const part of ['agent/gpu/collector.js', 'agent/buffer/segment-queue.js', 'agent/ship/shipper.js'])
      expect(files.has(path.join(REPO_ROOT, 'dist', part))).toBe(true);
  });

  it('starts through its own entry, serves /healthz and stops cleanly on SIGTERM', async () => {
    const dir = tempDir('tw-agent-cli-');
    const [localPort, deadPort] = [await freePort(), await freePort()];
    const agent = startCli(
      [
        'agent',
        `--server=http://127.0.0.1:${deadPort}`,
        '-c',
        writeConfig(
          dir,
          `local:\n  listen: 127.0.0.1:${localPort}\n  socket: null\ngpu:\n  enabled: false\n`,
        ),
        '--data-dir',
        dir,
        '--log-level',
        'info',
      ],
      {},
    );
    children.push(agent);
    await waitFor('the agent to answer /healthz', async () => {
      if (agent.proc.exitCode !== null) throw new Error(`the agent exited:\n${agent.output()}`);
      return (await fetch(`http://127.0.0.1:${localPort}/healthz`)).ok || undefined;
    });
    expect(agent.output()).toContain('"msg":"trainwatch agent started"');
    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(agent.output()).toContain('"msg":"trainwatch agent stopped"');
  });

  it('exits 2 naming the bad key and where it came from', () => {
    const dir = tempDir('tw-agent-cli-');
    const file = writeConfig(dir, 'buffer:\n  ttl_ms: 10\nshipp: {}\n');
    const r = run(['agent', '--server', 'http://127.0.0.1:1', '--config', file], {
      TRAINWATCH_AGENT_GPU__INTERVAL_MS: 'fast',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      [
        'trainwatch: invalid configuration:',
        `  - buffer.ttl_ms: must be an integer from 1000 to 604800000 (got 10) [from config file ${file}]`,
        '  - gpu.interval_ms: must be an integer from 100 to 60000 (got "fast") [from environment variable TRAINWATCH_AGENT_GPU__INTERVAL_MS]',
        `  - shipp: unknown key [from config file ${file}]`,
        '',
      ].join('\n'),
    );
    const noServer = run(['agent', '--data-dir', dir]);
    expect(noServer.status).toBe(2);
    expect(noServer.stderr).toContain('no collector URL: pass --server URL');
  });

  it('leaves --help and flags it does not take to the full CLI', () => {
    const help = run(['agent', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: trainwatch agent \[options\]/);
    for (const flag of [
      '--server <url>',
      '--token <token>',
      '-c, --config <file>',
      '--data-dir <dir>',
      '--log-level <level>',
    ])
      expect(help.stdout).toContain(flag);
    const bogus = run(['agent', '--server', 'http://127.0.0.1:1', '--bogus']);
    expect(bogus.status).toBe(1);
    expect(bogus.stderr).toContain("error: unknown option '--bogus'");
    const missing = run(['agent', '--server']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("error: option '--server <url>' argument missing");
  });
});

function writeConfig(dir: string, body: string): string {
  const file = path.join(dir, 'agent.yaml');
  writeFileSync(file, body);
  return file;
}
