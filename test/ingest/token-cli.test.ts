/**
 * `trainwatch token create|list|revoke` as an operator runs it, next to a running `trainwatch start` on the
 * same data directory: a created token is accepted at once, a revoked one refused at once, and sending
 * without a token is refused by default.
 */
import { spawnSync } from 'node:child_process';
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
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

/** `twk_<16 hex id>_`: the secret is the rest (base64url, so it may itself hold '_'). */
const TOKEN_PREFIX_LENGTH = 'twk_0123456789abcdef_'.length;

const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c)));
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000 });
}

describe('trainwatch token', () => {
  it('creates, lists and revokes tokens that a running server honours at once', async () => {
    const dataDir = tempDir('tw-token-cli-');
    const created = cli([
      'token',
      'create',
      '--tenant',
      'ml-team',
      '--scope',
      'ingest',
      '--name',
      'prom',
      '--data-dir',
      dataDir,
    ]);
    expect(created.status, created.stderr).toBe(0);
    const token = created.stdout.split('\n')[0]!;
    expect(token).toMatch(/^twk_[0-9a-f]{16}_/);
    expect(created.stdout).toMatch(/tenant ml-team, scope ingest\. Store it now/);

    const listed = cli(['token', 'list', '--json', '--data-dir', dataDir]);
    const list = JSON.parse(listed.stdout) as { id: string; tenant: string; scope: string; name: string }[];
    expect(list).toEqual([expect.objectContaining({ tenant: 'ml-team', scope: 'ingest', name: 'prom' })]);
    expect(listed.stdout).not.toContain(token.slice(TOKEN_PREFIX_LENGTH));
    expect(cli(['token', 'list', '--data-dir', dataDir]).stdout).toMatch(/^ID +TENANT +SCOPE +NAME/);

    const port = await freePort();
    const server = startCli([
      'start',
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
    ]);
    children.push(server);
    await waitFor(
      'the server',
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok || undefined,
    );
    const body = snappyCompress(writeRequestV1([{ labels: { __name__: 'm' }, samples: [[Date.now(), 1]] }]));
    const send = (auth?: string) =>
      fetch(`http://127.0.0.1:${port}/api/v1/write`, {
        method: 'POST',
        headers: { ...RW1_HEADERS, ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
        body,
      });
    expect((await send()).status).toBe(401);
    expect((await send(token)).status).toBe(204);

    const revoked = cli(['token', 'revoke', list[0]!.id, '--data-dir', dataDir]);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/revoked token [0-9a-f]{16} \(tenant ml-team, scope ingest\)/);
    expect((await send(token)).status).toBe(401);
    expect(JSON.parse(cli(['token', 'list', '--json', '--data-dir', dataDir]).stdout)).toEqual([]);
    expect(JSON.parse(cli(['token', 'list', '--all', '--json', '--data-dir', dataDir]).stdout)).toHaveLength(
      1,
    );
  }, 60_000);

  it('explains what is wrong', () => {
    const dataDir = tempDir('tw-token-cli-');
    const scope = cli(['token', 'create', '--tenant', 'a', '--scope', 'root', '--data-dir', dataDir]);
    expect(scope.status).not.toBe(0);
    expect(scope.stderr).toMatch(/Allowed choices are ingest, read, admin/);
    const tenant = cli(['token', 'create', '--tenant', 'Team A', '--scope', 'read', '--data-dir', dataDir]);
    expect(tenant.status).not.toBe(0);
    expect(tenant.stderr).toMatch(/lowercase letters, digits/);
    const missing = cli(['token', 'revoke', 'ffffffffffffffff', '--data-dir', dataDir]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no token with id "ffffffffffffffff"/);
    expect(cli(['token', '--help']).stdout).toMatch(/create.*\n.*list.*\n.*revoke/s);
  });
});
