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

/** Figures: the first notification from any source, and the notification of the shared PromQL rule. */
export const ALERT_FIGURES = [
  ['offending sample sent → first webhook (any rule or detector) — median', 'ms'],
  ['offending sample sent → first webhook (any rule or detector) — p99', 'ms'],
  ['offending sample sent → webhook from the same PromQL rule (1 s evaluation) — median', 'ms'],
  ['offending sample sent → webhook from the same PromQL rule (1 s evaluation) — p99', 'ms'],
] as const;

export function recordAlertUnavailable(ctx: BenchContext, sys: System['name'], why: string): void {
  for (const [name, unit] of ALERT_FIGURES)
    ctx.results.set('alert latency', name, unit, 'lower', sys, undefined, why);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The rule's state from GET /api/v1/rules (health, last evaluation, last error), for notes. */
async function ruleStatus(sys: System): Promise<string> {
  try {
    const body = (await (await fetch(new URL('/api/v1/rules', sys.baseUrl))).json()) as {
      data?: { groups?: { rules?: Record<string, unknown>[] }[] };
    };
    const rule = body.data?.groups?.flatMap((g) => g.rules ?? []).find((r) => r.name === ALERT_NAME);
    if (!rule) return 'absent from GET /api/v1/rules';
    return JSON.stringify({
      health: rule.health,
      lastEvaluation: rule.lastEvaluation,
      lastError: rule.lastError,
      state: rule.state,
    });
  } catch (err) {
    return `unknown (GET /api/v1/rules failed: ${(err as Error).message})`;
  }
}

function medianP99(xs: number[]): [number | undefined, number | undefined] {
  if (!xs.length) return [undefined, undefined];
  const s = [...xs].sort((a, b) => a - b);
  return [s[Math.floor((s.length - 1) / 2)], s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]];
}

/**
 * Sends the probes to `sys` and records how long each took to reach the webhook receiver: the first
 * notification naming the probe's job (from any rule or detector), and the one from the shared rule.
 */
export async function measureAlertLatency(
  ctx: BenchContext,
  sys: System,
  format: PayloadFormat,
  /** Why the shared rule cannot fire on this system (its figures say so); undefined: it can. */
  ruleUnavailable?: string,
): Promise<void> {
  const run = Date.now().toString(36);
  const first: number[] = [];
  const rule: number[] = [];
  const sources: Record<string, number> = {};
  let missedFirst = 0;
  let missedRule = 0;
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
    const anyArrival = ctx.webhook.waitFor([jobId], WAIT_MS);
    const ruleArrival = ruleUnavailable
      ? Promise.resolve(undefined)
      : ctx.webhook.waitFor([jobId, ALERT_NAME], WAIT_MS);
    await sendProbe(sys.baseUrl, format, body);
    const [a, r] = await Promise.all([anyArrival, ruleArrival]);
    if (a) {
      first.push(a.atMs - t0);
      const source = a.body.includes(ALERT_NAME) ? 'the rule' : 'a detector';
      sources[source] = (sources[source] ?? 0) + 1;
    } else missedFirst++;
    if (r) rule.push(r.atMs - t0);
    else if (!ruleUnavailable) {
      missedRule++;
      if (rule.length === 0) {
        // The rule never notified: say what the system reports about it, and wait no longer for it.
        ruleUnavailable = `no alert from the rule within ${WAIT_MS / 1000} s of the first probe; the system reports the rule as ${await ruleStatus(sys)}`;
      }
    }
    if (!a || (!r && !ruleUnavailable))
      ctx.log(`  ${sys.name}: ${a ? 'no rule alert' : 'no alert'} for ${jobId} within ${WAIT_MS / 1000} s`);
  }
  const missedNote = (missed: number) =>
    missed
      ? `${missed} of ${ctx.sizes.alertProbes} probes got no alert within ${WAIT_MS / 1000} s`
      : undefined;
  const sourceNote = Object.entries(sources)
    .map(([k, v]) => `${k} ×${v}`)
    .join(', ');
  const firstNote = [missedNote(missedFirst), sourceNote && `first from ${sourceNote}`]
    .filter(Boolean)
    .join('; ');
  const values = [...medianP99(first), ...medianP99(rule)];
  const ruleNote = ruleUnavailable ?? missedNote(missedRule);
  const notes = [firstNote, firstNote, ruleNote, ruleNote];
  ALERT_FIGURES.forEach(([name, unit], k) => {
    ctx.results.set('alert latency', name, unit, 'lower', sys.name, values[k], notes[k] || undefined);
  });
  ctx.log(
    `  ${sys.name}: first alert after ${values[0]?.toFixed(0)} ms (median), the rule's after ${values[2]?.toFixed(0)} ms`,
  );
}
