/**
 * The notifications page in Chromium against `trainwatch start`, with two webhook receivers this test runs on
 * 127.0.0.1: a job logs a NaN loss, the detector's alert is routed to both, one receiver accepts it and the
 * other refuses it (HTTP 400, a permanent failure). The page shows each receiver's health (the secret header
 * and paths never appear), the routing tree, the history with its filters in the URL, and the route tester
 * marking the path through the tree — read-only anonymous access suffices — with axe-core's WCAG 2 AA checks in
 * both themes and no console errors. Screenshots go to test-output/screenshots/.
 *
 * Needs Debian's chromium and the built server and dashboard (`npm run build`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  type Child,
  freePort,
  REPO_ROOT,
  startCli,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';
import { type HttpReceiver, startHttpReceiver } from '../support/receivers.js';
import { AXE_PATH, axeViolations } from '../support/ui/axe.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/ui/chromium.js';

const SHOTS = path.join(REPO_ROOT, 'test-output', 'screenshots');
const available = chromiumAvailable();
if (!available && process.env.CI === 'true')
  throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package`);

const PAGER_TOKEN = 'pager-bearer-4e1d2c3b5a69';
const TEAM_PATH_SECRET = 'team-hook-secret-8a7b6c5d4e';

let server: Child;
let base: string;
let browser: Browser;
let team: HttpReceiver;
let pager: HttpReceiver;
let problems: string[] = [];

async function open(url: string, theme: 'dark' | 'light'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: theme });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.stack ?? e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400)
      problems.push(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  await page.goto(`${base}${url}`);
  return page;
}

describe.skipIf(!available)('the notifications page in Chromium', () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    team = await startHttpReceiver();
    pager = await startHttpReceiver();
    pager.status = 400;
    const dir = tempDir('tw-ui-notify-');
    const config = path.join(dir, 'trainwatch.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        auth: { anonymous_scopes: ['ingest', 'read'] },
        log: { level: 'warn' },
        alerting: {
          route: {
            receiver: 'team-hook',
            group_wait: '50ms',
            group_interval: '1s',
            routes: [
              { matchers: ['job_id=~".+"'], receiver: 'team-hook', continue: true },
              { matchers: ['job_id=~".+"'], receiver: 'pager-hook' },
            ],
          },
          receivers: [
            { name: 'team-hook', webhook_configs: [{ url: `${team.url}/hooks/${TEAM_PATH_SECRET}` }] },
            {
              name: 'pager-hook',
              webhook_configs: [
                { url: `${pager.url}/page`, http_headers: { Authorization: `Bearer ${PAGER_TOKEN}` } },
              ],
            },
          ],
        },
      }),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startCli(['start', '--config', config, '--listen', `127.0.0.1:${port}`, '--data-dir', dir]);
    await waitFor(
      'the server',
      async () => (await fetch(`${base}/readyz`).catch(() => null))?.ok || undefined,
      30_000,
    );

    // A job logs a NaN loss: the detector fires, and the alert goes to both receivers.
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'train_loss', job_id: 'bert-notify', rank: '0' }).add(
      Date.now() - 1000,
      Number.NaN,
    );
    const res = await fetch(`${base}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      body: Buffer.from(
        new NativeEncoder().encodeFrame({ sourceId: 'ui-notify', sequence: 1, batch: b.build(), events: [] }),
      ),
    });
    expect(res.status, await res.text()).toBe(200);
    await waitFor(
      'one delivery and one failure',
      async () => {
        const h = (await (await fetch(`${base}/api/tw/v1/notifications/history`)).json()) as {
          data: { notifications: { status: string }[] };
        };
        const statuses = h.data.notifications.map((n) => n.status).sort();
        return statuses.join() === 'delivered,failed' || undefined;
      },
      60_000,
    );
    expect(team.received).toHaveLength(1);
    expect(pager.failures).toBe(1);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stopChild(server);
    await team?.close();
    await pager?.close();
  });

  it('shows receiver health, the routing tree, the history with filters, and tests routes', async () => {
    problems = [];
    const page = await open('/', 'dark');
    await page.getByRole('link', { name: 'Notifications', exact: true }).click();
    expect(new URL(page.url()).pathname).toBe('/notifications');

    // Receivers: one healthy, one failing with the receiver's answer; secrets nowhere on the page.
    const row = (name: string) => page.locator(`[data-testid="receiver-row"][data-receiver="${name}"]`);
    await expect.poll(() => row('team-hook').getAttribute('data-health')).toBe('ok');
    expect(await row('pager-hook').getAttribute('data-health')).toBe('failing');
    expect(await row('pager-hook').textContent()).toMatch(/HTTP 400/);
    expect(await row('team-hook').textContent()).toMatch(/ago/);
    expect(await row('team-hook').textContent()).toContain(`${team.url}/<secret>`);
    const html = await page.content();
    expect(html).not.toContain(PAGER_TOKEN);
    expect(html).not.toContain(TEAM_PATH_SECRET);

    // The routing tree: the root and its two routes.
    expect(await page.getByTestId('route-node').count()).toBe(3);

    // The history, then filtered to failures (the filter goes into the URL, so the view is a link).
    const rows = page.getByTestId('history-row');
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.getByTestId('history-range').textContent()).toBe('1–2 of 2');
    await page.getByLabel('Status', { exact: true }).selectOption('failed');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-receiver')).toBe('pager-hook');
    expect(await rows.first().textContent()).toMatch(/failed.*HTTP 400/s);
    expect(new URL(page.url()).searchParams.get('status')).toBe('failed');
    await page.getByLabel('Receiver', { exact: true }).selectOption('team-hook');
    await expect.poll(() => page.getByText('No notifications match.').count()).toBe(1);
    await page.getByLabel('Status', { exact: true }).selectOption('');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-status')).toBe('delivered');

    // The route tester: an alert of a job reaches both receivers through both routes; one without a job
    // stays at the root.
    const labels = page.getByLabel('Alert labels');
    await labels.fill('alertname=TrainingNaN job_id=bert-notify');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('route-test-receivers').textContent())
      .toBe('team-hook, pager-hook');
    expect(await page.locator('.route-node.route-hit').count()).toBe(3);
    await labels.fill('{alertname="FleetDown"}');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await expect.poll(() => page.locator('.route-node.route-hit').count()).toBe(1);
    expect(await page.getByTestId('route-test-receivers').textContent()).toBe('team-hook');
    await labels.fill('=oops');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/expected name=value/);
    await labels.fill('alertname=TrainingNaN job_id=bert-notify');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await expect.poll(() => page.locator('.route-node.route-hit').count()).toBe(3);
    await page.screenshot({ path: path.join(SHOTS, 'notifications-dark.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it.skipIf(!AXE_PATH)('passes axe-core’s WCAG 2 AA checks in both themes', async () => {
    problems = [];
    const found: string[] = [];
    for (const theme of ['dark', 'light'] as const) {
      const page = await open('/notifications?status=failed', theme);
      await page.locator('[data-testid="receiver-row"][data-health="failing"]').waitFor();
      await page.getByTestId('history-row').first().waitFor();
      await page.getByLabel('Alert labels').fill('alertname=TrainingNaN job_id=bert-notify');
      await page.getByRole('button', { name: 'Test', exact: true }).click();
      await page.getByTestId('route-test-result').waitFor();
      for (const v of await axeViolations(page)) found.push(`${theme}: ${v}`);
      if (theme === 'light')
        await page.screenshot({ path: path.join(SHOTS, 'notifications-light.png'), fullPage: true });
      await page.context().close();
    }
    expect(found).toEqual([]);
    expect(problems).toEqual([]);
  });
});
