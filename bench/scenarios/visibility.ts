/**
 * Visibility: the time from a sample being sent to a query returning it. Two kinds of probe, one after the
 * other: a sample of a series never seen before (the index must learn it), and a new sample of an existing
 * series (the query must return the new value). The clock starts just before the POST, so the
 * acknowledgement is part of the time; the query is polled (every 2 ms for the first 100 ms, then every
 * 10 ms) until the sample is there.
 */
import type { BenchContext } from '../harness/context.js';
import { encodeProbe, sendProbe } from '../harness/probe.js';
import type { PayloadFormat } from '../harness/replay.js';
import { type System, TRAINWATCH_TENANT } from '../harness/systems.js';

const POLL_TIMEOUT_MS = 60_000;

async function pollUntil(sys: System, query: string, wanted: string): Promise<number | undefined> {
  const t0 = performance.now();
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed > POLL_TIMEOUT_MS) return undefined;
    const r = await sys.query.instant(query, undefined, 10_000);
    if (r.some((s) => s.value?.[1] === wanted)) return performance.now();
    await new Promise((res) => setTimeout(res, elapsed < 100 ? 2 : 10));
  }
}

function stats(xs: number[]): { median: number; p99: number } {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor((s.length - 1) / 2)]!,
    p99: s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!,
  };
}

/** `format`: how to send to this system, or why it cannot be sent to. */
export async function runVisibility(
  ctx: BenchContext,
  sys: System,
  format: PayloadFormat | { unavailable: string },
): Promise<void> {
  const figures = [
    ['new series: sent → queryable — median', 'ms'],
    ['new series: sent → queryable — p99', 'ms'],
    ['new sample of an existing series: sent → queryable — median', 'ms'],
    ['new sample of an existing series: sent → queryable — p99', 'ms'],
  ] as const;
  const queryable = await sys.query.available();
  const why =
    typeof format === 'object'
      ? `not available (${format.unavailable})`
      : queryable !== true
        ? `not available (${queryable})`
        : undefined;
  if (why || typeof format === 'object') {
    for (const [name, unit] of figures)
      ctx.results.set('visibility', name, unit, 'lower', sys.name, undefined, why);
    return;
  }
  const fmt = format;
  const run = `${Date.now().toString(36)}`;
  const newSeries: number[] = [];
  const existing: number[] = [];
  let timeouts = 0;
  const existingLabels = {
    __name__: 'bench_visibility_existing',
    tenant: TRAINWATCH_TENANT,
    job_id: `bench-visibility-${run}`,
  };
  // Create the existing series first, and wait until it is queryable.
  await sendProbe(
    sys.baseUrl,
    fmt,
    encodeProbe(fmt, [{ labels: existingLabels, timestamps: [Date.now()], values: [0] }]),
  );
  await pollUntil(sys, `bench_visibility_existing{job_id="${existingLabels.job_id}"}`, '0');
  for (let i = 1; i <= ctx.sizes.visibilityProbes; i++) {
    const labels = {
      __name__: 'bench_visibility_probe',
      tenant: TRAINWATCH_TENANT,
      job_id: `bench-visibility-${run}`,
      probe: String(i),
    };
    let body = encodeProbe(fmt, [{ labels, timestamps: [Date.now()], values: [i] }]);
    let t0 = performance.now();
    await sendProbe(sys.baseUrl, fmt, body);
    let t1 = await pollUntil(
      sys,
      `bench_visibility_probe{job_id="${labels.job_id}",probe="${i}"}`,
      String(i),
    );
    if (t1 === undefined) timeouts++;
    else newSeries.push(t1 - t0);

    body = encodeProbe(fmt, [{ labels: existingLabels, timestamps: [Date.now()], values: [i] }]);
    t0 = performance.now();
    await sendProbe(sys.baseUrl, fmt, body);
    t1 = await pollUntil(sys, `bench_visibility_existing{job_id="${existingLabels.job_id}"}`, String(i));
    if (t1 === undefined) timeouts++;
    else existing.push(t1 - t0);
  }
  const note = timeouts ? `${timeouts} probes not visible within ${POLL_TIMEOUT_MS / 1000} s` : undefined;
  const a = newSeries.length ? stats(newSeries) : undefined;
  const b = existing.length ? stats(existing) : undefined;
  const values = [a?.median, a?.p99, b?.median, b?.p99];
  figures.forEach(([name, unit], i) => {
    ctx.results.set('visibility', name, unit, 'lower', sys.name, values[i], note);
  });
  ctx.log(
    `  ${sys.name}: new series visible after ${a?.median.toFixed(1)} ms (median), new sample after ${b?.median.toFixed(1)} ms`,
  );
}
