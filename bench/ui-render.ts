/**
 * Dashboard render time in Chromium: the job page of a 512-GPU job (64 nodes × 8 GPUs) over one hour at
 * one-second resolution — ≈6,400 series, ≈23 M samples — from navigation to every chart and heatmap drawn;
 * and live latency, from a sample sent to the collector to the point on screen. Writes
 * bench/results/ui-render.md (and .json).
 *
 *   npm run build && npx tsx bench/ui-render.ts            # 64 nodes × 8 GPUs × 60 min, 5 page loads
 *   npx tsx bench/ui-render.ts --nodes 8 --minutes 10 --runs 3 --out /tmp   # a quick look
 *   npx tsx bench/ui-render.ts --url http://127.0.0.1:9470 --out /tmp       # a running trainwatch with such a job
 *   npx tsx bench/ui-render.ts --fleet-jobs 100000 --runs 5                 # the fleet page, 100,000 jobs stored
 *
 * With --fleet-jobs (issue 17) it measures the fleet page instead: the jobs go straight into the metadata
 * store before trainwatch starts (test/support/large-fleet.ts), the 180 newest report GPU utilization, and
 * each load is timed from navigation to the first paint, the first job rows on screen and the heatmap drawn.
 * Writes bench/results/<date>-ui-100k.md (and .json).
 *
 * trainwatch runs from the build (node bin/trainwatch.js start) with every role; the data is sent by the
 * fleet simulator over the native protocol, as agents would send it, and goes through bus, processor and
 * TSDB. Chromium is Debian's (/usr/bin/chromium) driven by playwright-core. Times are wall-clock on a shared
 * machine: there is no reference system for a dashboard here, so the figures are absolute, with the
 * command and the machine.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { NativeClient } from '../src/protocol/native-client.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../test/support/ui/chromium.js';
import { fleetRender } from './ui-render-fleet.js';
import { CLI, freePort, log, ROOT, run, stats, until, waitReady } from './ui-render-support.js';

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '64' },
    gpus: { type: 'string', default: '8' },
    minutes: { type: 'string', default: '60' },
    runs: { type: 'string', default: '5' },
    live: { type: 'string', default: '10' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
    keep: { type: 'boolean', default: false },
    /** Measure against a running trainwatch that already holds the job (skips starting one and sending data). */
    url: { type: 'string' },
    /** Measure the fleet page with this many jobs stored instead of the job page. */
    'fleet-jobs': { type: 'string' },
  },
});
const NODES = Number(args.nodes);
const GPUS = Number(args.gpus);
const MINUTES = Number(args.minutes);
const RUNS = Number(args.runs);
const LIVE_SAMPLES = Number(args.live);
async function main(): Promise<void> {
  if (!chromiumAvailable()) throw new Error(`${CHROMIUM} not found: sudo apt-get install chromium`);
  if (
    !existsSync(path.join(ROOT, 'dist', 'ui', 'index.html')) ||
    !existsSync(path.join(ROOT, 'dist', 'server'))
  )
    throw new Error('build first: npm run build');
  if (args['fleet-jobs'])
    return fleetRender(Number(args['fleet-jobs']), { runs: RUNS, out: args.out!, keep: args.keep! });
  const work = mkdtempSync(path.join(os.tmpdir(), 'tw-ui-bench-'));
  const config = path.join(work, 'trainwatch.yaml');
  writeFileSync(config, 'auth:\n  anonymous_scopes: [ingest, read, admin]\nlog:\n  level: warn\n');
  const port = await freePort();
  const url = args.url ?? `http://127.0.0.1:${port}`;
  const server = args.url
    ? null
    : run(
        process.execPath,
        [
          CLI,
          'start',
          '--config',
          config,
          '--listen',
          `127.0.0.1:${port}`,
          '--data-dir',
          path.join(work, 'data'),
        ],
        path.join(work, 'server.log'),
      );
  const stopAll: (() => Promise<void>)[] = [
    async () => {
      if (server && server.exitCode === null) {
        server.kill('SIGTERM');
        await new Promise((r) => server.once('exit', r));
      }
    },
  ];
  try {
    await waitReady(url, 60_000);

    // --- data: one job of NODES × GPUS ranks, MINUTES of history at 1 s ------------------------------------
    const sendStarted = Date.now();
    /** The simulator's clock when it stopped: the job's newest sample, once the processor has caught up. */
    let simSentUpTo: number | undefined;
    if (!args.url) {
      log(`sending ${NODES} × ${GPUS} GPUs × ${MINUTES} min at 1 s through the simulator…`);
      const sim = run(process.execPath, [
        CLI,
        'simulate',
        '--url',
        url,
        '--jobs',
        '1',
        '--nodes',
        String(NODES),
        '--gpus',
        String(GPUS),
        '--backfill',
        `${MINUTES}m`,
        '--duration',
        '2s',
      ]);
      // The simulator's last line says up to which time it sent: {"done":{…,"clockMs":…}}.
      let simOut = '';
      for (const stream of [sim.stdout!, sim.stderr!])
        stream.on('data', (d: Buffer) => {
          simOut += d.toString();
        });
      const simCode = await new Promise<number | null>((r) => sim.once('exit', r));
      if (simCode !== 0) throw new Error(`the simulator exited with ${simCode}`);
      const done = /"done":\{[^}]*"clockMs":(\d+)/.exec(simOut);
      if (done) simSentUpTo = Number(done[1]);
    }
    const sendSeconds = (Date.now() - sendStarted) / 1000;
    type Job = {
      jobId: string;
      startMs: number;
      lastSampleMs: number;
      gpus: number;
      worldSize: number | null;
    };
    const job = await until(
      'the job with all its GPUs',
      async () => {
        const body = (await (await fetch(`${url}/api/tw/v1/fleet`)).json()) as { data: { jobs: Job[] } };
        const j = body.data.jobs[0];
        // Every GPU reporting (a fresh run), or the job's world size (a reused server, where the live samples
        // below have moved the job's newest sample past its GPUs').
        return j && (j.gpus === NODES * GPUS || (args.url && j.worldSize === NODES * GPUS)) ? j : undefined;
      },
      300_000,
    );
    // The processor has caught up once the newest curve point is the job's newest sample.
    await until(
      'the processor to catch up',
      async () => {
        const r = (await (await fetch(`${url}/api/tw/v1/jobs/${encodeURIComponent(job.jobId)}`)).json()) as {
          data: { job: Job };
        };
        // Against the simulator's own end when known: a processor that is still catching up more than 10 s
        // after the simulator stopped (a busy machine) would otherwise never count as caught up.
        if (args.url) return true;
        if (simSentUpTo !== undefined)
          return r.data.job.lastSampleMs >= simSentUpTo - 5000 ? true : undefined;
        return Date.now() - r.data.job.lastSampleMs < 10_000 ? true : undefined;
      },
      300_000,
    );
    const ingestSeconds = (Date.now() - sendStarted) / 1000;
    // The detectors, rollups and head log finish the backlog in the background: measure pages only once the
    // server is quiet (under 10% of a core for 2 s), or the page would be timed against the ingest.
    const cpuSeconds = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^trainwatch_process_cpu_seconds_total ([\d.e+-]+)$/m.exec(text)?.[1] ?? Number.NaN);
    };
    const settleStarted = Date.now();
    let before = await cpuSeconds();
    await until(
      'the server to go quiet',
      async () => {
        await new Promise((r) => setTimeout(r, 2000));
        const now = await cpuSeconds();
        const busy = now - before;
        before = now;
        return busy < 0.2 ? true : undefined;
      },
      600_000,
      0,
    );
    const settleSeconds = (Date.now() - settleStarted) / 1000;
    log(`server quiet after ${settleSeconds.toFixed(0)} s more`);
    const end = job.startMs + MINUTES * 60_000;
    const start = job.startMs;
    const series = NODES * GPUS * 12 + NODES * 4 + 4;
    log(
      `${job.jobId}: ${NODES * GPUS} GPUs, ≈${series} series, ≈${((series * MINUTES * 60) / 1e6).toFixed(1)} M samples (sent in ${sendSeconds.toFixed(0)} s, stored in ${ingestSeconds.toFixed(0)} s)`,
    );

    // --- page loads ----------------------------------------------------------------------------------------
    const browser = await launchChromium();
    stopAll.unshift(() => browser.close());
    const version = browser.version();
    const pageUrl = `${url}/jobs/${encodeURIComponent(job.jobId)}?from=${start}&to=${end}`;
    interface Load {
      viewMs: number;
      drawnMs: number;
      loadedMs: number;
      /** When the page's first API request left (navigation start = 0). */
      firstRequestMs: number;
      api: Record<string, number>;
      heatmapRows: number;
      heatmapCols: number;
      chartPoints: number;
      bytes: number;
      /** CPU seconds the server spent on this load (its process counter, before and after). */
      serverCpuMs: number;
    }
    const loads: Load[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      // A fresh context each time: nothing cached, as a colleague opening a shared link.
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const cpuBefore = await cpuSeconds();
      await page.goto(pageUrl);
      // Drawn: the data is in, both heatmaps are painted and every chart with points has its canvas —
      // first for the first view (everything above the per-GPU charts), then for the whole page.
      const drawnWhen = (flag: string) =>
        page
          .waitForFunction(
            `(() => {
              if (document.body.dataset.${flag} !== '1') return false;
              const heat = [...document.querySelectorAll('.heatmap')];
              if (heat.length === 0 || heat.some((h) => Number(h.dataset.rows) > 0 && h.dataset.painted !== '1')) return false;
              const charts = [...document.querySelectorAll('.chart')];
              if (charts.some((c) => Number(c.dataset.points) > 0 && !c.querySelector('canvas'))) return false;
              return performance.now();
            })()`,
            undefined,
            { polling: 'raf', timeout: 120_000 },
          )
          .then(async (h) => (await h.jsonValue()) as number);
      const [viewMs, drawnMs] = await Promise.all([drawnWhen('jobView'), drawnWhen('jobLoaded')]);
      const m = (await page.evaluate(`(() => {
        const api = {};
        let bytes = 0;
        let loadedMs = 0;
        let firstRequestMs = Infinity;
        for (const e of performance.getEntriesByType('resource')) {
          if (!e.name.includes('/api/')) continue;
          const u = new URL(e.name);
          const key = u.pathname.replace(/\\/jobs\\/[^/]+/, '/jobs/:id') + (u.searchParams.get('metric') ? '?metric=' + u.searchParams.getAll('metric').join(',') : '');
          api[key] = Math.max(api[key] ?? 0, e.duration);
          bytes += e.encodedBodySize;
          loadedMs = Math.max(loadedMs, e.responseEnd);
          firstRequestMs = Math.min(firstRequestMs, e.startTime);
        }
        const heat = document.querySelector('[data-testid="gpu-util-heatmap"]');
        let points = 0;
        for (const c of document.querySelectorAll('.chart')) points += Number(c.dataset.points);
        return { api, bytes, loadedMs, firstRequestMs, heatmapRows: Number(heat.dataset.rows), heatmapCols: Number(heat.dataset.cols), chartPoints: points };
      })()`)) as Omit<Load, 'drawnMs' | 'viewMs' | 'serverCpuMs'>;
      if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
      if (m.heatmapRows !== NODES * GPUS)
        throw new Error(`the heatmap has ${m.heatmapRows} rows, expected ${NODES * GPUS}`);
      const serverCpuMs = ((await cpuSeconds()) - cpuBefore) * 1000;
      if (i > 0) loads.push({ viewMs, drawnMs, serverCpuMs, ...m }); // the first load warms the server's caches and is not counted
      log(
        `load ${i === 0 ? 'warm-up' : i}: first view at ${viewMs.toFixed(0)} ms, all drawn at ${drawnMs.toFixed(0)} ms (last API answer at ${m.loadedMs.toFixed(0)} ms, ${(m.bytes / 1024).toFixed(0)} KiB)`,
      );
      if (i === RUNS) {
        mkdirSync(path.join(ROOT, 'test-output', 'screenshots'), { recursive: true });
        await page.screenshot({
          path: path.join(ROOT, 'test-output', 'screenshots', 'job-512-gpus.png'),
          fullPage: true,
        });
      }
      await context.close();
    }

    // --- live latency: a sample sent to the collector → on the loss chart ---------------------------------
    const curves = (await (
      await fetch(`${url}/api/tw/v1/jobs/${encodeURIComponent(job.jobId)}/curves?metric=train_loss&points=10`)
    ).json()) as {
      data: { curves: { labels: Record<string, string> }[] };
    };
    const lossLabels = curves.data.curves[0]!.labels;
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/jobs/${encodeURIComponent(job.jobId)}?range=1h`);
    await page.waitForFunction(
      `document.body.dataset.jobLoaded === '1' && document.querySelector('[data-live="live"]') !== null`,
      undefined,
      {
        timeout: 60_000,
      },
    );
    const client = new NativeClient({ url, sourceId: `ui-bench-${Date.now()}` });
    const latencies: number[] = [];
    const { tenant: _tenant, ...sendLabels } = lossLabels;
    for (let i = 0; i < LIVE_SAMPLES; i++) {
      await new Promise((r) => setTimeout(r, 1200));
      const t = Date.now();
      const b = new SeriesBatchBuilder();
      b.addSeries(sendLabels).add(t, 2 + i / 100);
      const sent = client.send(b.build());
      await page.waitForFunction(
        `Number(document.querySelector('[data-testid="chart-loss"]').dataset.lastX) >= ${t}`,
        undefined,
        {
          polling: 'raf',
          timeout: 20_000,
        },
      );
      latencies.push(Date.now() - t);
      const outcome = await sent;
      if (!outcome.ok) throw new Error(`the sample was refused: ${JSON.stringify(outcome)}`);
    }
    await context.close();
    log(`live: sample → screen median ${stats(latencies).median} ms`);

    // --- results -------------------------------------------------------------------------------------------
    const drawn = stats(loads.map((l) => l.drawnMs));
    const view = stats(loads.map((l) => l.viewMs));
    const browserOnly = stats(loads.map((l) => Math.max(0, l.drawnMs - l.loadedMs)));
    const serverCpu = stats(loads.map((l) => l.serverCpuMs));
    const lastApi = stats(loads.map((l) => l.loadedMs));
    const firstRequest = stats(loads.map((l) => l.firstRequestMs));
    const live = stats(latencies);
    const apiKeys = [...new Set(loads.flatMap((l) => Object.keys(l.api)))].sort();
    const command = `npx tsx bench/ui-render.ts --nodes ${NODES} --gpus ${GPUS} --minutes ${MINUTES} --runs ${RUNS} --live ${LIVE_SAMPLES}`;
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const result = {
      command,
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpu,
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        chromium: version,
      },
      dataset: {
        gpus: NODES * GPUS,
        nodes: NODES,
        minutes: MINUTES,
        series,
        samples: series * MINUTES * 60,
        sendSeconds,
        ingestSeconds,
      },
      pageLoads: loads,
      firstViewMs: view,
      browserOnlyMs: browserOnly,
      serverCpuMs: serverCpu,
      drawnMs: drawn,
      loadAverage: os.loadavg(),
      lastApiAnswerMs: lastApi,
      firstApiRequestMs: firstRequest,
      liveLatencyMs: { ...live, samples: latencies },
    };
    mkdirSync(args.out!, { recursive: true });
    writeFileSync(path.join(args.out!, 'ui-render.json'), `${JSON.stringify(result, null, 2)}\n`);
    const ms = (x: number) => `${Math.round(x)} ms`;
    const md = `# Dashboard render time (Chromium)

