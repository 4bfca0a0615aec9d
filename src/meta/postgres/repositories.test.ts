import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import type { JobInfo } from '../../model/job.js';
import { PgJobRepository } from './jobs.js';
import { PgPartitionState } from './partition-state.js';
import { PgMeta } from './pg-meta.js';
import { PgTokenRepository } from './tokens.js';

/** `twk_<16 hex id>_`: the secret is the rest (base64url, so it may itself hold '_'). */
const TOKEN_PREFIX_LENGTH = 'twk_0123456789abcdef_'.length;

function job(tenant: string, jobId: string, fields: Partial<JobInfo> = {}): JobInfo {
  return {
    tenant,
    jobId,
    name: jobId,
    project: '',
    owner: '',
    framework: '',
    worldSize: null,
    config: {},
    tags: [],
    status: 'running',
    startMs: null,
    endMs: null,
    lastSampleMs: null,
    metricKeys: {},
    ...fields,
  };
}

describeWithPostgres('PostgreSQL repositories', () => {
  let server: TestPostgres;
  let meta: PgMeta;

  beforeAll(async () => {
    server = await startPostgres();
    meta = await PgMeta.open({ url: server.url });
  });
  afterAll(async () => {
    await meta?.close();
    await server?.stop();
  });

  describe('jobs', () => {
    it('round-trips a batch of jobs and merges each with the stored row', async () => {
      const jobs = new PgJobRepository(meta, 60_000);
      await jobs.upsert([
        job('t', 'bert', {
          name: 'bert-large',
          owner: 'ana',
          worldSize: 8,
          config: { lr: 1, nested: { a: [1, 2] } },
          tags: ['a', 'b'],
          metricKeys: { train_loss: 'train/loss' },
          startMs: 2000,
          lastSampleMs: 5000,
        }),
        job('t', 'gpt', { startMs: 1000 }),
      ]);
      expect(await jobs.get('t', 'bert', 5000)).toEqual(
        job('t', 'bert', {
          name: 'bert-large',
          owner: 'ana',
          worldSize: 8,
          config: { lr: 1, nested: { a: [1, 2] } },
          tags: ['a', 'b'],
          metricKeys: { train_loss: 'train/loss' },
          startMs: 2000,
          lastSampleMs: 5000,
        }),
      );
      // A stale writer (a partition's new owner that has not read the row) cannot undo what is stored.
      await jobs.upsert([
        job('t', 'bert', {
          name: '',
          config: { layers: 2 },
          tags: ['c', 'a'],
          startMs: 3000,
          lastSampleMs: 4000,
          status: 'failed',
          endMs: 6000,
        }),
      ]);
      await jobs.upsert([job('t', 'bert', { status: 'running', lastSampleMs: 7000 })]);
      expect(await jobs.get('t', 'bert', 7000)).toMatchObject({
        name: 'bert-large',
        owner: 'ana',
        worldSize: 8,
        config: { lr: 1, layers: 2, nested: { a: [1, 2] } },
        tags: ['a', 'b', 'c'],
        startMs: 2000,
        lastSampleMs: 7000,
        status: 'failed',
        endMs: 6000,
      });
      expect(await jobs.get('t', 'nope', 0)).toBeUndefined();
    });

    it('lists with tenant, search and status filters; a silent running job reads as unknown', async () => {
      const jobs = new PgJobRepository(meta, 60_000);
      await jobs.upsert([
        job('list-a', 'same', { name: 'A', lastSampleMs: 1000 }),
        job('list-a', 'x_1', { project: 'Vision', lastSampleMs: 100_000 }),
        job('list-b', 'same', { name: 'B', lastSampleMs: 2000 }),
      ]);
      const now = 100_500;
      expect((await jobs.list('list-a', now)).map((j) => j.jobId)).toEqual(['x_1', 'same']);
      expect((await jobs.list('list-a', now, { search: 'VISION' })).map((j) => j.jobId)).toEqual(['x_1']);
      expect(await jobs.list('list-a', now, { search: '%' })).toHaveLength(0);
      expect((await jobs.list('list-a', now, { search: '_' })).map((j) => j.jobId)).toEqual(['x_1']);
      expect((await jobs.list('list-a', now, { status: 'unknown' })).map((j) => j.jobId)).toEqual(['same']);
      expect((await jobs.list('list-a', now, { status: 'running', limit: 1 })).map((j) => j.jobId)).toEqual([
        'x_1',
      ]);
      const both = (await jobs.list(null, now)).filter((j) => j.jobId === 'same').map((j) => j.name);
      expect(both.sort()).toEqual(['A', 'B']);
    });
  });

  describe('tokens', () => {
    it('creates a token that verifies, and stores only a hash of its secret', async () => {
      const tokens = new PgTokenRepository(meta);
      const { token, info } = await tokens.create(
        { tenant: 'team-a', scope: 'ingest', name: 'agents' },
        1000,
      );
      expect(token).toMatch(/^twk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
      expect(info).toMatchObject({ tenant: 'team-a', scope: 'ingest', name: 'agents', createdAtMs: 1000 });
      expect(await tokens.verify(token, 2000)).toEqual({
        ok: true,
        token: expect.objectContaining({ id: info.id, tenant: 'team-a' }),
      });
      expect((await tokens.get(info.id))!.lastUsedAtMs).toBe(2000);
      const secret = token.slice(TOKEN_PREFIX_LENGTH);
      const dump = JSON.stringify((await meta.query('SELECT * FROM auth_tokens')).rows);
      expect(dump).not.toContain(secret);
      expect(dump).not.toContain(Buffer.from(secret).toString('hex'));
    });

    it('refuses malformed, wrong-secret and revoked tokens, saying which', async () => {
      const tokens = new PgTokenRepository(meta);
      const { token, info } = await tokens.create({ tenant: 't', scope: 'read' });
      expect(await tokens.verify('hello')).toEqual({ ok: false, reason: 'malformed' });
      const wrong = `${token.slice(0, TOKEN_PREFIX_LENGTH)}${randomBytes(32).toString('base64url')}`;
      expect(await tokens.verify(wrong)).toEqual({ ok: false, reason: 'unknown', id: info.id });
      expect(await tokens.verify(`twk_0123456789abcdef_${token.slice(TOKEN_PREFIX_LENGTH)}`)).toMatchObject({
        ok: false,
        reason: 'unknown',
      });
      // Revoked through another process's repository: refused here at once.
      const other = new PgMeta({ url: server.url });
      try {
        expect((await new PgTokenRepository(other).revoke(info.id, 5))!.revokedAtMs).toBe(5);
      } finally {
        await other.close();
      }
      expect((await tokens.revoke(info.id, 9))!.revokedAtMs).toBe(5);
      expect(await tokens.verify(token)).toEqual({ ok: false, reason: 'revoked', id: info.id });
      expect(await tokens.revoke('ffffffffffffffff')).toBeUndefined();
    });

    it('lists by tenant, hiding revoked tokens unless asked, and validates what it creates', async () => {
      const tokens = new PgTokenRepository(meta);
      const a = (await tokens.create({ tenant: 'list-x', scope: 'admin' }, 1)).info;
      const b = (await tokens.create({ tenant: 'list-y', scope: 'ingest' }, 2)).info;
      await tokens.revoke(b.id);
      const ids = async (f: Parameters<PgTokenRepository['list']>[0]) =>
        (await tokens.list(f)).map((t) => t.id).filter((id) => id === a.id || id === b.id);
      expect(await ids({})).toEqual([a.id]);
      expect(await ids({ includeRevoked: true })).toEqual([a.id, b.id]);
      expect(await ids({ tenant: 'list-y', includeRevoked: true })).toEqual([b.id]);
      await expect(tokens.create({ tenant: 'Team A', scope: 'read' })).rejects.toThrow(
        /tenant "Team A" is invalid/,
      );
      await expect(tokens.create({ tenant: 'a', scope: 'root' as never })).rejects.toThrow(
        /scope "root" is invalid/,
      );
    });
  });

  describe('partition state', () => {
    it('round-trips bytes exactly, per group and partition', async () => {
      const states = new PgPartitionState(meta);
      const bytes = new Uint8Array(256 * 1024);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff; // every byte value, NULs included
      const view = bytes.subarray(3, bytes.length - 5); // a view with an offset into a larger buffer
      expect(await states.load('processors', 0)).toBeUndefined();
      expect(await states.save('processors', 0, 1234, view, 10)).toBe(true);
      expect(await states.save('processors', 1, 99, new Uint8Array(0), 11)).toBe(true);
      expect(await states.save('others', 0, 5, new Uint8Array([1]), 12)).toBe(true);
      const loaded = (await states.load('processors', 0))!;
      expect(loaded.offset).toBe(1234);
      expect(loaded.savedAtMs).toBe(10);
      expect(Buffer.from(loaded.state).equals(Buffer.from(view))).toBe(true);
      expect((await states.load('processors', 1))!.state).toHaveLength(0);
      expect(Array.from((await states.load('others', 0))!.state)).toEqual([1]);
    });

    it('never lets an older offset overwrite a newer one (a previous owner saving late)', async () => {
      const states = new PgPartitionState(meta);
      expect(await states.save('g', 7, 100, new Uint8Array([1]), 1)).toBe(true);
      expect(await states.save('g', 7, 200, new Uint8Array([2]), 2)).toBe(true);
      expect(await states.save('g', 7, 150, new Uint8Array([3]), 3)).toBe(false);
      expect(await states.save('g', 7, 200, new Uint8Array([4]), 4)).toBe(true);
      expect(await states.load('g', 7)).toEqual({ offset: 200, state: new Uint8Array([4]), savedAtMs: 4 });
      expect(await states.delete('g', 7)).toBe(true);
      expect(await states.save('g', 7, 0, new Uint8Array([5]), 5)).toBe(true);
      await expect(states.save('g', -1, 0, new Uint8Array())).rejects.toThrow(/partition -1 is invalid/);
    });
  });
});
