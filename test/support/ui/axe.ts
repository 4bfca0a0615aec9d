/**
 * axe-core's WCAG 2 A and AA checks on a page, for the Chromium tests. axe-core is a devDependency
 * (`axe-core/axe.min.js`); `AXE_CORE_PATH` may name another copy. Without it the checks are skipped with a
 * warning on a developer machine and fail under CI=true.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

function axePath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('axe-core/axe.min.js');
  } catch {
    const p = process.env.AXE_CORE_PATH;
    return p && existsSync(p) ? p : undefined;
  }
}

/** Where axe-core's browser bundle is, if installed. */
export const AXE_PATH = axePath();
if (!AXE_PATH && process.env.CI === 'true')
  throw new Error('axe-core is missing: add the axe-core package (the accessibility check needs axe.min.js)');

let source: string | undefined;

/**
 * The WCAG 2 A/AA violations on `page` as it is now, one line each (`<rule> — <help>` and the first nodes).
 * axe runs through the DevTools protocol, not as an added <script>: the UI's Content-Security-Policy
 * (`script-src 'self'`) rightly refuses an injected script, and the check must run under it.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!AXE_PATH) throw new Error('axe-core is not installed');
  source ??= readFileSync(AXE_PATH, 'utf8');
  await page.evaluate(source);
  // A string, evaluated in the page (the tests are type-checked without the DOM's types).
  const violations = (await page.evaluate(`axe
    .run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } })
    .then((r) => r.violations.map((v) => ({
      id: v.id,
      help: v.help,
      nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '')),
    })))`)) as { id: string; help: string; nodes: string[] }[];
  return violations.map((v) => `${v.id} — ${v.help}\n    ${v.nodes.join('\n    ')}`);
}
