/**
 * The node page (issue 17, "GPU health charts … and a node page") in Chromium against `trainwatch demo` with
 * 8 minutes of history (past the first incidents, so that alerts name nodes):
 * - it lists the node's GPUs and the jobs that ran on it, each job a link to its job page;
 * - every GPU chart and health chart (XID, ECC, throttling, PCIe, NVLink, network) draws the simulator's data,
 *   all on one time axis; the range picker writes the range into the URL;
 * - node ids link to the node page from the job page, the alerts table and the fleet's nodes heatmap;
 * - axe-core finds no WCAG 2 AA violation on it, in both themes.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Child, getJson, REPO_ROOT, stopChild, waitFor } from '../support/helpers.js';
import { AXE_PATH, axeViolations } from '../support/ui/axe.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/ui/chromium.js';
import { startDemo } from '../support/ui/demo.js';

const available = chromiumAvailable();
if (!available && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package`);

const SHOTS = path.join(REPO_ROOT, 'test-output', 'screenshots');
const GPUS = 4;

interface FleetJob {
  jobId: string;
  name: string;
  status: string;
  lastSampleMs: number | null;
}

let demo: Child;
let base: string;
let browser: Browser;
let job: FleetJob;
let nodeId: string;
const problems: string[] = [];

async function open(url: string, theme: 'dark' | 'light' = 'dark'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: theme });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.stack ?? e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  await page.goto(`${base}${url}`);
  return page;
}

async function close(page: Page): Promise<void> {
  await page.context().close();
}

const points = async (page: Page, id: string) =>
  Number(await page.getByTestId(id).getAttribute('data-points'));
const seriesCount = async (page: Page, id: string) =>
  Number(await page.getByTestId(id).getAttribute('data-series'));

describe.skipIf(!available)('node page: GPUs, jobs, health charts and links (issue 17)', () => {
  beforeAll(async () => {
    ({ demo, base } = await startDemo({ jobs: 4, nodes: 2, gpus: GPUS, backfill: '8m', interval: '5s' }));
    await waitFor(
      'a running demo job with live samples',
      async () => {
        const jobs = (await getJson<{ data: { jobs: FleetJob[] } }>(`${base}/api/tw/v1/fleet`)).data.jobs;
        return jobs.find(
          (j) => j.status === 'running' && j.lastSampleMs !== null && Date.now() - j.lastSampleMs < 20_000,
        );
      },
      60_000,
      500,
    ).then((j) => {
      job = j;
    });
    const nodes = (
      await getJson<{ data: { nodes: string[] } }>(
        `${base}/api/tw/v1/nodes?job_id=${encodeURIComponent(job.jobId)}&start=${Date.now() - 3600_000}`,
      )
    ).data.nodes;
    expect(nodes).toHaveLength(2);
    nodeId = nodes[1]!;
    mkdirSync(SHOTS, { recursive: true });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (demo) await stopChild(demo);
  });

  it('lists the GPUs and the jobs of the node, and draws every GPU and health chart on one time axis', async () => {
    const page = await open(`/nodes/${encodeURIComponent(nodeId)}`);
    await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });
    await expect.poll(() => page.locator('#node-title').textContent()).toContain(nodeId);
    // GPUs 0..3, each with the job and its rank on this (the job's second) node: ranks 4..7.
    const gpuRows = page.locator('[data-testid="node-gpus"] tbody tr');
    await expect.poll(() => gpuRows.count()).toBe(GPUS);
    for (let g = 0; g < GPUS; g++) {
      const row = page.locator(`[data-testid="node-gpus"] tbody tr[data-gpu="${g}"]`);
      await expect.poll(() => row.textContent()).toContain(job.jobId);
      await expect.poll(() => row.textContent()).toContain(`rank ${GPUS + g}`);
    }
    const jobRow = page.locator(`[data-testid="node-jobs"] tbody tr[data-job-id="${job.jobId}"]`);
    await expect.poll(() => jobRow.count()).toBe(1);
    await expect.poll(() => jobRow.textContent()).toContain(job.name);
    // One line per GPU for the gauges; receive and transmit per GPU for the links; both ECC types per GPU.
    const expected: Record<string, number> = {
      'node-chart-gpu-util': GPUS,
      'node-chart-gpu-memory': GPUS,
      'node-chart-gpu-temperature': GPUS,
      'node-chart-gpu-power': GPUS,
      'node-chart-gpu-sm-clock': GPUS,
      'node-chart-gpu-xid': GPUS,
      'node-chart-gpu-ecc': 2 * GPUS,
      'node-chart-gpu-pcie': 2 * GPUS,
      'node-chart-gpu-nvlink': 2 * GPUS,
      'node-chart-host-network': 2,
    };
    for (const [id, n] of Object.entries(expected)) {
      await expect.poll(() => seriesCount(page, id), { message: `series of ${id}` }).toBe(n);
      await expect.poll(() => points(page, id), { message: `points of ${id}` }).toBeGreaterThan(n * 10);
    }
    // Every time chart spans the same window (the last hour by default) with the same ticks.
    const axes = (await page.evaluate(
      `[...document.querySelectorAll('figure[data-x-min]')].map((f) => f.dataset.testid + ' ' + f.dataset.xMin + '/' + f.dataset.xMax + '/' + f.dataset.xTicks)`,
    )) as string[];
    expect(axes.length).toBeGreaterThanOrEqual(Object.keys(expected).length);
    expect(new Set(axes.map((a) => a.split(' ')[1])).size, axes.join('\n')).toBe(1);
    const [min, max] = axes[0]!.split(' ')[1]!.split('/').map(Number) as [number, number];
    expect(max - min).toBeGreaterThan(55 * 60_000);
    await page.screenshot({ path: path.join(SHOTS, 'node-page.png'), fullPage: true });

    // A shorter range goes into the URL and the charts follow it.
    await page.getByTestId('range-select').selectOption('15m');
    await expect.poll(() => new URL(page.url()).searchParams.get('range')).toBe('15m');
    await expect
      .poll(async () => {
        const f = page.getByTestId('node-chart-gpu-util');
        return Number(await f.getAttribute('data-x-max')) - Number(await f.getAttribute('data-x-min'));
      })
      .toBeLessThan(16 * 60_000);
    await close(page);
  }, 120_000);

  it('links to the job pages of its jobs, and node ids link to the node page from the job page, alerts and the nodes heatmap', async () => {
    const page = await open(`/nodes/${encodeURIComponent(nodeId)}?range=15m`);
    await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });
    await page.locator(`[data-testid="node-jobs"] tr[data-job-id="${job.jobId}"] a`).first().click();
    await expect.poll(() => new URL(page.url()).pathname).toBe(`/jobs/${encodeURIComponent(job.jobId)}`);
    // The job page names its nodes, each a link to its node page with the job page's window.
    const link = page.locator(`[data-testid="job-nodes"] a[data-node-link="${nodeId}"]`);
    await link.waitFor({ timeout: 30_000 });
    await link.click();
    await expect.poll(() => new URL(page.url()).pathname).toBe(`/nodes/${encodeURIComponent(nodeId)}`);
    expect(new URL(page.url()).searchParams.get('from')).toMatch(/^\d+$/);
    await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });

    // An alert that names a node links to it from the alerts table.
    const withNode = await waitFor(
      'an alert with a node_id label',
      async () => {
        type Labelled = { labels: Record<string, string> };
        const body = await getJson<{ data: Labelled[] | { alerts: Labelled[] } }>(
          `${base}/api/tw/v1/alerts?state=firing`,
        );
        const alerts = Array.isArray(body.data) ? body.data : body.data.alerts;
        return alerts.find((a) => a.labels.node_id)?.labels.node_id;
      },
      90_000,
      1000,
    );
    await page.goto(`${base}/alerts`);
    const alertLink = page.locator(`[data-testid="alerts-table"] a[data-node-link="${withNode}"]`).first();
    await alertLink.waitFor({ timeout: 30_000 });
    await alertLink.click();
    await expect.poll(() => new URL(page.url()).pathname).toBe(`/nodes/${encodeURIComponent(withNode)}`);
    await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });
    await expect.poll(() => page.locator('[data-testid="node-gpus"] tbody tr').count()).toBe(GPUS);

    // A row of the fleet's nodes heatmap opens that node's page at the moment clicked.
    await page.goto(`${base}/?heat=nodes&q=${encodeURIComponent(job.jobId)}`);
    const heat = page.locator('[data-testid="nodes-heatmap"]');
    await expect.poll(() => heat.getAttribute('data-rows'), { timeout: 30_000 }).toBe('2');
    const plot = (await heat.locator('[data-plot-area]').boundingBox())!;
    await page.mouse.click(plot.x + plot.width * 0.97, plot.y + 3);
    await expect.poll(() => new URL(page.url()).pathname).toMatch(/^\/nodes\//);
    const opened = decodeURIComponent(new URL(page.url()).pathname.slice('/nodes/'.length));
    expect(opened.startsWith(job.jobId.slice(-6))).toBe(true);
    expect(new URL(page.url()).searchParams.get('t')).toMatch(/^\d+$/);
    await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });
    await expect.poll(() => page.locator('[data-testid="node-gpus"] tbody tr').count()).toBe(GPUS);
    await close(page);
    expect(problems, problems.join('\n')).toEqual([]);
  }, 180_000);

  it.skipIf(!AXE_PATH)(
    'passes axe-core’s WCAG 2 AA checks in both themes',
    async () => {
      const found: string[] = [];
      for (const theme of ['dark', 'light'] as const) {
        const page = await open(`/nodes/${encodeURIComponent(nodeId)}?range=15m`, theme);
        await page.locator('body[data-node-loaded]').waitFor({ timeout: 45_000 });
        await expect.poll(() => points(page, 'node-chart-gpu-nvlink')).toBeGreaterThan(0);
        for (const v of await axeViolations(page)) found.push(`${theme}: ${v}`);
        await close(page);
      }
      expect(found, found.join('\n')).toEqual([]);
    },
    120_000,
  );
});
