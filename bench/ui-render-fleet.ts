/**
 * The fleet page's render time with many jobs stored (bench/ui-render.ts --fleet-jobs, issue 17): the jobs go
 * straight into the metadata store before trainwatch starts, the newest report GPU utilization, and each load
 * is timed from navigation to the first paint, the first job rows and the heatmap drawn.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { seedFleet, sendFleetUtilization } from '../test/support/large-fleet.js';
import { launchChromium } from '../test/support/ui/chromium.js';
import { CLI, freePort, log, ROOT, run, stats, until, waitReady } from './ui-render-support.js';

/** Jobs of the large fleet that report GPU utilization: more than the fleet heatmap's rows. */
const FLEET_JOBS_WITH_DATA = 180;

/**
 * The fleet page with `jobs` jobs stored: from navigation to the first paint (Chromium's first contentful
 * paint), to the first job rows on screen, and to the heatmap drawn, over opts.runs fresh page loads after a
 * warm-up.
 */
export interface FleetRenderOptions {
  /** Page loads measured after the warm-up. */
  readonly runs: number;
  /** Where the results go. */
  readonly out: string;
  /** Keep the temporary data directory and logs. */
  readonly keep: boolean;
}

export async function fleetRender(jobs: number, opts: FleetRenderOptions): Promise<void> {
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--fleet-jobs must be a positive integer`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tw-ui-bench-fleet-'));
  const dataDir = path.join(work, 'data');
  const now = Date.now();
  const t = performance.now();
  seedFleet(dataDir, jobs, now);
  const seedSeconds = (performance.now() - t) / 1000;
  log(`${jobs} jobs written to the metadata store in ${seedSeconds.toFixed(1)} s`);
  const config = path.join(work, 'trainwatch.yaml');
  writeFileSync(config, 'auth:\n  anonymous_scopes: [ingest, read, admin]\nlog:\n  level: warn\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = run(
    process.execPath,
    [CLI, 'start', '--config', config, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir],
    path.join(work, 'server.log'),
  );
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    await waitReady(url, 90_000);
    await sendFleetUtilization(url, FLEET_JOBS_WITH_DATA, now);
    await until(
      'the utilization samples',
      async () => {
        const r = (await (
          await fetch(
            `${url}/api/tw/v1/heatmap?metric=gpu_utilization_ratio&by=tenant,job_id&group_by=project&max_rows=10&start=${now - 3_600_000}&end=${now + 60_000}`,
          )
        ).json()) as { data: { jobs?: number } };
        return r.data.jobs === FLEET_JOBS_WITH_DATA ? true : undefined;
      },
      120_000,
    );
    browser = await launchChromium();
    const version = browser.version();
    interface FleetLoad {
      firstPaintMs: number;
      rowsMs: number;
      heatmapMs: number;
      domRows: number;
      heatmapRows: number;
      bytes: number;
      api: Record<string, number>;
    }
    const loads: FleetLoad[] = [];
    for (let i = 0; i < opts.runs + 1; i++) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${url}/`);
      // Functions, not strings: the page's Content-Security-Policy refuses eval, which string predicates need.
      type Doc = { querySelector(s: string): { dataset: Record<string, string> } | null };
      const when = (ready: () => boolean) =>
        page
          .waitForFunction(ready, undefined, { polling: 'raf', timeout: 60_000 })
          .then(() => page.evaluate(() => performance.now()));
      const [rowsMs, heatmapMs] = await Promise.all([
        when(
          () =>
            (globalThis as unknown as { document: Doc }).document.querySelector(
              '[data-testid="jobs-table"] tbody tr[data-job-id]',
            ) !== null,
        ),
        when(() => {
          const h = (globalThis as unknown as { document: Doc }).document.querySelector(
            '[data-testid="fleet-heatmap"]',
          );
          return h !== null && Number(h.dataset.rows) > 0 && h.dataset.painted === '1';
        }),
      ]);
      const m = (await page.evaluate(`(() => {
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const api = {};
        let bytes = 0;
        for (const e of performance.getEntriesByType('resource')) {
          if (!e.name.includes('/api/')) continue;
          const key = new URL(e.name).pathname;
          api[key] = Math.max(api[key] ?? 0, e.duration);
          bytes += e.encodedBodySize;
        }
        return {
          firstPaintMs: paint ? paint.startTime : NaN,
          domRows: document.querySelectorAll('[data-testid="jobs-table"] tbody tr').length,
          heatmapRows: Number(document.querySelector('[data-testid="fleet-heatmap"]').dataset.rows),
          bytes,
          api,
        };
      })()`)) as Omit<FleetLoad, 'rowsMs' | 'heatmapMs'>;
      if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
      const total = Number(await page.getByTestId('jobs-scroll').getAttribute('data-total'));
      if (total !== jobs) throw new Error(`the table counts ${total} jobs, expected ${jobs}`);
      if (i > 0) loads.push({ rowsMs, heatmapMs, ...m });
      log(
        `load ${i === 0 ? 'warm-up' : i}: first paint ${m.firstPaintMs.toFixed(0)} ms, rows ${rowsMs.toFixed(0)} ms, heatmap ${heatmapMs.toFixed(0)} ms, ${m.domRows} rows in the DOM, ${(m.bytes / 1024).toFixed(0)} KiB`,
      );
      if (i === opts.runs) {
        mkdirSync(path.join(ROOT, 'test-output', 'screenshots'), { recursive: true });
        await page.screenshot({ path: path.join(ROOT, 'test-output', 'screenshots', 'fleet-100k.png') });
      }
      await context.close();
    }
    const paint = stats(loads.map((l) => l.firstPaintMs));
    const rowsAt = stats(loads.map((l) => l.rowsMs));
    const heat = stats(loads.map((l) => l.heatmapMs));
    const apiKeys = [...new Set(loads.flatMap((l) => Object.keys(l.api)))].sort();
    const command = `npx tsx bench/ui-render.ts --fleet-jobs ${jobs} --runs ${opts.runs}`;
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const date = new Date().toISOString();
    const result = {
      command,
      date,
      machine: {
        cpus: os.cpus().length,
        cpu,
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        chromium: version,
      },
      dataset: { jobs, jobsWithData: FLEET_JOBS_WITH_DATA, seedSeconds },
      loads,
      firstPaintMs: paint,
      firstRowsMs: rowsAt,
      heatmapDrawnMs: heat,
      loadAverage: os.loadavg(),
    };
    mkdirSync(opts.out, { recursive: true });
    const name = `${date.slice(0, 10)}-ui-100k`;
    writeFileSync(path.join(opts.out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    const ms = (x: number) => `${Math.round(x)} ms`;
    const row = (label: string, s: ReturnType<typeof stats>) =>
      `| ${label} | ${ms(s.median)} | ${ms(s.p90)} | ${ms(s.min)} | ${ms(s.max)} |`;
    const md = `# Fleet page render time with ${jobs.toLocaleString('en-US')} jobs stored (Chromium)
Command: \`${command}\` (after \`npm run build\`), ${date.slice(0, 10)}.
Machine: ${result.machine.cpus} × ${cpu}, ${result.machine.memoryGiB} GiB, Node ${process.version}, Chromium ${version} (headless, software rendering);
load average at the end ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' / ')} (a shared machine: absolute times, no reference system).

Data: ${jobs.toLocaleString('en-US')} jobs written straight into the SQLite metadata store (${seedSeconds.toFixed(1)} s), the
${FLEET_JOBS_WITH_DATA} newest reporting GPU utilization (so the heatmap groups its rows by project). Each of ${opts.runs}
page loads (after a warm-up) is a fresh browser context at 1440 × 900, timed from navigation.

| from navigation to | median | p90 | min | max |
|---|---|---|---|---|
${row('first paint (first contentful paint)', paint)}
${row('first job rows on screen', rowsAt)}
${row('jobs-over-time heatmap drawn', heat)}

Rows in the DOM: ${loads.map((l) => l.domRows).join(', ')} (of ${jobs.toLocaleString('en-US')}); heatmap rows: ${loads[0]?.heatmapRows ?? '—'}
(projects); bytes of API answers per load: ${(loads.reduce((a, l) => a + l.bytes, 0) / Math.max(1, loads.length) / 1024).toFixed(0)} KiB.

Slowest API answer per load (median over loads):
${apiKeys.map((k) => `- \`${k}\`: ${ms(stats(loads.map((l) => l.api[k] ?? 0)).median)}`).join('\n')}
`;
    writeFileSync(path.join(opts.out, `${name}.md`), md);
    log(
      `first paint median ${ms(paint.median)}, rows ${ms(rowsAt.median)}, heatmap ${ms(heat.median)} → ${path.join(opts.out, `${name}.md`)}`,
    );
  } finally {
    await browser?.close();
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
}
