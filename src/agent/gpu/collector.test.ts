/**
 * The GPU collector against the fake nvidia-smi of testdata/nvidia-smi (fixtures modelled on H100 and A100
 * output, not real captures; see make-fixtures.py), run as a real child process in loop mode.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import type { SeriesBatch } from '../../model/batch.js';
import { createAgentLogger } from '../log.js';
import { Recorder } from '../recorder.js';
import { GpuCollector } from './collector.js';

const FAKE = path.resolve(import.meta.dirname, '../../../testdata/nvidia-smi/bin/nvidia-smi');
const MIB = 1024 * 1024;

const stoppers: (() => void)[] = [];
afterEach(() => {
  for (const s of stoppers.splice(0)) s();
  for (const k of Object.keys(process.env)) if (k.startsWith('FAKE_NVIDIA_SMI_')) delete process.env[k];
});

function run(opts: {
  scenario: string;
  intervalMs?: number;
  processesIntervalMs?: number;
  rediscoverIntervalMs?: number;
  nvidiaSmi?: string;
  kernelLog?: string[];
}) {
  process.env.FAKE_NVIDIA_SMI_SCENARIO = opts.scenario;
  const log = mkdtempSync(path.join(os.tmpdir(), 'tw-gpu-'));
  process.env.FAKE_NVIDIA_SMI_LOG = path.join(log, 'starts');
  const lines: Record<string, unknown>[] = [];
  const recorder = new Recorder();
  const gpu = new GpuCollector({
    nvidiaSmi: opts.nvidiaSmi ?? FAKE,
    intervalMs: opts.intervalMs ?? 200,
    processesIntervalMs: opts.processesIntervalMs ?? 1000,
    rediscoverIntervalMs: opts.rediscoverIntervalMs ?? 600_000,
    shipIntervalMs: 1000,
    procRoot: '/proc',
    recorder,
    nodeLabels: { node_id: 'gpu-node-1' },
    logger: createAgentLogger('debug', (l) => lines.push(JSON.parse(l))),
    kernelLog: opts.kernelLog,
  });
  gpu.start();
  stoppers.push(() => gpu.stop());
  const batches: SeriesBatch[] = [];
  const collect = () => {
    const b = recorder.flush();
    if (b) batches.push(b);
  };
  return { gpu, lines, batches, collect, startsFile: process.env.FAKE_NVIDIA_SMI_LOG };
}

/** Every sample of every batch as {labels, t, v}. */
function samples(batches: SeriesBatch[]) {
  const out: { labels: Record<string, string>; t: number; v: number }[] = [];
  for (const b of batches)
    for (let i = 0; i < b.series.length; i++)
      for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++)
        out.push({ labels: { ...b.series[i]! }, t: b.timestamps[j]!, v: b.values[j]! });
  return out;
}

/** Waits for `probe` to hold (polled every 50 ms); fails naming `what` after `ms`. */
async function until(what: string, probe: () => boolean, ms = 15_000): Promise<void> {
  await waitFor(what, probe, ms, 50);
}

