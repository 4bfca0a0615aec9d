/**
 * The `trainwatch` command as a user runs it: help everywhere, version, configuration errors, and the demo
 * coming up with its simulated fleet listed by the fleet page's API.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Child,
  CLI,
  freePort,
  getJson,
  REPO_ROOT,
  startCli,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';

const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c)));
});

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
}

describe('trainwatch CLI', () => {
  it.each([[[]], [['start']], [['demo']], [['simulate']], [['version']]])('prints help for %j', (cmd) => {
    const r = run([...cmd, '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: trainwatch/);
  });

  it('prints its version', () => {
    const r = run(['version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^trainwatch \d+\.\d+\.\d+ \(node v\d+/);
  });

  it('exits 2 with the key and the problem on a bad configuration', () => {
    const file = path.join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'bus:\n  fsync: sometimes\n');
    const r = run(['start', '--config', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /invalid configuration:\n {2}- bus\.fsync: .*\(got "sometimes"\) \[from config file .*bad\.yaml\]/,
    );
    const env = run(['start'], { TRAINWATCH_LISTEN: 'nowhere' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/listen: must be host:port.*\[from environment variable TRAINWATCH_LISTEN\]/);
  });

  it('refuses a data directory that another trainwatch holds', async () => {
    const dataDir = tempDir();
    const port = await freePort();
    const first = startCli([
      'start',
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
    ]);
    children.push(first);
    await waitFor(
      'first server',
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok || undefined,
    );
    const second = run(['start', '--listen', `127.0.0.1:${await freePort()}`, '--data-dir', dataDir]);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/is in use by process \d+; stop it or choose another --data-dir/);
  });

  it('runs the demo: the fleet page lists the simulated jobs with live numbers', async () => {
    const port = await freePort();
    const demo = startCli([
      'demo',
      '--listen',
      `127.0.0.1:${port}`,
      '--jobs',
      '3',
      '--nodes',
      '2',
      '--gpus',
      '2',
      '--backfill',
      '2m',
    ]);
    children.push(demo);
    await waitFor(
      'the dashboard URL',
      () => (demo.output().includes(`dashboard at http://127.0.0.1:${port}/`) ? true : undefined),
      20_000,
    );
    type Jobs = {
      data: {
        jobs: { jobId: string; status: string; gpus: number; step: number | null; worldSize: number }[];
      };
    };
    const jobs = await waitFor(
      'three running jobs with GPU numbers',
      async () => {
        const body = await getJson<Jobs>(`http://127.0.0.1:${port}/api/tw/v1/jobs`);
        const live = body.data.jobs.filter((j) => j.status === 'running' && j.gpus === 4 && j.step !== null);
        return live.length >= 3 ? live : undefined;
      },
      30_000,
      250,
    );
    for (const j of jobs) expect(j.worldSize).toBe(4);
    const page = await fetch(`http://127.0.0.1:${port}/jobs/${encodeURIComponent(jobs[0]!.jobId)}`);
    expect(page.status).toBe(200);
    // The app's page (a client route falls back to it): its root, with the static shell painted before the
    // script runs, and the built script.
    const html = await page.text();
    expect(html).toMatch(/<div id="root">/);
    expect(html).toMatch(/<script type="module"[^>]* src="\/assets\/index-[^"]+\.js">/);
    expect(demo.output()).toMatch(/incident scheduled: straggler in /);
  }, 60_000);
});
