import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobStore } from './jobs.js';
import { MetaStore } from './meta-store.js';

function store() {
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-meta-')), 'meta.db'));
  return { meta, jobs: new JobStore(meta, 60_000) };
}

describe('job store', () => {
  it('merges start events from every rank and keeps the earliest start', async () => {
    const { jobs } = store();
    jobs.applyEvent('t', {
      kind: 'start',
      jobId: 'j',
      timeMs: 2000,
      name: 'bert',
      config: { lr: 1 },
      tags: ['a'],
    });
    jobs.applyEvent('t', {
      kind: 'start',
      jobId: 'j',
      timeMs: 1000,
      config: { layers: 2 },
      tags: ['b', 'a'],
      worldSize: 8,
    });
    await jobs.flush();
    expect(await jobs.get('t', 'j', 3000)).toMatchObject({
      name: 'bert',
      startMs: 1000,
      config: { lr: 1, layers: 2 },
      tags: ['a', 'b'],
      worldSize: 8,
      status: 'running',
    });
  });

  it('never leaves a final status, and marks a silent running job unknown', async () => {
    const { jobs } = store();
    jobs.applyEvent('t', { kind: 'update', jobId: 'q', timeMs: 0, status: 'queued' });
    jobs.noteSamples('t', 'q', 10, 20);
    jobs.applyEvent('t', { kind: 'finish', jobId: 'q', timeMs: 30, status: 'failed' });
    jobs.applyEvent('t', { kind: 'start', jobId: 'q', timeMs: 40 });
    jobs.noteSamples('t', 'live', 0, 1000);
    await jobs.flush();
    expect(await jobs.get('t', 'q', 50)).toMatchObject({ status: 'failed', endMs: 30, lastSampleMs: 20 });
    expect((await jobs.get('t', 'live', 2000))!.status).toBe('running');
    expect((await jobs.get('t', 'live', 1000 + 60_001))!.status).toBe('unknown');
  });

  it('keeps tenants apart and survives a reopen', async () => {
    const { meta, jobs } = store();
    jobs.applyEvent('a', { kind: 'start', jobId: 'same', timeMs: 1, name: 'A' });
    jobs.applyEvent('b', { kind: 'start', jobId: 'same', timeMs: 1, name: 'B' });
    await jobs.flush();
    const again = new JobStore(meta, 60_000);
    expect((await again.list('a', 2)).map((j) => j.name)).toEqual(['A']);
    expect(await again.list(null, 2)).toHaveLength(2);
    expect(await again.list('a', 2, { search: 'sam' })).toHaveLength(1);
    expect(await again.list('a', 2, { search: '%' })).toHaveLength(0);
  });
});

describe('job store: a poison job (issue 16, item 3)', () => {
  it('a job that cannot be written does not keep the other jobs of its flush from being written', async () => {
    const { jobs } = store();
    const dropped: string[] = [];
    jobs.onDroppedDelta = (tenant, jobId) => dropped.push(`${tenant}/${jobId}`);
    // Deeper than JSON.stringify can go: the collector refuses such events now, but one may already be on
    // the bus of an earlier build.
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) deep = { d: deep };
    jobs.applyEvent('a', { kind: 'start', jobId: 'poison', timeMs: 1000, config: deep });
    jobs.applyEvent('b', { kind: 'start', jobId: 'fine', timeMs: 1000, name: 'ok' });
    await jobs.flush();
    expect(await jobs.get('b', 'fine', 2000)).toMatchObject({ name: 'ok', status: 'running' });
    expect(dropped).toEqual(['a/poison']);
    // Later flushes go on.
    jobs.applyEvent('b', { kind: 'finish', jobId: 'fine', timeMs: 1500, status: 'completed' });
    await jobs.flush();
    expect(await jobs.get('b', 'fine', 2000)).toMatchObject({ status: 'completed' });
  });
});
