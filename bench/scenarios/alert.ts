/**
 * Alert latency: the time from an offending sample being sent (a training job's loss becomes NaN) to a
 * webhook receiving the alert.
 *
 * - Prometheus + Alertmanager, configured for speed: the rule below evaluated every 1 s with `for: 0s`,
 *   Alertmanager with `group_wait: 0s`, posting to the harness's webhook receiver.
 * - trainwatch: the same rule file loaded into its rule engine, and its streaming detectors (a NaN loss is a
 *   divergence), notifying the same receiver through its webhook notifier. The first notification that names
 *   the probe's job counts.
 *
 * Each probe is a new job: 20 s of healthy loss history, a pause of random length (so that probes land at
 * every phase of a 1 s evaluation interval), then one NaN sample; the clock starts just before that sample
 * is sent.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { BenchContext } from '../harness/context.js';
import { encodeProbe, sendProbe } from '../harness/probe.js';
import type { PayloadFormat } from '../harness/replay.js';
import type { System } from '../harness/systems.js';
import { TRAINWATCH_TENANT } from '../harness/systems.js';

export const ALERT_NAME = 'BenchTrainLossNaN';
const WAIT_MS = 30_000;

/** The Prometheus alerting-rule file both Prometheus and trainwatch load. */
export function writeRulesFile(dir: string): string {
  const file = path.join(dir, 'bench-rules.yml');
  writeFileSync(
    file,
    toYaml({
      groups: [
        {
          name: 'bench',
          interval: '1s',
          rules: [
            {
              alert: ALERT_NAME,
              // NaN is the only value not equal to itself.
              expr: 'train_loss != train_loss',
              for: '0s',
              labels: { severity: 'critical' },
              annotations: { summary: 'training loss is NaN' },
            },
          ],
        },
      ],
    }),
  );
  return file;
}

export const ALERT_FIGURES = [
  ['offending sample sent → webhook received — median', 'ms'],
  ['offending sample sent → webhook received — p99', 'ms'],
] as const;

export function recordAlertUnavailable(ctx: BenchContext, sys: System['name'], why: string): void {
  for (const [name, unit] of ALERT_FIGURES)
    ctx.results.set('alert latency', name, unit, 'lower', sys, undefined, why);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends the probes to `sys` and records how long each took to reach the webhook receiver. */
export async function measureAlertLatency(
  ctx: BenchContext,
  sys: System,
  format: PayloadFormat,
): Promise<void> {
  const run = Date.now().toString(36);
  const latencies: number[] = [];
  const sources: string[] = [];
  let missed = 0;
  for (let i = 1; i <= ctx.sizes.alertProbes; i++) {
    const jobId = `bench-alert-${run}-${i}`;
    const labels = {
      __name__: 'train_loss',
      tenant: TRAINWATCH_TENANT,
      job_id: jobId,
      node_id: `${jobId}-node-0`,
      rank: '0',
    };
    const now = Date.now();
    const history = Array.from({ length: 20 }, (_, k) => now - (20 - k) * 1000);
    await sendProbe(
      sys.baseUrl,
      format,
      encodeProbe(format, [
        { labels, timestamps: history, values: history.map((_, k) => 2.5 - k * 0.01 + 0.005 * Math.sin(k)) },
      ]),
    );
    // A random pause: the probe lands at a random phase of the rule evaluation interval.
    await sleep(1500 + Math.random() * 1000);
    const body = encodeProbe(format, [{ labels, timestamps: [Date.now()], values: [Number.NaN] }]);
    const t0 = performance.now();
    await sendProbe(sys.baseUrl, format, body);
    const arrival = await ctx.webhook.waitFor(jobId, WAIT_MS);
    if (!arrival) {
      missed++;
      ctx.log(`  ${sys.name}: no alert for ${jobId} within ${WAIT_MS / 1000} s`);
      continue;
    }
    latencies.push(arrival.atMs - t0);
    sources.push(arrival.body.includes(ALERT_NAME) ? 'rule' : 'detector');
  }
  latencies.sort((a, b) => a - b);
  const median = latencies.length ? latencies[Math.floor((latencies.length - 1) / 2)] : undefined;
  const p99 = latencies.length
    ? latencies[Math.min(latencies.length - 1, Math.ceil(0.99 * latencies.length) - 1)]
    : undefined;
  const bySource = sources.reduce<Record<string, number>>((a, s) => {
    a[s] = (a[s] ?? 0) + 1;
    return a;
  }, {});
  const parts: string[] = [];
  if (missed)
    parts.push(`${missed} of ${ctx.sizes.alertProbes} probes got no alert within ${WAIT_MS / 1000} s`);
  if (sys.name === 'trainwatch' && sources.length)
    parts.push(
      `first notification from: ${Object.entries(bySource)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ')}`,
    );
  const note = parts.length ? parts.join('; ') : undefined;
  ctx.results.set('alert latency', ALERT_FIGURES[0][0], 'ms', 'lower', sys.name, median, note);
  ctx.results.set('alert latency', ALERT_FIGURES[1][0], 'ms', 'lower', sys.name, p99, note);
  ctx.log(`  ${sys.name}: alert latency median ${median?.toFixed(0)} ms, p99 ${p99?.toFixed(0)} ms`);
}
