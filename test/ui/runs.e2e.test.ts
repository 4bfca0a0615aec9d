/**
 * The runs table (issue 17, "what users expect": a runs table as in W&B) in a real browser against
 * `trainwatch demo`: sort, filter and group by summary and config columns (on the server), the view in the URL
 * surviving a reload, two runs selected into compare, the scatter of a hyperparameter against a metric, and
 * axe-core's WCAG 2 AA checks in both themes.
 *
 * The demo keeps running while the test reads the page, so checks are on what the page shows (its rows are in
 * order, each satisfies the filter) and on run identities, which do not change, rather than on live numbers.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Child, getJson, REPO_ROOT, stopChild, waitFor } from '../support/helpers.js';
import { AXE_PATH, axeViolations } from '../support/ui/axe.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/ui/chromium.js';
import { startDemo } from '../support/ui/demo.js';

const available = chromiumAvailable();
if (!available && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package`);

const SHOTS = path.join(REPO_ROOT, 'test-output', 'screenshots');

interface ApiRun {
  jobId: string;
  name: string;
  config: Record<string, unknown>;
  summary: Record<string, { last: number | 'NaN'; best: number | null }>;
}

let demo: Child;
let base: string;
let browser: Browser;
const contexts: Partial<Record<'dark' | 'light', BrowserContext>> = {};
/** The runs with a loss, as the API listed them once the demo had some history. */
let runs: ApiRun[] = [];

async function open(p: string, theme: 'dark' | 'light' = 'dark'): Promise<Page> {
  const page = await contexts[theme]!.newPage();
  await page.goto(`${base}${p}`);
  return page;
}

/** The `data-value` of column `key` in every run row, in the order shown. */
async function columnValues(page: Page, key: string): Promise<string[]> {
  return page
    .locator(`[data-testid="runs-table"] tbody tr[data-run-id] td[data-column="${key}"]`)
    .evaluateAll((tds) => tds.map((td) => td.getAttribute('data-value') ?? ''));
}

/** Numbers in order (ascending or descending), then the runs without one (missing or NaN). */
function sortedWithMissingLast(values: string[], desc: boolean): boolean {
  const nums = values.map((v) => (v === '' || v === 'NaN' ? null : Number(v)));
  const firstMissing = nums.indexOf(null);
  const present = (firstMissing < 0 ? nums : nums.slice(0, firstMissing)) as number[];
  if (firstMissing >= 0 && nums.slice(firstMissing).some((n) => n !== null)) return false;
  return present.every((n, i) => i === 0 || (desc ? present[i - 1]! >= n : present[i - 1]! <= n));
}