describe('GPU collection with nvidia-smi in loop mode', () => {
  it('reads 8 H100s into canonical series in base units, mean with _min/_max, one nvidia-smi for all samples', async () => {
    const r = run({ scenario: 'h100-8x' });
    await until('readings', () => r.gpu.counters.lines >= 8 * 12);
    r.collect();
    const all = samples(r.batches);
    const of = (name: string, gpu: string) =>
      all.filter((s) => s.labels.__name__ === name && s.labels.gpu === gpu);
    expect(
      new Set(all.filter((s) => s.labels.__name__ === 'gpu_utilization_ratio').map((s) => s.labels.gpu)).size,
    ).toBe(8);
    const total = of('gpu_memory_total_bytes', '0')[0]!;
    expect(total.v).toBe(81559 * MIB);
    expect(total.labels).toMatchObject({
      node_id: 'gpu-node-1',
      gpu: '0',
      gpu_uuid: 'GPU-5d1f0b6e-8c2a-4f3b-9e71-0a6c4d2b9f10',
    });
    expect(of('gpu_sm_clock_max_hertz', '0')[0]!.v).toBe(1980e6);
    expect(of('gpu_power_limit_watts', '0')[0]!.v).toBe(700);
    // [N/A] gives no sample, never a zero.
    expect(all.some((s) => s.labels.__name__ === 'gpu_fan_speed_ratio')).toBe(false);
    // Ratios are 0..1; the idle phase sets the gpu_idle throttle reason.
    expect(
      all.filter((s) => s.labels.__name__ === 'gpu_utilization_ratio').every((s) => s.v >= 0 && s.v <= 1),
    ).toBe(true);
    expect(
      all.some(
        (s) => s.labels.__name__ === 'gpu_throttled_max' && s.labels.reason === 'gpu_idle' && s.v === 1,
      ),
    ).toBe(true);
    expect(
      new Set(all.filter((s) => s.labels.__name__ === 'gpu_throttled').map((s) => s.labels.reason)).size,
    ).toBe(9);
    // Read 5x per ship interval: the stall of GPU 3 (two readings at 0 %) survives in _min.
    expect(of('gpu_utilization_ratio_min', '3').some((s) => s.v === 0)).toBe(true);
    expect(of('gpu_utilization_ratio_max', '3').some((s) => s.v >= 0.97)).toBe(true);
    expect(
      all.find(
        (s) =>
          s.labels.__name__ === 'gpu_ecc_errors_total' &&
          s.labels.gpu === '5' &&
          s.labels.type === 'corrected',
      )!.v,
    ).toBe(2);
    const starts = readFileSync(r.startsFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('--query-gpu='));
    expect(starts).toHaveLength(1);
    expect(starts[0]).toContain('-lms 200');
  });

  it('attributes each GPU to the job and rank of the process using it, via /proc/PID/environ', async () => {
    const children: ChildProcess[] = [];
    const proc = (env: Record<string, string>) => {
      const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], {
        env: { PATH: process.env.PATH!, ...env },
        stdio: 'ignore',
      });
      children.push(c);
      return c.pid!;
    };
    stoppers.push(() => {
      for (const c of children) c.kill('SIGKILL');
    });
    const pids = [
      ...[0, 1, 2, 3].map((i) =>
        proc({ TRAINWATCH_JOB_ID: 'llama-7b-0042', RANK: String(i), LOCAL_RANK: String(i) }),
      ),
      ...[0, 1, 2].map((i) =>
        proc({ SLURM_JOB_ID: '777', SLURM_PROCID: String(8 + i), SLURM_LOCALID: String(i) }),
      ),
      proc({ TORCHELASTIC_RUN_ID: 'abc', RANK: '3', LOCAL_RANK: '3' }),
      proc({ TRAINWATCH_JOB_ID: 'llama-7b-0042', RANK: '9' }), // a second job's process on GPU 7: shared
    ];
    process.env.FAKE_NVIDIA_SMI_PIDS = pids.join(',');
    const r = run({ scenario: 'h100-8x', processesIntervalMs: 1000 });
    let all = samples(r.batches);
    const latest = (gpu: string) =>
      all.filter((s) => s.labels.__name__ === 'gpu_memory_used_bytes' && s.labels.gpu === gpu).at(-1)?.labels;
    // Until the process table has been read and every GPU's newest sample carries its owner (the shared
    // GPU 7 has per-process samples of both jobs).
    await until('attribution of every GPU', () => {
      r.collect();
      all = samples(r.batches);
      return (
        latest('6')?.job_id === '777' &&
        latest('0')?.job_id === 'llama-7b-0042' &&
        all.some((s) => s.labels.__name__ === 'gpu_process_memory_used_bytes' && s.labels.rank === '9')
      );
    });
    for (const i of [0, 1, 2, 3])
      expect(latest(String(i))).toMatchObject({
        job_id: 'llama-7b-0042',
        rank: String(i),
        local_rank: String(i),
      });
    expect(latest('4')).toMatchObject({ job_id: '777', rank: '8', local_rank: '0' });
    expect(latest('6')).toMatchObject({ job_id: '777', rank: '10' });
    expect(latest('7')).toBeDefined();
    expect(latest('7')?.job_id).toBeUndefined(); // two jobs on one GPU: no single owner
    const perProcess = all.filter(
      (s) => s.labels.__name__ === 'gpu_process_memory_used_bytes' && s.labels.gpu === '7',
    );
    expect(perProcess.some((s) => s.labels.job_id === 'abc' && s.labels.rank === '3')).toBe(true);
    expect(
      perProcess.some(
        (s) => s.labels.job_id === 'llama-7b-0042' && s.labels.rank === '9' && s.v === 512 * MIB,
      ),
    ).toBe(true);
    expect(
      all.some((s) => s.labels.__name__ === 'gpu_info' && s.labels.name === 'NVIDIA H100 80GB HBM3'),
    ).toBe(true);
  });

  it('drops fields an older driver refuses (after trying their other name) and keeps reading', async () => {
    const r = run({ scenario: 'a100-old-driver' });
    await until('readings', () => r.gpu.counters.lines >= 8);
    r.collect();
    const all = samples(r.batches);
    expect(
      all.some(
        (s) =>
          s.labels.__name__ === 'gpu_utilization_ratio' &&
          s.labels.gpu === '2' &&
          Math.abs(s.v - 0.12) < 1e-9,
      ),
    ).toBe(true);
    expect(all.some((s) => s.labels.__name__ === 'gpu_throttled')).toBe(false);
    expect(r.lines.some((l) => l.msg === 'nvidia-smi does not know a field; asking for its other name')).toBe(
      true,
    );
    expect(
      r.lines.some((l) => l.msg === 'nvidia-smi does not know a field; reading the GPUs without it'),
    ).toBe(true);
    // [Not Supported] ECC on GPU 1 gives no sample; GPU 0 has one.
    const ecc = (gpu: string) =>
      all.some(
        (s) =>
          s.labels.__name__ === 'gpu_ecc_errors_total' &&
          s.labels.gpu === gpu &&
          s.labels.type === 'corrected',
      );
    expect(ecc('1')).toBe(false);
    expect(ecc('0')).toBe(true);
  });

  it('reports a lost GPU (gpu_up 0), ignores error lines, and says when a GPU stops answering', async () => {
    const r = run({ scenario: 'a100-4x-gpu-lost', intervalMs: 100 });
    // Batches closed every 250 ms, as the agent would (gpu_up is averaged per batch at this read rate).
    await until(
      'GPU 3 reported gone',
      () => {
        r.collect();
        return r.lines.some((l) => l.msg === 'GPU stopped answering in nvidia-smi');
      },
      10_000,
    );
    const up3Of = () =>
      samples(r.batches).filter((s) => s.labels.__name__ === 'gpu_up' && s.labels.gpu === '3');
    // The batch closed after the loss reports it.
    await until('gpu_up 0 for GPU 3', () => {
      r.collect();
      return up3Of().at(-1)?.v === 0;
    });
    const up3 = up3Of();
    expect(up3.some((s) => s.v === 1)).toBe(true);
    expect(up3.at(-1)!.v).toBe(0);
    expect(r.gpu.counters.badLines).toBeGreaterThanOrEqual(1);
    const up0 = samples(r.batches).filter((s) => s.labels.__name__ === 'gpu_up' && s.labels.gpu === '0');
    expect(up0.every((s) => s.v === 1)).toBe(true);
  });

  it('restarts nvidia-smi when it dies, and says once that it is missing', async () => {
    process.env.FAKE_NVIDIA_SMI_FAIL_AFTER = '2';
    const r = run({ scenario: 'h100-8x' });
    await until('a restart', () => r.gpu.counters.restarts >= 1 && r.gpu.counters.lines >= 24, 10_000);
    expect(
      r.lines.some(
        (l) =>
          l.msg === 'nvidia-smi stopped; restarting it' && String(l.output).includes("couldn't communicate"),
      ),
    ).toBe(true);

    // Looked for again every 50 ms: three more tries must not repeat the notice.
    const missing = run({
      scenario: 'h100-8x',
      nvidiaSmi: '/nonexistent/bin/nvidia-smi',
      rediscoverIntervalMs: 50,
    });
    await until('the missing notice', () =>
      missing.lines.some((l) => String(l.msg).startsWith('nvidia-smi not found')),
    );
    const before = missing.gpu.counters.restarts;
    await until('three more looks for nvidia-smi', () => missing.gpu.counters.restarts >= before + 3);
    expect(missing.lines.filter((l) => String(l.msg).startsWith('nvidia-smi not found'))).toHaveLength(1);
    expect(missing.gpu.counters.up).toBe(0);
  });
});

