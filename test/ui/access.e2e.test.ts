/**
 * Sign-in, the user menu and the settings pages in a real browser (headless Chromium driven by
 * playwright-core) against `trainwatch start` with users and no anonymous access: a password sign-in from a
 * 401, the user menu and its tenant switcher, creating and revoking an API token (its secret shown once),
 * adding a user and changing its role as an admin, what a viewer does not see, signing out — with the
 * CSRF header on every state-changing request, labelled controls, both themes and no console errors.
 * Screenshots go to test-output/screenshots/ for a reviewer.
 *
 * Needs Debian's chromium (`sudo apt-get install chromium`) and the built server and dashboard
 * (`npm run build`). Without chromium the file is skipped with that message; under CI=true it fails instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type Child,
  CLI,
  freePort,
  REPO_ROOT,
  startCli,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';
import { TestOidcProvider } from '../support/oidc-provider.js';
import { AXE_PATH, axeViolations } from '../support/ui/axe.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/ui/chromium.js';

const SHOTS = path.join(REPO_ROOT, 'test-output', 'screenshots');
const available = chromiumAvailable();
if (!available && process.env.CI === 'true')
  throw new Error(
    `${CHROMIUM} is missing: the browser tests need Debian's chromium package (.ci/run installs it)`,
  );
if (!available)
  console.warn(`skipping the browser tests: ${CHROMIUM} not found (sudo apt-get install chromium)`);

const ADMIN = { name: 'root-admin', password: 'correct horse battery' };
const VIEWER = { name: 'val-viewer', password: 'viewer password 1' };
const MULTI = { name: 'mo-multi', password: 'multi password 1' };
const OPERATOR = { name: 'op-erator', password: 'operator password 1' };

let server: Child;
let idp: TestOidcProvider;
let base: string;
let dataDir: string;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** Console errors, uncaught exceptions and unexpected HTTP errors of the pages of the current test. */
let problems: string[] = [];
/** State-changing API requests and whether each carried X-CSRF-Token. */
let writes: { method: string; path: string; csrf: boolean }[] = [];

/** `trainwatch user …` on the server's data directory. */
function userCli(args: string[], input?: string): string {
  const res = spawnSync(process.execPath, [CLI, 'user', ...args, '--data-dir', dataDir], {
    encoding: 'utf8',
    input,
    timeout: 30_000,
  });
  expect(res.status, `${args.join(' ')}: ${res.stderr}`).toBe(0);
  return res.stdout;
}

async function newPage(theme: 'dark' | 'light' = 'dark'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: theme });
  contexts.push(context);
  const page = await context.newPage();
  page.on('console', (m) => {
    // The first /auth/me of a signed-out browser answers 401 by design; Chromium logs it as a failed load.
    if (m.type() === 'error' && !/401 \(Unauthorized\)/.test(m.text()))
      problems.push(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.stack ?? e.message}`));
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (r.status() >= 400 && !(r.status() === 401 && u.pathname === '/api/tw/v1/auth/me'))
      problems.push(`HTTP ${r.status()} ${r.request().method()} ${u.pathname}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/') && !['GET', 'HEAD'].includes(r.method()))
      writes.push({ method: r.method(), path: u.pathname, csrf: Boolean(r.headers()['x-csrf-token']) });
  });
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe-core's WCAG 2 A/AA checks pass on the page as it is now (labels, names, contrast, ids…). */
async function expectLabelled(page: Page): Promise<void> {
  expect(await axeViolations(page)).toEqual([]);
}

async function signIn(page: Page, user: { name: string; password: string }, from = '/'): Promise<void> {
  await page.goto(`${base}${from}`);
  await page.getByTestId('login-page').waitFor();
  await page.getByLabel('Username', { exact: true }).fill(user.name);
  await page.getByLabel('Password', { exact: true }).fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('user-menu').waitFor();
}

