/**
 * The fleet page with 100,000 jobs stored (issue 17), in headless Chromium against `trainwatch start`: the
 * table pages through the whole fleet while the DOM holds a bounded number of rows, a column header sorts
 * it on the server, the search box filters it, the jobs-over-time heatmap shows one row per project when
 * more jobs have data than fit, and a click on a project drills into its jobs — with axe-core's WCAG checks
 * and no console errors. The jobs go straight into the metadata store (test/support/large-fleet.ts).
 *
 * Needs Debian's chromium and the built server and dashboard (`npm run build`); skipped without chromium
 * (under CI=true it fails instead).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Child, freePort, startCli, stopChild, tempDir, waitFor } from '../support/helpers.js';
import { FLEET_PROJECTS, fleetJob, seedFleet, sendFleetUtilization } from '../support/large-fleet.js';
import { AXE_PATH, axeViolations } from '../support/ui/axe.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/ui/chromium.js';

const JOBS = 100_000;
/** Jobs with GPU utilization in the last ten minutes: more than the heatmap's 60 rows. */
const JOBS_WITH_DATA = 180;
/** Rows in the DOM at most: a viewport of rows plus overscan, whatever the fleet's size. */
const MAX_DOM_ROWS = 80;
const WAIT = { timeout: 30_000 };

const available = chromiumAvailable();
if (!available && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package`);
if (!available)
  console.warn(`skipping the browser tests: ${CHROMIUM} not found (sudo apt-get install chromium)`);

let server: Child;
let base: string;
let browser: Browser;
let page: Page;
let problems: string[] = [];

async function api<T>(pathAndQuery: string): Promise<T> {
  const res = await fetch(`${base}${pathAndQuery}`);
  if (!res.ok) throw new Error(`${pathAndQuery}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { data: T }).data;
}

const rows = () => page.locator('[data-testid="jobs-table"] tbody tr');
const loadedRows = () => page.locator('[data-testid="jobs-table"] tbody tr[data-job-id]');
const scrollTotal = async () => Number(await page.getByTestId('jobs-scroll').getAttribute('data-total'));

