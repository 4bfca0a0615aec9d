/**
 * Runs a real single-node VictoriaMetrics (Debian's `victoria-metrics`, 1.79) for tests: a free port on
 * 127.0.0.1, a temporary data directory, started and stopped by its PID.
 *
 * Flags, and why:
 * - `-search.latencyOffset=0s`: by default VictoriaMetrics hides the newest 30 s of data from queries (points
 *   that may still be incomplete in a scraping setup); tests read what they just wrote.
 * - `-search.disableCache`: no rollup-result cache, so a query after a write never answers from a cached
 *   answer computed before it.
 * - `-dedup.minScrapeInterval=1ms`: present in 1.79 ("leave only the last sample in every time series per each
 *   discrete interval equal to -dedup.minScrapeInterval"). With 1 ms every distinct millisecond is its own
 *   interval, so only samples with the same series and timestamp collapse: a batch replayed from the bus (at
 *   least once delivery) leaves no visible duplicate, and nothing else is thinned. VictoriaMetrics applies it at
 *   query time and in background merges. Production setups should set the same flag (see docs).
 * - `-retentionPeriod=100y`: tests may write timestamps far from now.
 *
 * VictoriaMetrics makes new series searchable in the background (about a second); {@link VictoriaMetrics.forceFlush}
 * (`/internal/force_flush`) makes everything written so far searchable at once.
 *
 * Absent binary: {@link victoriaMetricsAvailable} says so and tests skip with the install command, except
 * under CI=true, where {@link requireVictoriaMetrics} throws.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { freePort, tempDir, waitFor } from './helpers.js';

export const VICTORIA_METRICS_INSTALL = 'apt-get update && apt-get install -y victoria-metrics';
const BIN = process.env.VICTORIA_METRICS_BIN ?? 'victoria-metrics';

export const victoriaMetricsAvailable =
  spawnSync('sh', ['-c', `command -v "$0"`, BIN], { stdio: 'ignore' }).status === 0;

/**
 * Call at the top of a test file: true when the binary is there; false (with a message naming the install
 * command) when it is not, so the file's tests skip; throws under CI=true, where a skipped test would hide a
 * broken setup.
 */
export function requireVictoriaMetrics(what: string): boolean {
  if (victoriaMetricsAvailable) return true;
  const msg = `${what} needs VictoriaMetrics (\`${BIN}\` not found on PATH): run \`${VICTORIA_METRICS_INSTALL}\``;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`skipping: ${msg}`);
  return false;
}

export interface VictoriaMetrics {
  /** Base URL, e.g. `http://127.0.0.1:41234`: `/api/v1/query`, `/api/v1/export`, ... */
  readonly url: string;
  /** Its remote-write endpoint. */
  readonly writeUrl: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Makes everything written so far searchable now (VictoriaMetrics otherwise indexes in the background). */
  forceFlush(): Promise<void>;
  /** What it printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export async function startVictoriaMetrics(extraFlags: string[] = []): Promise<VictoriaMetrics> {
  const port = await freePort();
  const dataDir = tempDir('tw-vm-');
  const proc: ChildProcess = spawn(
    BIN,
    [
      `-storageDataPath=${dataDir}`,
      `-httpListenAddr=127.0.0.1:${port}`,
      '-search.latencyOffset=0s',
      '-search.disableCache',
      '-dedup.minScrapeInterval=1ms',
      '-retentionPeriod=100y',
      '-loggerLevel=WARN',
      ...extraFlags,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      process.kill(proc.pid!, 'SIGTERM');
      const timer = setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGKILL');
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      `VictoriaMetrics /health on port ${port}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`exited with code ${proc.exitCode}: ${out}`);
        const res = await fetch(`${url}/health`);
        return res.ok ? true : undefined;
      },
      // Generous: on a loaded machine (test files side by side) VictoriaMetrics may take long to open its data.
      90_000,
      50,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    writeUrl: `${url}/api/v1/write`,
    dataDir,
    pid: proc.pid!,
    async forceFlush() {
      const res = await fetch(`${url}/internal/force_flush`);
      if (!res.ok) throw new Error(`VictoriaMetrics force_flush: HTTP ${res.status} ${await res.text()}`);
    },
    output: () => out,
    stop,
  };
}