Command: \`${command}\` (after \`npm run build\`), ${result.date.slice(0, 10)}.
Machine: ${result.machine.cpus} × ${cpu}, ${result.machine.memoryGiB} GiB, Node ${process.version}, Chromium ${version} (headless, software rendering);
load average at the end ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' / ')} (other work shares the cores: compare runs made at similar loads).

**Data:** one job of ${NODES} nodes × ${GPUS} GPUs = ${NODES * GPUS} ranks, ${MINUTES} minutes at one-second resolution:
≈${series.toLocaleString('en-US')} series, ≈${((series * MINUTES * 60) / 1e6).toFixed(1)} M samples, sent by the fleet simulator over the native
protocol through collector → bus → processor → TSDB (sent in ${sendSeconds.toFixed(0)} s, all queryable after ${ingestSeconds.toFixed(0)} s; the pages
were loaded once the server had finished its background work on them — detectors, head log — ${settleSeconds.toFixed(0)} s later).

## Job page: navigation → everything drawn

The page \`/jobs/<id>?from=…&to=…\` (the hour, absolute), opened ${RUNS} times in a fresh browser context (nothing cached) after
one warm-up load. "Drawn" is the first animation frame at which the job's data is in, both ${NODES * GPUS}-row heatmaps
(utilization and memory) are painted and every chart with data has its canvas — measured inside the page
(\`performance.now()\`, from navigation start).

| | median | p90 | min | max |
|---|---|---|---|---|
| **navigation → everything drawn** | **${ms(drawn.median)}** | ${ms(drawn.p90)} | ${ms(drawn.min)} | ${ms(drawn.max)} |
| navigation → first view drawn (curves, throughput, step time, both heatmaps with the straggler) | ${ms(view.median)} | ${ms(view.p90)} | ${ms(view.min)} | ${ms(view.max)} |
| navigation → first API request | ${ms(firstRequest.median)} | ${ms(firstRequest.p90)} | ${ms(firstRequest.min)} | ${ms(firstRequest.max)} |
| navigation → last API answer | ${ms(lastApi.median)} | ${ms(lastApi.p90)} | ${ms(lastApi.min)} | ${ms(lastApi.max)} |
| last API answer → everything drawn (the browser's own work: decode, React, uPlot, canvas) | ${ms(browserOnly.median)} | ${ms(browserOnly.p90)} | ${ms(browserOnly.min)} | ${ms(browserOnly.max)} |
| server CPU time per load (all its requests, from its process counter) | ${ms(serverCpu.median)} | ${ms(serverCpu.p90)} | ${ms(serverCpu.min)} | ${ms(serverCpu.max)} |

Target (issue 10): under 1 s — ${drawn.median < 1000 ? `met (median ${ms(drawn.median)}, p90 ${ms(drawn.p90)})` : `**not met** (median ${ms(drawn.median)})`}.

Where the time goes: the page's first request leaves ${ms(firstRequest.median)} after navigation (the HTML, the script
bundle, React's first render); from then on the server, one Node process answering the page's requests one after
another, sets the pace, and the browser's own work after the last answer (decoding, React, uPlot and the canvas
heatmaps) is ${ms(browserOnly.median)}. Drawing everything covers seven metrics of all ${NODES * GPUS} GPUs or ranks over the hour —
≈${((7 * NODES * GPUS * MINUTES * 60) / 1e6).toFixed(1)} M samples — in ${ms(serverCpu.median)} of server CPU: the columns are 10 s wide, so most of the hour is read
as the blocks' 10 s rollup windows (sums and counts, plus the newest value for the heatmaps), and only the newest
minutes, still in the TSDB's head, as raw samples aggregated at query time. The page asks for everything at once: the
requests that need nothing from the job (curves, step time with the straggler scores, both rank heatmaps) leave at
mount next to \`jobs/:id\`, and the throughput band and the per-GPU power, temperature and clock bands as soon as
\`jobs/:id\` has said which throughput metric the job reports and how many GPUs it has; the first view is drawn as soon
as its own answers are in.

What the page drew per load: heatmaps of ${loads[0]?.heatmapRows} rows × ${loads[0]?.heatmapCols} columns, ${loads[0]?.chartPoints.toLocaleString('en-US')} chart points
in total, ${((loads[0]?.bytes ?? 0) / 1024).toFixed(0)} KiB of API answers. The server folds the ≈${((series * MINUTES * 60) / 1e6).toFixed(0)} M samples into about one value per
pixel (STYLE.md 12): u8 matrices for the heatmaps, min/mean/max bands for the 512 GPUs' power, temperature and
clocks, min/max-decimated curves.

Slowest request of each kind (median over the loads, ms, as the browser saw it — requests run concurrently):

| request | median ms |
|---|---|
${apiKeys.map((k) => `| \`${k}\` | ${Math.round(stats(loads.map((l) => l.api[k] ?? 0)).median)} |`).join('\n')}

## Live: sample sent → on screen

With the page on "last hour" (live), ${LIVE_SAMPLES} \`train_loss\` samples were sent to the collector one by one
(native protocol, acknowledged once durable on the bus); each time, the wall-clock time until the loss chart's
last point was that sample (tick stream → tail fetch → uPlot setData → frame).

| | median | p90 | min | max |
|---|---|---|---|---|
| sample → screen | ${ms(live.median)} | ${ms(live.p90)} | ${ms(live.min)} | ${ms(live.max)} |

Target (issue 10): under 1 s — ${live.p90 < 1000 ? 'met' : '**not met**'}.

Raw figures: \`ui-render.json\` beside this file.
`;
    writeFileSync(path.join(args.out!, 'ui-render.md'), md);
    log(`wrote ${path.join(args.out!, 'ui-render.md')}`);
  } finally {
    for (const stop of stopAll) await stop().catch(() => {});
    if (args.keep) log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
