/**
 * The load generator's ceiling: the same replay as the ingest scenario, against the null sink (a process
 * that reads each request and discards it). A server figure close to this ceiling is limited by the
 * generator (and by the two of them sharing the machine's cores), not by the server.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { BenchContext } from '../harness/context.js';
import { REPO_ROOT } from '../harness/generator.js';
import { CpuMeter } from '../harness/proc.js';
import type { PayloadFormat } from '../harness/replay.js';

export interface NullSinkProcess {
  readonly pid: number;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startNullSinkProcess(): Promise<NullSinkProcess> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'harness', 'null-sink-main.ts')],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('null sink did not start within 30 s')), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`null sink exited with ${code}`)));
  });
  return {
    pid: proc.pid!,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Ceiling {
  readonly samplesPerSec: number;
  readonly generatorCores: number;
  readonly sinkCores: number;
}

/** Replays the main data set against the null sink in each format; returns samples/s per format. */
export async function runCeiling(
  ctx: BenchContext,
  sink: NullSinkProcess,
): Promise<Record<PayloadFormat, Ceiling>> {
  const out = {} as Record<PayloadFormat, Ceiling>;
  for (const format of ['remote-write', 'native'] as const) {
    const meter = new CpuMeter({ generator: ctx.generator.pid, sink: sink.pid }).start();
    const r = await ctx.generator.replay('main', {
      baseUrl: sink.url,
      format,
      concurrency: ctx.sizes.concurrency,
      targetSamplesPerSec: 0,
      maxSeconds: ctx.sizes.replaySeconds,
    });
    const usage = meter.stop();
    if (r.samplesAccepted !== r.samplesTotal) throw new Error(`null sink refused samples: ${r.firstError}`);
    out[format] = {
      samplesPerSec: r.samplesPerSec,
      generatorCores: usage.cpu.generator!.cores,
      sinkCores: usage.cpu.sink!.cores,
    };
    ctx.log(
      `  ${format}: ${(r.samplesPerSec / 1e6).toFixed(2)} M samples/s, ${(r.bytesSent / 2 ** 20 / (r.elapsedMs / 1000)).toFixed(0)} MiB/s; generator ${usage.cpu.generator!.cores.toFixed(2)} cores, sink ${usage.cpu.sink!.cores.toFixed(2)} cores`,
    );
  }
  ctx.results.details.generatorCeiling = out;
  return out;
}
