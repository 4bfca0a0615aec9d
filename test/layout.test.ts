/**
 * The test layout, checked (CONTRIBUTING.md, "Tests"): unit tests sit beside the code (`src/**\/*.test.ts`),
 * tests that start services or cross stages sit in `test/`, and the fixtures tests share live only in
 * `test/support/`. No file imports a test file, production code never imports from `test/`, and whatever is
 * imported from `test/` is under `test/support/`. The rules read import specifiers, resolved the way TypeScript
 * resolves them here (`./x.js` is `x.ts` or `x.tsx`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/helpers.js';

const SCANNED = ['src', 'test', 'bench'];
const SOURCE = /\.(ts|tsx|mts)$/;
const TEST_FILE = /\.test\.tsx?$/;

/** Relative import specifiers of a module: static and dynamic imports, re-exports and vitest module mocks. */
function relativeImports(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\bfrom\s*(['"])(\.{1,2}\/[^'"]*)\1/g,
    /\bimport\s*\(?\s*(['"])(\.{1,2}\/[^'"]*)\1/g,
    /\bvi\.(?:mock|doMock|importActual|importMock)\(\s*(['"])(\.{1,2}\/[^'"]*)\1/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[2]!);
  return specs;
}

/** The repository path an import names: `.js`/`.jsx` specifiers name the `.ts`/`.tsx` source next to them. */
function resolveImport(from: string, spec: string, exists: (file: string) => boolean): string {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  const stem = target.replace(/\.(js|jsx|mjs)$/, '');
  for (const candidate of [`${stem}.ts`, `${stem}.tsx`, `${stem}.mts`])
    if (exists(candidate)) return candidate;
  return target;
}

/**
 * Every break of the layout rules in a set of files (repository-relative POSIX paths to their source), one line
 * each, naming the file and what it does wrong.
 */
function layoutViolations(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  const exists = (f: string) => files.has(f);
  for (const [file, source] of files) {
    const isTest = TEST_FILE.test(file);
    if (file.startsWith('test/') && !isTest && !file.startsWith('test/support/'))
      found.push(`${file}: a shared test fixture outside test/support/ (move it there)`);
    for (const spec of relativeImports(source)) {
      const target = resolveImport(file, spec, exists);
      if (TEST_FILE.test(target)) found.push(`${file}: imports the test file ${target}`);
      else if (target.startsWith('test/') && !target.startsWith('test/support/'))
        found.push(`${file}: imports ${target}, which is not under test/support/`);
      if (target.startsWith('test/') && file.startsWith('src/') && !isTest)
        found.push(`${file}: production code imports the test fixture ${target}`);
    }
  }
  return found.sort();
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(rel));
    else if (entry.isFile() && SOURCE.test(entry.name)) out.push(rel);
  }
  return out;
}

describe('test layout', () => {
  it('holds in this repository', () => {
    const files = new Map<string, string>();
    // This file's own examples below are imports only in a string.
    for (const dir of SCANNED)
      for (const f of sourceFiles(dir))
        if (f !== 'test/layout.test.ts') files.set(f, readFileSync(path.join(REPO_ROOT, f), 'utf8'));
    // The scan must see the tree: both kinds of tests and the shared fixtures.
    expect([...files.keys()].filter((f) => f.startsWith('src/') && TEST_FILE.test(f)).length).toBeGreaterThan(
      50,
    );
    expect(files.has('test/support/helpers.ts')).toBe(true);
    expect(layoutViolations(files)).toEqual([]);
  });

  it('flags test-file imports, fixtures outside test/support/, and production code importing tests', () => {
    const files = new Map<string, string>([
      ['test/support/helpers.ts', 'export const x = 1;'],
      ['test/alerting/receivers.ts', 'export const y = 2;'],
      [
        'test/alerting/notify.test.ts',
        "import { y } from './receivers.js';\nimport { x } from '../support/helpers.js';",
      ],
      ['test/e2e/other.test.ts', "import {\n  z,\n} from '../alerting/notify.test.js';"],
      ['src/meta/open.test.ts', "import { x } from '../../test/support/helpers.js';"],
      ['src/meta/open.ts', "const h = await import('../../test/support/helpers.js');"],
      ['src/ui/page.tsx', "vi.mock('./page.test.js');"],
      ['src/ui/page.test.tsx', ''],
    ]);
    expect(layoutViolations(files)).toEqual([
      'src/meta/open.ts: production code imports the test fixture test/support/helpers.ts',
      'src/ui/page.tsx: imports the test file src/ui/page.test.tsx',
      'test/alerting/notify.test.ts: imports test/alerting/receivers.ts, which is not under test/support/',
      'test/alerting/receivers.ts: a shared test fixture outside test/support/ (move it there)',
      'test/e2e/other.test.ts: imports the test file test/alerting/notify.test.ts',
    ]);
  });
});
