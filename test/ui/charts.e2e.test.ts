/**
 * Issue 17 items 9 and 10 in Chromium against `trainwatch demo` with 4 minutes of history (before any
 * incident, so no alert markers cross the heatmaps):
 * - the job page has one time axis: every chart and heatmap spans the same x-range with the same tick
 *   labels, and their plot areas line up, so a moment is the same pixel column in each;
 * - the GPU-memory heatmap's colours follow its data (ranks at 72 GiB ± noise of 80 are not one colour),
 *   with the total on the legend;
 * - Explore has a legend for many series that toggles them, and units on its axis and values.
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

/** Screenshots for a reviewer, beside browser.e2e's. */
const SHOTS = path.join(REPO_ROOT, 'test-output', 'screenshots');

interface FleetJob {
  jobId: string;
  name: string;
  gpus: number;
  lastSampleMs: number | null;
}

interface Geometry {
  id: string;
  left: number;
  width: number;
  min: number;
  max: number;
  ticks: string;
}

let demo: Child;
let base: string;
let browser: Browser;
let jobs: FleetJob[] = [];

async function open(path: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(`${base}${path}`);
  return page;
}

/** Every time chart and heatmap of the page: its plot area's box and the x-range and ticks it drew. */
const GEOMETRY = `[...document.querySelectorAll('figure[data-x-min]')].map((f) => {
  const r = f.querySelector('[data-plot-area]').getBoundingClientRect();
  return { id: f.dataset.testid, left: r.left, width: r.width, min: Number(f.dataset.xMin),
    max: Number(f.dataset.xMax), ticks: f.dataset.xTicks };
})`;

/** The distinct colours of the memory heatmap's cells as painted: the middle of each row, across the plot. */
const MEMORY_COLOURS = `(() => {
  const f = document.querySelector('[data-testid="gpu-memory-heatmap"]');
  const c = f.querySelector('canvas.heatmap-canvas');
  const plot = f.querySelector('[data-plot-area]').getBoundingClientRect();
  const box = c.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const rows = Number(f.dataset.rows);
  const rowH = box.height / rows;
  const ctx = c.getContext('2d');
  const seen = new Set();
  for (let r = 0; r < rows; r++) {
    const y = Math.floor((r + 0.5) * rowH * dpr);
    const x0 = Math.ceil((plot.left - box.left + 2) * dpr);
    const x1 = Math.floor((plot.left - box.left + plot.width - 2) * dpr);
    const px = ctx.getImageData(x0, y, x1 - x0, 1).data;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] === 255) seen.add(px[i] + ',' + px[i + 1] + ',' + px[i + 2]);
  }
  return seen.size;
})()`;

