/**
 * Security headers and the UI's Content-Security-Policy (issue 16; docs/security.md, "Headers"):
 * - every answer carries the CSP (`default-src 'self'`, no inline script or style, `frame-ancestors 'none'`),
 *   nosniff, no Referer, no framing; HSTS only over TLS; API answers are never cached;
 * - the built UI (dist/ui, `npm run build:ui`) has no inline script, style or event handler the CSP would
 *   block;
 * - in Chromium, the dashboard of `trainwatch demo` served over HTTPS (the built CLI, with `http.tls`) loads
 *   its pages with no CSP violation and no console error, and SIGHUP makes the running process serve a
 *   renewed certificate.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY, createHttpServer } from '../../src/server/http.js';
import { registerUi } from '../../src/server/ui-assets.js';
import {
  type Child,
  freePort,
  REPO_ROOT,
  startCli,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';
import { hasOpenssl, type Issued, TestCa } from '../support/tls-pki.js';
import { chromiumAvailable, launchChromium } from '../support/ui/chromium.js';

const UI_DIR = path.join(REPO_ROOT, 'dist', 'ui');
const uiBuilt = existsSync(path.join(UI_DIR, 'index.html'));
const cliBuilt = existsSync(path.join(REPO_ROOT, 'dist', 'server', 'index.js'));
if (!uiBuilt) console.warn('skipping the UI CSP checks: dist/ui is not built (npm run build:ui)');

describe('security headers', () => {
  it('every answer has the CSP, nosniff, no Referer and no framing; API answers are not cached; no HSTS over HTTP', async () => {
    const http = createHttpServer({
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      bodyLimit: 1024,
    });
    http.app.get('/api/tw/v1/example', { config: { permission: 'public' } }, async () => ({ ok: true }));
    http.app.get('/api/tw/v1/cached', { config: { permission: 'public' } }, async (_req, reply) =>
      reply.header('cache-control', 'max-age=60').send({}),
    );
    if (uiBuilt) await registerUi(http, UI_DIR);
    try {
      expect(http.tlsEnabled).toBe(false);
      for (const url of ['/api/tw/v1/example', '/healthz', ...(uiBuilt ? ['/', '/jobs/x'] : [])]) {
        const res = await http.app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(200);
        const csp = String(res.headers['content-security-policy']);
        expect(csp, url).toContain("default-src 'self'");
        expect(csp, url).toContain("script-src 'self'");
        expect(csp, url).toContain("style-src 'self'");
        expect(csp, url).toContain("frame-ancestors 'none'");
        expect(csp, url).not.toContain('unsafe-inline');
        expect(csp, url).not.toContain('unsafe-eval');
        // Over plain HTTP upgrading would send the UI's requests to a port that does not speak TLS.
        expect(csp, url).not.toContain('upgrade-insecure-requests');
        expect(res.headers['x-content-type-options'], url).toBe('nosniff');
        expect(res.headers['referrer-policy'], url).toBe('no-referrer');
        expect(res.headers['x-frame-options'], url).toBe('DENY');
        expect(res.headers['strict-transport-security'], url).toBeUndefined();
      }
      const api = await http.app.inject({ method: 'GET', url: '/api/tw/v1/example' });
      expect(api.headers['cache-control']).toBe('no-store');
      const notFound = await http.app.inject({ method: 'GET', url: '/api/tw/v1/nothing' });
      expect(notFound.statusCode).toBe(404);
      expect(notFound.headers['cache-control']).toBe('no-store');
      // A route that chose its own caching keeps it.
      const cached = await http.app.inject({ method: 'GET', url: '/api/tw/v1/cached' });
      expect(cached.headers['cache-control']).toBe('max-age=60');
    } finally {
      await http.app.close();
    }
  });

  it.skipIf(!uiBuilt)('the built UI has no inline script, style or event handler', () => {
    const html = readFileSync(path.join(UI_DIR, 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs, 'every script is a file').toMatch(/\bsrc=/);
      expect(body!.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    // The icon is a data: URL, which img-src allows.
    expect(CONTENT_SECURITY_POLICY['img-src']).toContain('data:');
  });
});

/** The fingerprint of the certificate a new TLS connection to `port` is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe.skipIf(!chromiumAvailable() || !hasOpenssl() || !uiBuilt || !cliBuilt)(
  'the dashboard over HTTPS in Chromium, under its CSP',
  () => {
    const dir = tempDir('tw-tls-ui-');
    let ca: TestCa;
    let server: Issued;
    let demo: Child;
    let base: string;
    let port: number;
    let browser: Browser;

    beforeAll(async () => {
      ca = TestCa.create(dir, 'ui-ca');
      server = ca.issue('server', {
        cn: 'localhost',
        san: ['DNS:localhost', 'IP:127.0.0.1'],
        usage: 'server',
      });
      const config = path.join(dir, 'trainwatch.yaml');
      writeFileSync(
        config,
        `http:\n  tls:\n    cert_file: ${server.certFile}\n    key_file: ${server.keyFile}\n`,
      );
      port = await freePort();
      base = `https://127.0.0.1:${port}`;
      // The demo's simulator sends over HTTPS too: it trusts the test CA through NODE_EXTRA_CA_CERTS.
      demo = startCli(
        [
          'demo',
          '--config',
          config,
          '--listen',
          `127.0.0.1:${port}`,
          '--jobs',
          '2',
          '--nodes',
          '1',
          '--gpus',
          '2',
          '--backfill',
          '3m',
        ],
        { NODE_EXTRA_CA_CERTS: ca.ca.certFile },
      );
      await waitFor(
        'the dashboard URL',
        () => (demo.output().includes(`dashboard at ${base}/`) ? true : undefined),
        60_000,
      );
      browser = await launchChromium();
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      if (demo) await stopChild(demo);
    });

    /** Opens `url`, recording CSP violations (the DOM event) and console errors until `ready` resolves. */
    async function visit(page: Page, url: string, ready: () => Promise<unknown>): Promise<void> {
      await page.goto(url);
      await ready();
    }

    it('loads the fleet, a job, alerts and Explore with no CSP violation and no console error', async () => {
      const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1440, height: 900 },
      });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
      // Runs in the page before its scripts: records every CSP violation event.
      await page.addInitScript({
        content:
          'window.cspViolations = []; document.addEventListener("securitypolicyviolation", (e) => ' +
          'window.cspViolations.push(e.violatedDirective + " blocked " + e.blockedURI + " (" + e.sourceFile + ":" + e.lineNumber + ")"));',
      });
      const violations = () => page.evaluate('window.cspViolations') as Promise<string[]>;
      try {
        const first = await page.goto(`${base}/`);
        const headers = first!.headers();
        expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
        expect(headers['content-security-policy']).toContain('upgrade-insecure-requests');
        expect(headers['strict-transport-security']).toMatch(/max-age=31536000/);
        await page.locator('[data-testid="jobs-table"] tbody tr').first().waitFor({ timeout: 60_000 });
        expect(await violations()).toEqual([]);

        // The page's own fetch of the API (connect-src 'self') gives the job to open.
        const fleet = await page.evaluate(() => fetch('/api/tw/v1/fleet').then((r) => r.json()));
        const jobId = (fleet as { data: { jobs: { jobId: string }[] } }).data.jobs[0]!.jobId;
        await visit(page, `${base}/jobs/${encodeURIComponent(jobId)}`, () =>
          page.locator('[data-testid="chart-loss"]').waitFor({ timeout: 30_000 }),
        );
        await expect
          .poll(
            async () => Number(await page.locator('[data-testid="chart-loss"]').getAttribute('data-points')),
            {
              timeout: 30_000,
            },
          )
          .toBeGreaterThan(0);
        expect(await violations()).toEqual([]);

        await visit(page, `${base}/alerts`, () => page.waitForLoadState('networkidle'));
        expect(await violations()).toEqual([]);

        await visit(page, `${base}/explore`, () => page.getByTestId('promql-input').waitFor());
        await page.getByTestId('promql-input').fill('avg by (job_id) (gpu_utilization_ratio)');
        await page.getByTestId('promql-run').click();
        await expect
          .poll(async () => Number(await page.getByTestId('explore-graph').getAttribute('data-points')), {
            timeout: 30_000,
          })
          .toBeGreaterThan(0);
        expect(await violations()).toEqual([]);
        expect(problems, problems.join('\n')).toEqual([]);
      } finally {
        await context.close();
      }
    }, 180_000);

    it('SIGHUP makes the running process serve a renewed certificate', async () => {
      expect(await servedFingerprint(port)).toBe(server.fingerprint256);
      const renewed = ca.issue('server', {
        cn: 'localhost',
        san: ['DNS:localhost', 'IP:127.0.0.1'],
        usage: 'server',
      });
      demo.proc.kill('SIGHUP');
      await waitFor('the renewed certificate', async () =>
        (await servedFingerprint(port)) === renewed.fingerprint256 ? true : undefined,
      );
      // Still running (SIGHUP must not stop it): the demo keeps answering.
      expect(demo.proc.exitCode).toBeNull();
    }, 60_000);
  },
);
