/**
 * Scraping real output: the recorded dcgm-exporter page served over HTTP (canonical names added, originals
 * kept, staleness when a series disappears), and Debian's prometheus-node-exporter started on a free port.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/agent/log.js';
import { Recorder } from '../../src/agent/recorder.js';
import { ScrapeTarget } from '../../src/agent/scrape/scraper.js';
import { isStaleNaN, type SeriesBatch } from '../../src/model/batch.js';
import { freePort, REPO_ROOT, waitFor } from '../support/helpers.js';

const DCGM = readFileSync(path.join(REPO_ROOT, 'testdata/scrape/dcgm-exporter-l4.txt'), 'utf8');
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function samples(b: SeriesBatch | undefined) {
  const out: { labels: Record<string, string>; t: number; v: number }[] = [];
  if (!b) return out;
  for (let i = 0; i < b.series.length; i++)
    for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++)
      out.push({ labels: { ...b.series[i]! }, t: b.timestamps[j]!, v: b.values[j]! });
  return out;
}

async function serve(body: () => string): Promise<string> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(body());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => srv.close());
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/metrics`;
}

function target(
  url: string,
  recorder: Recorder,
  extra: Partial<ConstructorParameters<typeof ScrapeTarget>[0]> = {},
) {
  return new ScrapeTarget({
    url,
    name: 'dcgm',
    intervalMs: 15_000,
    timeoutMs: 2000,
    labels: {},
    honorLabels: false,
    nodeLabels: { node_id: 'gpu-node-7' },
    recorder,
    logger: silentLogger,
    ...extra,
  });
}

describe('scraping dcgm-exporter', () => {
  it('ships the original DCGM series and canonical ones in base units, with the GPU job labels', async () => {
    const url = await serve(() => DCGM);
    const rec = new Recorder();
    const t = target(url, rec, {
      gpuAttribution: (uuid): Record<string, string> =>
        uuid === 'GPU-c2f76b33-7953-256e-8f33-1343419b1a1c' ? { job_id: 'job-9', rank: '0' } : {},
    });
    await t.scrapeOnce();
    const all = samples(rec.flush());
    const one = (name: string) => all.filter((s) => s.labels.__name__ === name);
    expect(one('DCGM_FI_DEV_FB_FREE')[0]!.labels).toMatchObject({
      job: 'dcgm',
      node_id: 'gpu-node-7',
      modelName: 'NVIDIA L4',
      UUID: 'GPU-c2f76b33-7953-256e-8f33-1343419b1a1c',
    });
    // The exporter's own Hostname label is kept; our node_id is added.
    const free = one('gpu_memory_free_bytes')[0]!;
    expect(free.v).toBe(22563 * 1024 * 1024);
    expect(free.labels).toEqual({
      __name__: 'gpu_memory_free_bytes',
      node_id: 'gpu-node-7',
      gpu: '0',
      gpu_uuid: 'GPU-c2f76b33-7953-256e-8f33-1343419b1a1c',
      job_id: 'job-9',
      rank: '0',
    });
    expect(one('gpu_sm_clock_hertz')[0]!.v).toBe(210e6);
    expect(one('gpu_power_watts')[0]!.v).toBeCloseTo(16.365, 9);
    expect(one('gpu_utilization_ratio')[0]!.v).toBe(0);
    expect(one('gpu_energy_joules_total')[0]!.v).toBeCloseTo(4742.776, 6);
    expect(one('gpu_pcie_transmit_bytes_per_second')[0]!.v).toBe(112603);
    expect(one('up')[0]!.v).toBe(1);
    expect(one('scrape_samples_scraped')[0]!.v).toBe(23);
  });

  it('leaves out canonical GPU series nvidia-smi already provides, keeps DCGM-only ones', async () => {
    const url = await serve(() => DCGM);
    const rec = new Recorder();
    await target(url, rec, { nvidiaSmiActive: () => true }).scrapeOnce();
    const names = new Set(samples(rec.flush()).map((s) => s.labels.__name__));
    expect(names.has('DCGM_FI_DEV_GPU_UTIL')).toBe(true);
    expect(names.has('gpu_utilization_ratio')).toBe(false);
    expect(names.has('gpu_tensor_active_ratio')).toBe(true);
  });

  it('marks disappeared series stale, and every series stale with up 0 when the target fails', async () => {
    let page = DCGM;
    const url = await serve(() => page);
    const rec = new Recorder();
    const t = target(url, rec);
    await t.scrapeOnce();
    rec.flush();
    page = DCGM.split('\n')
      .filter((l) => !l.startsWith('DCGM_FI_DEV_SM_CLOCK'))
      .join('\n');
    await t.scrapeOnce();
    const second = samples(rec.flush());
    const sm = second.filter(
      (s) => s.labels.__name__ === 'DCGM_FI_DEV_SM_CLOCK' || s.labels.__name__ === 'gpu_sm_clock_hertz',
    );
    expect(sm).toHaveLength(2);
    expect(sm.every((s) => isStaleNaN(s.v))).toBe(true);
    page = 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} not-a-number\n';
    await t.scrapeOnce();
    const third = samples(rec.flush());
    expect(third.find((s) => s.labels.__name__ === 'up')!.v).toBe(0);
    // A bad page is refused whole: no sample of it, and the old series are marked stale.
    expect(third.some((s) => s.labels.__name__ === 'DCGM_FI_DEV_FB_FREE' && isStaleNaN(s.v))).toBe(true);
    expect(third.some((s) => s.labels.__name__ === 'DCGM_FI_DEV_GPU_UTIL' && !isStaleNaN(s.v))).toBe(false);
  });
});

const haveNodeExporter = spawnSync('prometheus-node-exporter', ['--version']).status === 0;

describe.skipIf(!haveNodeExporter && process.env.CI !== 'true')(
  'scraping a live prometheus-node-exporter (Debian)',
  () => {
    it('parses its whole page: node_* counters, summaries, job/instance labels', async () => {
      const port = await freePort();
      const child: ChildProcess = spawn(
        'prometheus-node-exporter',
        [`--web.listen-address=127.0.0.1:${port}`],
        { stdio: 'ignore' },
      );
      cleanups.push(() => child.kill('SIGTERM'));
      const rec = new Recorder();
      const t = target(`http://127.0.0.1:${port}/metrics`, rec, { name: 'node' });
      const all = await waitFor('a successful scrape', async () => {
        await t.scrapeOnce();
        const s = samples(rec.flush());
        return s.find((x) => x.labels.__name__ === 'up')?.v === 1 ? s : undefined;
      });
      const cpu = all.filter((s) => s.labels.__name__ === 'node_cpu_seconds_total');
      expect(cpu.length).toBeGreaterThan(0);
      expect(cpu[0]!.labels).toMatchObject({
        job: 'node',
        instance: `127.0.0.1:${port}`,
        node_id: 'gpu-node-7',
      });
      expect(
        all.filter((s) => s.labels.__name__ === 'go_gc_duration_seconds').map((s) => s.labels.quantile),
      ).toContain('0.5');
      expect(all.find((s) => s.labels.__name__ === 'scrape_samples_scraped')!.v).toBeGreaterThan(200);
    });
  },
);