describe.skipIf(!available)('the fleet page with 100,000 jobs', () => {
  beforeAll(async () => {
    const dataDir = tempDir('tw-ui-100k-');
    const now = Date.now();
    expect(seedFleet(path.join(dataDir, 'data'), JOBS, now)).toBe(JOBS);
    const config = path.join(dataDir, 'trainwatch.yaml');
    writeFileSync(config, 'auth:\n  anonymous_scopes: [ingest, read, admin]\nlog:\n  level: warn\n');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startCli([
      'start',
      '--config',
      config,
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      path.join(dataDir, 'data'),
    ]);
    await waitFor(
      'trainwatch ready',
      async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined),
      90_000,
      200,
    );
    await sendFleetUtilization(base, JOBS_WITH_DATA, now);
    // The samples are stored once the processor has run: every job with data is then in the heatmap.
    await waitFor(
      'the utilization samples',
      async () => {
        const h = await api<{ jobs?: number }>(
          `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&by=tenant,job_id&group_by=project&max_rows=10&start=${now - 3_600_000}&end=${now + 60_000}`,
        );
        return h.jobs === JOBS_WITH_DATA ? true : undefined;
      },
      90_000,
      500,
    );
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stopChild(server);
  });

  afterEach(async () => {
    await page?.context().close();
  });

  async function open(url: string, theme: 'dark' | 'light' = 'dark'): Promise<void> {
    problems = [];
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: theme });
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(`${base}${url}`);
  }

  it('pages through all 100,000 jobs with a bounded number of rows in the DOM', async () => {
    await open('/');
    await loadedRows().first().waitFor(WAIT);
    expect(await scrollTotal()).toBe(JOBS);
    expect(await page.getByTestId('jobs-count').textContent()).toMatch(/100,?000/);
    // The newest jobs first (no alerts: the health order falls back to activity).
    expect(await loadedRows().first().getAttribute('data-job-id')).toBe(fleetJob(0, 0).jobId);
    const inDom = await rows().count();
    expect(inDom).toBeGreaterThan(5);
    expect(inDom).toBeLessThanOrEqual(MAX_DOM_ROWS);
    // Scroll to the very end: the last job is fetched by offset and shown, and the DOM stays bounded.
    await page.getByTestId('jobs-scroll').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    const last = fleetJob(JOBS - 1, 0).jobId;
    await page.locator(`[data-testid="jobs-table"] tbody tr[data-job-id="${last}"]`).waitFor(WAIT);
    expect(await page.locator(`tr[data-job-id="${last}"]`).getAttribute('aria-rowindex')).toBe(
      String(JOBS + 1),
    );
    expect(await rows().count()).toBeLessThanOrEqual(MAX_DOM_ROWS);
    // Half-way: rows from the middle of the fleet, in order.
    await page.getByTestId('jobs-scroll').evaluate((el) => {
      el.scrollTop = el.scrollHeight / 2;
    });
    await expect
      .poll(async () => Number(await loadedRows().first().getAttribute('aria-rowindex')), WAIT)
      .toBeGreaterThan(40_000);
    const ids = await loadedRows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job-id')!));
    const index = await loadedRows().evaluateAll((trs) =>
      trs.map((tr) => Number(tr.getAttribute('aria-rowindex'))),
    );
    expect(ids).toEqual(index.map((r) => fleetJob(r - 2, 0).jobId));
    expect(problems).toEqual([]);
  }, 90_000);

  it('sorts by a column header on the server (a live number too), and filters by search', async () => {
    await open('/');
    await loadedRows().first().waitFor(WAIT);
    await page.getByRole('button', { name: 'GPUs' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('sort'), WAIT).toBe('gpus');
    const top = await api<{ jobs: { jobId: string; worldSize: number }[] }>(
      '/api/tw/v1/jobs?sort=gpus&order=desc&limit=1',
    );
    expect(top.jobs[0]!.worldSize).toBe(256);
    await expect.poll(() => loadedRows().first().getAttribute('data-job-id'), WAIT).toBe(top.jobs[0]!.jobId);
    await expect
      .poll(() => loadedRows().first().locator('td.num').first().textContent(), WAIT)
      .toMatch(/^256/);
    // Ascending: the smallest jobs first.
    await page.getByRole('button', { name: 'GPUs' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('dir'), WAIT).toBe('asc');
    const bottom = await api<{ jobs: { jobId: string; worldSize: number }[] }>(
      '/api/tw/v1/jobs?sort=gpus&order=asc&limit=1',
    );
    expect(bottom.jobs[0]!.worldSize).toBe(8);
    await expect
      .poll(() => loadedRows().first().getAttribute('data-job-id'), WAIT)
      .toBe(bottom.jobs[0]!.jobId);

    // A live number sorts on the server too, by the value the processor keeps per job: the busiest GPUs
    // first (the jobs of the last project run at 0.86; the summaries are written at the processor's flush).
    await expect
      .poll(
        async () =>
          (await api<{ jobs: { meanGpuUtilization: number | null }[] }>('/api/tw/v1/jobs?sort=util&limit=1'))
            .jobs[0]?.meanGpuUtilization,
        { timeout: 60_000 },
      )
      .toBeCloseTo(0.2 + 0.06 * (FLEET_PROJECTS - 1), 5);
    await page.getByTestId('jobs-table').getByRole('button', { name: 'GPU util', exact: true }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('sort'), WAIT).toBe('util');
    const busiest = await api<{ jobs: { jobId: string }[] }>('/api/tw/v1/jobs?sort=util&order=desc&limit=1');
    await expect
      .poll(() => loadedRows().first().getAttribute('data-job-id'), WAIT)
      .toBe(busiest.jobs[0]!.jobId);

    // fleet-0012340 … fleet-0012349.
    const matching = Array.from({ length: 10 }, (_, k) => 12_340 + k);
    await page.getByLabel('Search jobs').fill('fleet-001234');
    await expect.poll(scrollTotal, WAIT).toBe(matching.length);
    await expect.poll(() => loadedRows().count(), WAIT).toBe(matching.length);
    expect(new URL(page.url()).searchParams.get('q')).toBe('fleet-001234');
    const shown = await loadedRows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job-id')!));
    expect(shown.sort()).toEqual(matching.map((i) => fleetJob(i, 0).jobId));
    await page.getByLabel('Status').selectOption('failed');
    const failed = matching.filter((i) => fleetJob(i, 0).status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    await expect.poll(scrollTotal, WAIT).toBe(failed.length);
    await expect
      .poll(() => loadedRows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job-id'))), WAIT)
      .toEqual(expect.arrayContaining(failed.map((i) => fleetJob(i, 0).jobId)));
    expect(problems).toEqual([]);
  }, 120_000);

  it('aggregates the heatmap by project and drills into one with a click', async () => {
    await open('/');
    const heatmap = page.getByTestId('fleet-heatmap');
    await expect.poll(() => heatmap.getAttribute('data-rows'), WAIT).toBe(String(FLEET_PROJECTS));
    await page.getByTestId('heatmap-grouped').waitFor(WAIT);
    expect(await page.getByTestId('heatmap-grouped').textContent()).toContain(`${JOBS_WITH_DATA} jobs`);
    // A click on the first row (proj-0) filters the page to it: the heatmap then shows that project's jobs.
    const canvas = heatmap.locator('canvas').first();
    const box = (await canvas.boundingBox())!;
    await canvas.click({ position: { x: box.width - 4, y: 4 } });
    await expect.poll(() => new URL(page.url()).searchParams.get('project'), WAIT).toBe('proj-0');
    const inProject = Array.from({ length: JOBS_WITH_DATA }, (_, i) => i).filter(
      (i) => i % FLEET_PROJECTS === 0,
    );
    await expect.poll(() => heatmap.getAttribute('data-rows'), WAIT).toBe(String(inProject.length));
    expect(await page.getByTestId('heatmap-grouped').count()).toBe(0);
    await expect.poll(scrollTotal, WAIT).toBe(Math.ceil(JOBS / FLEET_PROJECTS));
    const projects = await loadedRows().evaluateAll((trs) =>
      trs.map((tr) => tr.querySelector('.sub')?.textContent ?? ''),
    );
    expect(projects.every((p) => p.endsWith('· proj-0'))).toBe(true);
    expect(problems).toEqual([]);
  }, 60_000);

  it.skipIf(!AXE_PATH)(
    'passes axe-core’s WCAG 2 A/AA checks in both themes',
    async () => {
      for (const theme of ['dark', 'light'] as const) {
        await open('/', theme);
        await loadedRows().first().waitFor(WAIT);
        await expect
          .poll(() => page.getByTestId('fleet-heatmap').getAttribute('data-rows'), WAIT)
          .toBe(String(FLEET_PROJECTS));
        expect(await axeViolations(page), theme).toEqual([]);
        await page.context().close();
      }
    },
    120_000,
  );
});