describe('XID errors from the kernel log', () => {
  const KERNEL_LOG = path.resolve(import.meta.dirname, '../../../testdata/kernel-log/a100-xid.txt');
  /** `dmesg --follow` stand-in: prints the fixture log, then keeps following (sleeps). */
  const follow = ['/bin/sh', '-c', `cat '${KERNEL_LOG}'; exec sleep 60`];

  it("counts each GPU's XIDs by its PCI address, with the newest code; GPUs without one report zero", async () => {
    const r = run({ scenario: 'a100-4x-gpu-lost', kernelLog: follow });
    const xidOf = (name: string, gpu: string) => {
      r.collect();
      return samples(r.batches)
        .filter((s) => s.labels.__name__ === name && s.labels.gpu === gpu)
        .at(-1)?.v;
    };
    // 00000000:47:00.0 is GPU 2 (two XID 13), 0F GPU 1 (XID 79, fallen off the bus), 07 GPU 0 (XID 94).
    await until('XID counts', () => xidOf('gpu_xid_errors_total', '1') === 1);
    expect(xidOf('gpu_xid_errors_total', '2')).toBe(2);
    expect(xidOf('gpu_xid_last_error', '2')).toBe(13);
    expect(xidOf('gpu_xid_last_error', '1')).toBe(79);
    expect(xidOf('gpu_xid_errors_total', '0')).toBe(1);
    expect(xidOf('gpu_xid_last_error', '0')).toBe(94);
    expect(xidOf('gpu_xid_errors_total', '3')).toBe(0);
    expect(xidOf('gpu_xid_last_error', '3')).toBe(0);
    const series = samples(r.batches).find((s) => s.labels.__name__ === 'gpu_xid_errors_total')!;
    expect(series.labels).toMatchObject({ node_id: 'gpu-node-1' });
    expect(series.labels.gpu_uuid).toMatch(/^GPU-/);
  });

  it('reports no XID series, never a zero, when the kernel log cannot be read, and says so once', async () => {
    const r = run({
      scenario: 'a100-4x-gpu-lost',
      kernelLog: [
        '/bin/sh',
        '-c',
        'echo "dmesg: read kernel buffer failed: Operation not permitted" >&2; exit 1',
      ],
    });
    await until('readings', () => r.gpu.counters.lines >= 8);
    await until('the warning', () =>
      r.lines.some((l) => String(l.msg).includes('cannot read the kernel log')),
    );
    r.collect();
    expect(samples(r.batches).some((s) => s.labels.__name__?.startsWith('gpu_xid_'))).toBe(false);
    const warning = r.lines.find((l) => String(l.msg).includes('cannot read the kernel log'))!;
    expect(String(warning.detail)).toContain('Operation not permitted');
  });
});