describe.skipIf(!available)(
  'one time axis, honest heatmap colours, Explore legend and units (issue 17)',
  () => {
    beforeAll(async () => {
      ({ demo, base } = await startDemo({ jobs: 8, nodes: 2, gpus: 4, backfill: '4m', interval: '5s' }));
      await waitFor(
        'the demo jobs',
        async () => {
          jobs = (await getJson<{ data: { jobs: FleetJob[] } }>(`${base}/api/tw/v1/fleet`)).data.jobs;
          // The backfill is in once every job's newest sample is live (within a few intervals of now).
          return (
            (jobs.length >= 8 &&
              jobs.every((j) => j.lastSampleMs !== null && Date.now() - j.lastSampleMs < 20_000)) ||
            undefined
          );
        },
        60_000,
        500,
      );
      mkdirSync(SHOTS, { recursive: true });
      browser = await launchChromium();
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      if (demo) await stopChild(demo);
    });

    it('draws every chart of a job page on one time axis: same range, ticks and plot columns', async () => {
      const job = jobs.find((j) => j.name === 'llama-7b-pretrain')!;
      const page = await open(`/jobs/${encodeURIComponent(job.jobId)}`);
      await page.locator('body[data-job-loaded]').waitFor({ timeout: 60_000 });
      // Training curves, throughput, step time, both heatmaps and the per-GPU charts, all with data.
      for (const id of ['chart-loss', 'chart-throughput', 'chart-step-time', 'chart-gpu_power_watts'])
        await expect
          .poll(async () => Number(await page.getByTestId(id).getAttribute('data-points')), {
            timeout: 30_000,
            message: `points of ${id}`,
          })
          .toBeGreaterThan(0);
      await page.locator('[data-testid="gpu-memory-heatmap"][data-painted]').waitFor({ timeout: 30_000 });
      // Live pages move their end with now: read every chart in one go, and again if a redraw fell between.
      let charts: Geometry[] = [];
      await expect
        .poll(
          async () => {
            charts = (await page.evaluate(GEOMETRY)) as Geometry[];
            return new Set(charts.map((c) => `${c.min}/${c.max}/${c.ticks}`)).size;
          },
          { timeout: 20_000 },
        )
        .toBe(1);
      const ids = charts.map((c) => c.id);
      for (const id of [
        'chart-loss',
        'chart-throughput',
        'chart-step-time',
        'gpu-util-heatmap',
        'gpu-memory-heatmap',
        'chart-gpu_power_watts',
        'chart-gpu_temperature_celsius',
      ])
        expect(ids).toContain(id);
      // The page's window: the whole run (the job started 4 min ago), not each chart's own data.
      const first = charts[0]!;
      expect(first.max - first.min).toBeGreaterThan(3 * 60_000);
      expect(first.ticks.split(',').length).toBeGreaterThanOrEqual(3);
      // A vertical line at t crosses every chart at the same x (within 2 px).
      for (const f of [0.1, 0.5, 0.9]) {
        const t = first.min + f * (first.max - first.min);
        const xs = charts.map((c) => c.left + ((t - c.min) / (c.max - c.min)) * c.width);
        expect(
          Math.max(...xs) - Math.min(...xs),
          `${f}: ${charts.map((c, i) => `${c.id} ${xs[i]}`)}`,
        ).toBeLessThanOrEqual(2);
      }
      await page.screenshot({ path: path.join(SHOTS, 'charts-job-time-axis.png'), fullPage: true });
      await page.close();
    }, 120_000);

    it('paints the GPU-memory heatmap in more than one colour when ranks differ, with the total on its legend', async () => {
      const job = jobs.find((j) => j.name === 'moe-8x1b-pretrain')!;
      // A fixed window: the heatmap as loaded, with no live tail (the next test follows now).
      const to = Date.now();
      const page = await open(`/jobs/${encodeURIComponent(job.jobId)}?from=${to - 10 * 60_000}&to=${to}`);
      await page.locator('body[data-job-loaded]').waitFor({ timeout: 60_000 });
      const heat = page.getByTestId('gpu-memory-heatmap');
      await heat.locator('[data-testid="scale-total"]').waitFor({ timeout: 30_000 });
      expect(await heat.getByTestId('scale-total').textContent()).toMatch(/total 80 GiB/);
      const colours = async () => (await page.evaluate(MEMORY_COLOURS)) as number;
      // 0.9 × 80 GiB ± 0.03% on every rank: zero-to-max scaling painted them all the top colour (1 or 2).
      await expect.poll(colours, { timeout: 30_000 }).toBeGreaterThanOrEqual(8);
      const lo = Number(await heat.locator('.scale-legend').getAttribute('data-lo'));
      const hi = Number(await heat.locator('.scale-legend').getAttribute('data-hi'));
      expect(lo).toBeGreaterThan(0.85 * 80 * 2 ** 30);
      expect(hi).toBeLessThan(0.95 * 80 * 2 ** 30);
      await heat.screenshot({ path: path.join(SHOTS, 'charts-memory-heatmap.png') });
      await page.close();
    }, 90_000);

    it('keeps the fitted GPU-memory heatmap in a window that follows now, as live samples arrive', async () => {
      const job = jobs.find((j) => j.name === 'moe-8x1b-pretrain')!;
      // The whole run, live: the page's default. Live tails of the coarse heatmap, asked while the fitted one
      // was in flight, used to overwrite it with the zero-to-max scale (one colour) for good.
      const page = await open(`/jobs/${encodeURIComponent(job.jobId)}`);
      await page.locator('body[data-job-loaded]').waitFor({ timeout: 60_000 });
      const heat = page.getByTestId('gpu-memory-heatmap');
      const legendLo = async () => Number(await heat.locator('.scale-legend').getAttribute('data-lo'));
      const colours = async () => (await page.evaluate(MEMORY_COLOURS)) as number;
      await expect.poll(colours, { timeout: 30_000 }).toBeGreaterThanOrEqual(8);
      await expect.poll(legendLo).toBeGreaterThan(0.85 * 80 * 2 ** 30);
      // New samples arrive (the demo reports every 5 s) and are merged as new columns; the scale stays fitted.
      const cols = Number(await heat.getAttribute('data-cols'));
      await expect
        .poll(async () => Number(await heat.getAttribute('data-cols')), { timeout: 30_000 })
        .toBeGreaterThan(cols);
      expect(await page.locator('body[data-job-loaded]').count()).toBe(1);
      await expect.poll(colours).toBeGreaterThanOrEqual(8);
      expect(await legendLo()).toBeGreaterThan(0.85 * 80 * 2 ** 30);
      expect(Number(await heat.locator('.scale-legend').getAttribute('data-hi'))).toBeLessThan(
        0.95 * 80 * 2 ** 30,
      );
      await page.close();
    }, 120_000);

    it('gives Explore a legend that toggles many series, and units on its axis and values', async () => {
      const page = await open(`/explore?q=${encodeURIComponent('gpu_memory_used_bytes')}&range=15m`);
      const graph = page.getByTestId('explore-graph');
      await expect
        .poll(async () => Number(await graph.getAttribute('data-series')), { timeout: 30_000 })
        .toBeGreaterThan(12);
      const legend = graph.getByTestId('series-legend');
      const rows = legend.locator('button.series-toggle');
      expect(await rows.count()).toBe(Number(await graph.getAttribute('data-series')));
      // Scrollable: it does not push the page down by a row per series.
      expect((await legend.locator('ul').boundingBox())!.height).toBeLessThanOrEqual(200);
      expect(await rows.first().locator('.series-name').textContent()).toMatch(/^gpu_memory_used_bytes\{/);
      expect(await rows.first().locator('.series-value').textContent()).toMatch(/ GiB$/);
      expect(await graph.getByTestId('explore-unit').getAttribute('data-unit')).toBe('bytes');
      await expect.poll(() => graph.getAttribute('data-y-ticks')).toMatch(/GiB/);
      // Toggle one off, then show only it (double-click), then all again.
      await rows.nth(1).click();
      expect(await rows.nth(1).getAttribute('aria-pressed')).toBe('false');
      await graph.screenshot({ path: path.join(SHOTS, 'charts-explore-legend.png') });
      await rows.nth(1).click();
      await rows.nth(2).dblclick();
      await expect.poll(() => legend.locator('button[aria-pressed="true"]').count()).toBe(1);
      expect(await rows.nth(2).getAttribute('aria-pressed')).toBe('true');
      await rows.nth(2).dblclick();
      await expect.poll(() => legend.locator('button[aria-pressed="false"]').count()).toBe(0);
      await page.close();

      // A counter under rate(): bytes per second.
      const rate = await open(
        `/explore?q=${encodeURIComponent('sum(rate(host_network_receive_bytes_total[1m]))')}&range=15m`,
      );
      await expect
        .poll(() => rate.getByTestId('explore-unit').getAttribute('data-unit'), { timeout: 30_000 })
        .toBe('bytes per second');
      await expect.poll(() => rate.getByTestId('explore-graph').getAttribute('data-y-ticks')).toMatch(/B\/s/);
      await rate.close();
    }, 90_000);

    it.skipIf(!AXE_PATH)(
      'keeps the new legend, axis and scale markup free of WCAG 2 AA violations in both themes',
      async () => {
        const job = jobs.find((j) => j.name === 'moe-8x1b-pretrain')!;
        const found: string[] = [];
        for (const theme of ['dark', 'light'] as const) {
          const context = await browser.newContext({
            viewport: { width: 1440, height: 900 },
            colorScheme: theme,
          });
          for (const p of [
            { path: `/jobs/${encodeURIComponent(job.jobId)}`, ready: 'body[data-job-loaded]' },
            { path: '/explore?q=gpu_memory_used_bytes&range=15m', ready: '[data-testid="series-legend"]' },
          ]) {
            const page = await context.newPage();
            await page.goto(`${base}${p.path}`);
            await page.locator(p.ready).first().waitFor({ timeout: 45_000 });
            for (const v of await axeViolations(page)) found.push(`${theme} ${p.path}: ${v}`);
            await page.close();
          }
          await context.close();
        }
        expect(found, found.join('\n')).toEqual([]);
      },
      120_000,
    );
  },
);