describe.skipIf(!available)('the runs table, in Chromium', () => {
  beforeAll(async () => {
    ({ demo, base } = await startDemo({ jobs: 6, nodes: 1, gpus: 2, backfill: '6m', interval: '5s' }));
    runs = await waitFor(
      'four runs with a loss and a learning rate in /api/tw/v1/runs',
      async () => {
        const r = await getJson<{ data: { runs: ApiRun[] } }>(`${base}/api/tw/v1/runs?limit=500`);
        const withLoss = r.data.runs.filter(
          (x) => typeof x.summary.loss?.last === 'number' && typeof x.config.learning_rate === 'number',
        );
        return withLoss.length >= 4 ? withLoss : undefined;
      },
      120_000,
      1000,
    );
    mkdirSync(SHOTS, { recursive: true });
    browser = await launchChromium();
    for (const theme of ['dark', 'light'] as const)
      contexts[theme] = await browser.newContext({
        viewport: { width: 1440, height: 900 },
        colorScheme: theme,
      });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (demo) await stopChild(demo);
  });

  it('sorts by a summary column on the server, both ways, with runs without a loss last', async () => {
    const page = await open('/runs');
    const rows = page.locator('[data-testid="runs-table"] tbody tr[data-run-id]');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(runs.length);
    const lossHeader = page.locator('th[data-column="loss"]');
    await lossHeader.locator('button').click();
    await expect.poll(() => lossHeader.getAttribute('aria-sort')).toBe('ascending');
    expect(new URL(page.url()).searchParams.get('sort')).toBe('loss');
    await expect.poll(async () => sortedWithMissingLast(await columnValues(page, 'loss'), false)).toBe(true);
    await lossHeader.locator('button').click();
    await expect.poll(() => lossHeader.getAttribute('aria-sort')).toBe('descending');
    expect(new URL(page.url()).searchParams.get('sort')).toBe('-loss');
    await expect.poll(async () => sortedWithMissingLast(await columnValues(page, 'loss'), true)).toBe(true);
    // A config column sorts as numbers, not as text (1e-4 before 3e-4 before 0.001).
    const lrHeader = page.locator('th[data-column="config.learning_rate"]');
    await lrHeader.locator('button').click();
    await expect.poll(() => lrHeader.getAttribute('aria-sort')).toBe('ascending');
    await expect
      .poll(async () => sortedWithMissingLast(await columnValues(page, 'config.learning_rate'), false))
      .toBe(true);
    await page.close();
  }, 60_000);

  it('filters by a hyperparameter, and keeps sort and filters in the URL across a reload', async () => {
    const lrs = [...new Set(runs.map((r) => r.config.learning_rate as number))].sort((a, b) => a - b);
    const threshold = lrs[Math.floor((lrs.length - 1) / 2)]!;
    const expected = runs.filter((r) => (r.config.learning_rate as number) <= threshold).map((r) => r.jobId);
    const excluded = runs.filter((r) => (r.config.learning_rate as number) > threshold).map((r) => r.jobId);
    expect(excluded.length).toBeGreaterThan(0);

    const page = await open('/runs?sort=-loss');
    const rows = page.locator('[data-testid="runs-table"] tbody tr[data-run-id]');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.getByLabel('Filter column').selectOption('config.learning_rate');
    await page.getByLabel('Filter operator').selectOption('<=');
    await page.getByLabel('Filter value').fill(String(threshold));
    await page.getByRole('button', { name: 'Add filter' }).click();
    await expect
      .poll(() => new URL(page.url()).searchParams.getAll('filter'))
      .toEqual([`config.learning_rate<=${threshold}`]);

    const check = async (p: Page) => {
      await expect
        .poll(
          async () => {
            const ids = await p
              .locator('[data-testid="runs-table"] tbody tr[data-run-id]')
              .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-run-id')));
            return {
              hasExpected: expected.every((id) => ids.includes(id)),
              hasExcluded: excluded.some((id) => ids.includes(id)),
            };
          },
          { timeout: 20_000 },
        )
        .toEqual({ hasExpected: true, hasExcluded: false });
      for (const v of await columnValues(p, 'config.learning_rate'))
        expect(Number(v)).toBeLessThanOrEqual(threshold);
      expect(sortedWithMissingLast(await columnValues(p, 'loss'), true)).toBe(true);
    };
    await check(page);
    await page.reload();
    await check(page);
    await expect(page.locator(`[data-filter="config.learning_rate<=${threshold}"]`).count()).resolves.toBe(1);
    expect(await page.locator('th[data-column="loss"]').getAttribute('aria-sort')).toBe('descending');
    await page.screenshot({ path: path.join(SHOTS, 'runs-filtered.png'), fullPage: true });
    await page.close();
  }, 60_000);

  it('groups by any column, with counts, and opens a group on its runs', async () => {
    const page = await open('/runs');
    await page
      .locator('[data-testid="runs-table"] tbody tr[data-run-id]')
      .first()
      .waitFor({ timeout: 30_000 });
    await page.getByLabel('Group by').selectOption('config.optimizer');
    expect(new URL(page.url()).searchParams.get('group')).toBe('config.optimizer');
    const groups = page.locator('tr.run-group');
    await expect.poll(() => groups.count(), { timeout: 20_000 }).toBeGreaterThan(0);
    const counts = (await page.getByTestId('group-count').allTextContents()).map((t) =>
      Number.parseInt(t, 10),
    );
    const total = Number.parseInt((await page.getByTestId('runs-total').textContent()) ?? '', 10);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(total);
    const optimizers = new Set(runs.map((r) => String(r.config.optimizer)));
    for (const o of optimizers) expect(await page.locator(`tr.run-group[data-group="${o}"]`).count()).toBe(1);

    const first = groups.first();
    const value = (await first.getAttribute('data-group'))!;
    await first.getByRole('button').click();
    const members = page.locator('[data-testid="runs-table"] tbody tr[data-run-id]');
    await expect.poll(() => members.count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    for (const v of await columnValues(page, 'config.optimizer')) expect(v).toBe(value);
    await page.close();
  }, 60_000);

  it('selects two runs into compare, which opens with both', async () => {
    const [a, b] = runs;
    const page = await open('/runs?sort=job_id');
    for (const r of [a!, b!])
      await page.locator(`tr[data-run-id="${r.jobId}"] input[type="checkbox"]`).check({ timeout: 30_000 });
    const compare = page.getByTestId('runs-compare');
    expect(await compare.isEnabled()).toBe(true);
    await compare.click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/compare');
    expect(new URL(page.url()).searchParams.get('jobs')?.split(',').sort()).toEqual(
      [a!.jobId, b!.jobId].sort(),
    );
    const chips = page.locator('fieldset[aria-label="Runs being compared"] .chip');
    await expect.poll(() => chips.count(), { timeout: 20_000 }).toBe(2);
    await expect
      .poll(() => chips.evaluateAll((cs) => cs.filter((c) => c.getAttribute('data-unknown') === '1').length))
      .toBe(0);
    await page.close();
  }, 60_000);

  it('draws the scatter of a hyperparameter against a metric, in the order of the hyperparameter', async () => {
    const page = await open('/runs?x=config.learning_rate&y=loss_best');
    const svg = page.getByTestId('runs-scatter');
    await svg.waitFor({ timeout: 30_000 });
    expect(await svg.getAttribute('data-x')).toBe('config.learning_rate');
    expect(await svg.getAttribute('data-y')).toBe('loss_best');
    const circles = svg.locator('circle[data-run-id]');
    await expect.poll(() => circles.count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(runs.length);
    const points = await circles.evaluateAll((cs) =>
      cs.map((c) => ({ id: c.getAttribute('data-run-id')!, cx: Number(c.getAttribute('cx')) })),
    );
    const lrOf = new Map(runs.map((r) => [r.jobId, r.config.learning_rate as number]));
    const known = points.filter((p) => lrOf.has(p.id)).sort((p, q) => lrOf.get(p.id)! - lrOf.get(q.id)!);
    for (let i = 1; i < known.length; i++) {
      const [p, q] = [known[i - 1]!, known[i]!];
      if (lrOf.get(p.id)! < lrOf.get(q.id)!) expect(p.cx).toBeLessThan(q.cx);
    }
    // A click on a point selects its run for compare.
    await circles.first().click();
    await expect.poll(() => page.getByTestId('runs-compare').textContent()).toMatch(/\(1\)/);
    await page.screenshot({ path: path.join(SHOTS, 'runs-scatter.png'), fullPage: true });
    await page.close();
  }, 60_000);

  it.skipIf(!AXE_PATH)(
    'passes axe-core’s WCAG 2 AA checks in both themes, plain and grouped',
    async () => {
      const found: string[] = [];
      for (const theme of ['dark', 'light'] as const) {
        for (const p of ['/runs?sort=-loss&filter=loss>0', '/runs?group=status']) {
          const page = await open(p, theme);
          await page.locator('[data-testid="runs-table"] tbody tr').first().waitFor({ timeout: 30_000 });
          if (p.includes('group')) await page.locator('tr.run-group button').first().click();
          else await page.getByTestId('runs-scatter').waitFor({ timeout: 20_000 });
          for (const v of await axeViolations(page)) found.push(`${theme} ${p}: ${v}`);
          await page.close();
        }
      }
      expect(found).toEqual([]);
    },
    120_000,
  );
});