describe.skipIf(!available)('sign-in, user menu and settings in Chromium', () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dataDir = tempDir('tw-ui-access-');
    const config = path.join(dataDir, 'trainwatch.yaml');
    // An OpenID provider on loopback (test/support/oidc-provider.ts) whose user is in team-b's viewers group.
    idp = await TestOidcProvider.start({
      clientId: 'trainwatch-ui',
      clientSecret: 'ui-test-secret',
      user: { sub: 'sam-1', name: 'sso-sam', claims: { groups: ['team-b-viewers'] } },
    });
    writeFileSync(
      config,
      [
        'auth:',
        '  users: true',
        '  oidc:',
        '    providers:',
        '      - id: test-idp',
        '        name: Test IdP',
        `        issuer: ${idp.issuer}`,
        '        client_id: trainwatch-ui',
        '        client_secret: ui-test-secret',
        '        allow_insecure_http: true',
        '        claims:',
        '          mapping:',
        '            team-b-viewers: { tenant: team-b, role: viewer }',
        'log:',
        '  level: warn',
        '',
      ].join('\n'),
    );
    const create = (u: { name: string; password: string }, tenant: string, role: string, ...more: string[]) =>
      userCli(
        ['create', u.name, '--tenant', tenant, '--role', role, '--password-stdin', ...more],
        u.password,
      );
    create(ADMIN, 'default', 'admin');
    create(VIEWER, 'default', 'viewer');
    create(MULTI, 'default', 'editor');
    create(OPERATOR, 'default', 'admin', '--operator');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startCli(['start', '--config', config, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir]);
    await waitFor('the server', async () => (await fetch(`${base}/readyz`)).ok || undefined, 30_000);
    // A role in a second tenant, given over the API by the operator (the CLI gives one role at creation).
    const login = await fetch(`${base}/api/tw/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: OPERATOR.name, password: OPERATOR.password }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const as = (method: string, url: string, body: unknown) =>
      fetch(`${base}${url}`, {
        method,
        headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await as('POST', '/api/tw/v1/auth/tenant', { tenant: 'team-b' })).status).toBe(200);
    const granted = await as('PATCH', `/api/tw/v1/users/${MULTI.name}`, { role: 'admin' });
    expect(granted.status, await granted.text()).toBe(200);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stopChild(server);
    await idp?.stop();
  });

  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close();
    expect(problems, problems.join('\n')).toEqual([]);
    expect(writes.filter((w) => !w.csrf && w.path !== '/api/tw/v1/auth/login')).toEqual([]);
    problems = [];
    writes = [];
  });

  it.skipIf(!AXE_PATH)(
    'the login page and every settings page pass axe-core’s WCAG 2 AA checks in both themes',
    async () => {
      const found: string[] = [];
      for (const theme of ['dark', 'light'] as const) {
        const page = await newPage(theme);
        await page.goto(`${base}/login`);
        await page.getByTestId('login-page').waitFor();
        for (const v of await axeViolations(page)) found.push(`${theme} /login: ${v}`);
        await signIn(page, ADMIN, '/settings/tokens');
        for (const [url, testId] of [
          ['/settings/tokens', 'settings-tokens'],
          ['/settings/users', 'settings-users'],
          ['/settings/audit', 'settings-audit'],
        ] as const) {
          await page.goto(`${base}${url}`);
          await page.getByTestId(testId).waitFor();
          await page.getByTestId('user-menu').click();
          for (const v of await axeViolations(page)) found.push(`${theme} ${url} (user menu open): ${v}`);
          await page.keyboard.press('Escape');
        }
      }
      expect(found, found.join('\n')).toEqual([]);
    },
    120_000,
  );

  it('sends a signed-out visitor to the login page, signs in with a password and comes back', async () => {
    const page = await newPage();
    await page.goto(`${base}/alerts`);
    await page.getByTestId('login-page').waitFor();
    expect(new URL(page.url()).pathname + new URL(page.url()).search).toBe('/login?redirect=%2Falerts');
    // The username field has focus, so the keyboard user can type at once.
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('login-username');
    await expectLabelled(page);
    await shot(page, 'login-dark');

    await page.getByLabel('Username', { exact: true }).fill(ADMIN.name);
    await page.getByLabel('Password', { exact: true }).fill('not the password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const error = page.getByTestId('login-error');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/invalid username or password/);
    expect(await page.evaluate("document.activeElement?.getAttribute('data-testid')")).toBe('login-error');
    problems = problems.filter((p) => p !== 'HTTP 401 POST /api/tw/v1/auth/login');

    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByTestId('user-menu').waitFor();
    expect(new URL(page.url()).pathname).toBe('/alerts');
    const menu = page.getByTestId('user-menu');
    expect(await menu.textContent()).toMatch(new RegExp(`${ADMIN.name}.*default · admin`));

    // The menu: keyboard-operable, Escape closes it and gives focus back.
    await menu.focus();
    await page.keyboard.press('Enter');
    const panel = page.getByTestId('user-panel');
    await panel.waitFor();
    expect(await menu.getAttribute('aria-expanded')).toBe('true');
    expect(await panel.getByRole('link').allTextContents()).toEqual(['API tokens', 'Users', 'Audit log']);
    await expectLabelled(page);
    await shot(page, 'user-menu-dark');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    expect(await page.evaluate("document.activeElement?.getAttribute('data-testid')")).toBe('user-menu');
  }, 60_000);

  it('creates a token that shows its secret once and works, then revokes it', async () => {
    const page = await newPage();
    await signIn(page, ADMIN, '/settings/tokens');
    await page.getByTestId('settings-tokens').waitFor();
    await expectLabelled(page);
    const form = page.getByTestId('token-form');
    await form.getByLabel('Name').fill('ci reader');
    await form.getByLabel('Expires after').selectOption({ label: '30 days' });
    await form.getByLabel(/Rate limit/).fill('50');
    await form.getByRole('button', { name: 'Create token' }).click();
    const secret = page.getByTestId('token-secret-value');
    await secret.waitFor();
    const token = (await secret.textContent())!.trim();
    expect(token).toMatch(/^twk_/);
    await shot(page, 'settings-tokens-dark');

    const row = page.locator('[data-testid="tokens-table"] tbody tr', { hasText: 'ci reader' });
    await row.waitFor();
    expect(await row.getAttribute('data-state')).toBe('active');
    expect(await row.textContent()).toMatch(/read/);
    expect(await row.textContent()).toMatch(/50\/s/);
    const asToken = () =>
      fetch(`${base}/api/tw/v1/jobs`, { headers: { authorization: `Bearer ${token}` } }).then(
        (r) => r.status,
      );
    expect(await asToken()).toBe(200);

    // Done hides the secret for good: it is in no table and no later answer.
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.getByTestId('token-secret').count()).toBe(0);
    expect(await page.content()).not.toContain(token);

    await row.getByRole('button', { name: 'Revoke token ci reader' }).click();
    await row.getByRole('button', { name: 'Revoke ci reader' }).click();
    await expect.poll(() => row.getAttribute('data-state')).toBe('revoked');
    expect(await asToken()).toBe(401);
    expect(writes.map((w) => `${w.method} ${w.path.replace(/\/tokens\/[^/]+$/, '/tokens/:id')}`)).toEqual(
      expect.arrayContaining([
        'POST /api/tw/v1/auth/login',
        'POST /api/tw/v1/tokens',
        'DELETE /api/tw/v1/tokens/:id',
      ]),
    );

    // The audit log shows both, newest first, and filters by action.
    await page.getByRole('link', { name: 'Audit log' }).click();
    const audit = page.locator('[data-testid="audit-table"] tbody tr');
    await expect
      .poll(() => audit.allTextContents())
      .toEqual(
        expect.arrayContaining([
          expect.stringMatching(/token\.revoke/),
          expect.stringMatching(/token\.create/),
        ]),
      );
    await page.getByLabel('Action').fill('token.revoke');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect
      .poll(async () => (await audit.allTextContents()).every((t) => t.includes('token.revoke')))
      .toBe(true);
    expect(await audit.first().textContent()).toContain(ADMIN.name);
    await expectLabelled(page);
    await shot(page, 'settings-audit-dark');
  }, 60_000);

  it('adds a user as admin, changes its role and disables it', async () => {
    const page = await newPage();
    await signIn(page, ADMIN, '/settings/users');
    await page.getByTestId('settings-users').waitFor();
    await expectLabelled(page);
    const form = page.getByTestId('user-form');
    await form.getByLabel('Username', { exact: true }).fill('newbie');
    await form.getByLabel('Initial password').fill('a long enough password');
    await form.getByLabel('Role').selectOption('editor');
    await form.getByRole('button', { name: 'Add user' }).click();
    await form.getByRole('status').waitFor();
    const row = page.locator('[data-testid="users-table"] tbody tr[data-user="newbie"]');
    await row.waitFor();
    const role = row.getByLabel('Role of newbie in default');
    expect(await role.inputValue()).toBe('editor');
    await role.selectOption('viewer');
    await page.reload();
    await row.waitFor();
    expect(await row.getByLabel('Role of newbie in default').inputValue()).toBe('viewer');
    await row.getByRole('button', { name: 'Disable newbie' }).click();
    await expect.poll(() => row.textContent()).toMatch(/disabled/);
    await shot(page, 'settings-users-dark');

    // The new user can sign in until disabled: now it cannot.
    const res = await fetch(`${base}/api/tw/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'newbie', password: 'a long enough password' }),
    });
    expect(res.status).toBe(401);
  }, 60_000);

  it('shows a viewer no settings, and a forbidden settings URL explains why without a 403', async () => {
    const page = await newPage();
    await signIn(page, VIEWER);
    const menu = page.getByTestId('user-menu');
    expect(await menu.textContent()).toMatch(/default · viewer/);
    await menu.click();
    const panel = page.getByTestId('user-panel');
    await panel.waitFor();
    expect(await panel.getByRole('link').count()).toBe(0);
    expect(await panel.getByRole('navigation', { name: 'Settings' }).count()).toBe(0);
    await page.goto(`${base}/settings/tokens`);
    await page.getByTestId('settings-forbidden').waitFor();
    expect(await page.getByTestId('settings-forbidden').textContent()).toMatch(
      /admin role in tenant default/,
    );
    expect(await page.getByTestId('token-form').count()).toBe(0);

    // Sign out: the cookie is gone, and the next page asks to sign in again.
    await page.getByTestId('user-menu').click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('login-page').waitFor();
    await page.goto(`${base}/`);
    await page.getByTestId('login-page').waitFor();
  }, 60_000);

  it('switches the current tenant among the user’s tenants, in the light theme too', async () => {
    const page = await newPage();
    await page.emulateMedia({ colorScheme: 'light' });
    await signIn(page, MULTI);
    const menu = page.getByTestId('user-menu');
    expect(await menu.textContent()).toMatch(/default · editor/);
    await menu.click();
    const tenant = page.getByTestId('tenant-switch');
    expect(await tenant.locator('option').allTextContents()).toEqual(['default (editor)', 'team-b (admin)']);
    await tenant.selectOption('team-b');
    await expect.poll(() => menu.textContent()).toMatch(/team-b · admin/);
    expect(await page.getByTestId('user-panel').getByRole('link').allTextContents()).toEqual([
      'API tokens',
      'Users',
      'Audit log',
    ]);
    expect(await page.evaluate('document.documentElement.dataset.theme')).toBe('light');
    await expectLabelled(page);
    await shot(page, 'user-menu-tenant-light');
    await page.goto(`${base}/login`);
    // Signed in already: the login page goes on to the fleet.
    await page.waitForURL(`${base}/`);
    await page.getByTestId('user-menu').waitFor();
    expect(await page.getByTestId('user-menu').textContent()).toMatch(/team-b · admin/);
  }, 60_000);

  it('signs in with the OpenID provider’s button and lands where it started', async () => {
    const page = await newPage();
    await page.goto(`${base}/alerts`);
    await page.getByTestId('login-page').waitFor();
    const button = page.getByRole('link', { name: 'Sign in with Test IdP' });
    await button.waitFor();
    await expectLabelled(page);
    await shot(page, 'login-sso-dark');
    await button.click();
    await page.getByTestId('user-menu').waitFor();
    expect(new URL(page.url()).pathname).toBe('/alerts');
    expect(await page.getByTestId('user-menu').textContent()).toMatch(/sso-sam.*team-b · viewer/);
    expect(idp.authorizeRequests.at(-1)?.get('code_challenge_method')).toBe('S256');
  }, 60_000);
});
