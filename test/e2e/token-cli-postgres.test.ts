/**
 * `trainwatch token create|list|revoke` with `meta.kind: postgres` (URL from `url_file`, a mounted secret),
 * and a PostgreSQL-backed authenticator honouring what the CLI did.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TokenAuthenticator } from '../../src/auth/index.js';
import { openMeta } from '../../src/meta/index.js';
import { CLI, REPO_ROOT, tempDir, waitFor } from '../support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../support/postgres.js';

describeWithPostgres('trainwatch token (meta.kind: postgres)', () => {
  let server: TestPostgres;
  let configFile: string;
  beforeAll(async () => {
    server = await startPostgres();
    const dir = tempDir('tw-token-pg-');
    const urlFile = path.join(dir, 'pg-url');
    writeFileSync(urlFile, `${server.url}\n`);
    configFile = path.join(dir, 'trainwatch.yaml');
    writeFileSync(
      configFile,
      `data_dir: ${dir}/data\nmeta:\n  kind: postgres\n  postgres:\n    url_file: ${urlFile}\n`,
    );
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  const cli = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'token', ...args, '--config', configFile], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });

  // Four CLI runs, each a node start: slow on a loaded 2-core machine.
  it('creates, lists and revokes tokens in PostgreSQL, honoured by a running authenticator', {
    timeout: 120_000,
  }, async () => {
    const meta = await openMeta(
      {
        data_dir: tempDir('tw-token-pg-'),
        meta: { kind: 'postgres', postgres: { url: server.url, pool_size: 2 } },
        jobs: { silent_after_ms: 60_000 },
      },
      { tokenRefreshIntervalMs: 200 },
    );
    try {
      const auth = new TokenAuthenticator(meta.tokens, { tenant: null, scopes: new Set() });
      const check = (token: string) => {
        try {
          return auth.authenticate({ authorization: `Bearer ${token}` }, 'ingest').tenant;
        } catch (err) {
          return (err as Error).message;
        }
      };
      const created = cli(['create', '--tenant', 'ml-team', '--scope', 'ingest', '--name', 'prom', '--json']);
      expect(created.status, created.stderr).toBe(0);
      const { id, token } = JSON.parse(created.stdout) as { id: string; token: string };
      await waitFor('the new token accepted', () => check(token) === 'ml-team' || undefined, 5000, 50);

      const listed = cli(['list', '--json']);
      expect(listed.status, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout)).toEqual([
        expect.objectContaining({ id, tenant: 'ml-team', scope: 'ingest', name: 'prom' }),
      ]);
      expect(listed.stdout).not.toContain(token.slice('twk_0123456789abcdef_'.length));

      const revoked = cli(['revoke', id]);
      expect(revoked.status, revoked.stderr).toBe(0);
      expect(revoked.stdout).toMatch(new RegExp(`revoked token ${id}`));
      await waitFor('the token refused', () => /was revoked/.test(check(token)) || undefined, 5000, 50);
      expect(cli(['revoke', '0123456789abcdef']).stderr).toMatch(/no token with id "0123456789abcdef"/);
    } finally {
      await meta.close();
    }
  });
});
