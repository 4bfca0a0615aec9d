/**
 * `trainwatch silence add|list|expire` against a running server, and `trainwatch rules check` exit statuses
 * (the built CLI, as a child process).
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { REPO_ROOT, startCli, tempDir } from '../support/helpers.js';

let tw: Trainwatch;

beforeAll(async () => {
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: tempDir('tw-cli-'),
        auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
      },
    }),
    pino({ level: 'silent' }),
  );
});

afterAll(async () => {
  await tw?.stop();
});

async function cli(args: string[]): Promise<{ code: number | string; out: string }> {
  const child = startCli(args);
  const code = await child.exited;
  return { code, out: child.output() };
}

describe('trainwatch silence', () => {
  it('adds, lists and expires a silence', async () => {
    const add = await cli([
      'silence',
      'add',
      'alertname="GPUIdle"',
      'job_id=~"llama-.*"',
      '--duration',
      '2h',
      '--comment',
      'planned idle',
      '--author',
      'ana',
      '--url',
      tw.url,
    ]);
    expect(add.code, add.out).toBe(0);
    const id = add.out.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const list = await cli(['silence', 'list', '--url', tw.url]);
    expect(list.code).toBe(0);
    expect(list.out).toContain(id);
    expect(list.out).toContain('alertname="GPUIdle" job_id=~"llama-.*"');
    expect(list.out).toContain('planned idle');
    expect((await cli(['silence', 'expire', id, '--url', tw.url])).code).toBe(0);
    const after = await cli(['silence', 'list', '--url', tw.url]);
    expect(after.out).not.toContain(id);
    expect((await cli(['silence', 'list', '--expired', '--url', tw.url])).out).toContain('expired');
  }, 60_000);

  it('refuses a malformed matcher with a message', async () => {
    const r = await cli(['silence', 'add', 'not a matcher', '--comment', 'x', '--url', tw.url]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/is not a matcher/);
  }, 30_000);
});

describe('trainwatch rules check', () => {
  it('exits 0 for valid files and 1 with promtool messages for invalid ones', async () => {
    const ok = await cli(['rules', 'check', path.join(REPO_ROOT, 'testdata/rules/gpu.rules.yml')]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('SUCCESS: 7 rules found');
    const bad = await cli([
      'rules',
      'check',
      path.join(REPO_ROOT, 'testdata/rules/invalid/unknown-field.yml'),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('field exprr not found in type rulefmt.RuleNode');
  }, 60_000);
});
