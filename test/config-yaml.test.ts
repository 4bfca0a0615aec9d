/**
 * The server reads YAML with `yaml`, the node agent with `js-yaml` (smaller: docs/agent.md, Footprint). Both must
 * read every configuration file we ship or document alike, or a file would mean one thing to one program and
 * another to the other. Covered: the edge cases in testdata/config, every ```yaml block of the docs and README,
 * and every manifest under deploy/ (with the configuration files embedded in its ConfigMaps).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..');

interface YamlText {
  readonly where: string;
  readonly text: string;
}

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && ext.test(e.name))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)))
    .sort();
}

/** Every ```yaml fenced block of a Markdown file. */
function markdownBlocks(file: string): YamlText[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const out: YamlText[] = [];
  for (const m of text.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)) {
    const line = text.slice(0, m.index).split('\n').length;
    out.push({ where: `${file}:${line}`, text: m[1]! });
  }
  return out;
}

/** Parses every document with both libraries; an error is part of the result, so both must refuse alike. */
function both(text: string): { yaml: unknown[] | string; jsYaml: unknown[] | string } {
  let yamlDocs: unknown[] | string;
  try {
    const docs = parseAllDocuments(text);
    const errors = docs.flatMap((d) => d.errors);
    yamlDocs = errors.length > 0 ? 'error' : docs.map((d) => d.toJS());
  } catch {
    yamlDocs = 'error';
  }
  let jsYamlDocs: unknown[] | string;
  try {
    jsYamlDocs = loadAll(text);
  } catch {
    jsYamlDocs = 'error';
  }
  return { yaml: yamlDocs, jsYaml: jsYamlDocs };
}

const SOURCES: YamlText[] = [
  ...filesUnder('testdata/config', /\.ya?ml$/).map((f) => ({
    where: f,
    text: readFileSync(path.join(ROOT, f), 'utf8'),
  })),
  ...['README.md', ...filesUnder('docs', /\.md$/)].flatMap(markdownBlocks),
  ...filesUnder('deploy', /\.ya?ml$/).map((f) => ({
    where: f,
    text: readFileSync(path.join(ROOT, f), 'utf8'),
  })),
];

/** The YAML files a ConfigMap embeds (`data: {trainwatch.yaml: |...}`), read as configuration themselves. */
function embeddedConfigs(): YamlText[] {
  const out: YamlText[] = [];
  for (const src of SOURCES.filter((s) => s.where.startsWith('deploy/'))) {
    for (const doc of loadAll(src.text)) {
      const d = doc as { kind?: string; data?: Record<string, unknown> } | null;
      if (d?.kind !== 'ConfigMap' || !d.data) continue;
      for (const [name, value] of Object.entries(d.data))
        if (/\.ya?ml$/.test(name) && typeof value === 'string')
          out.push({ where: `${src.where} (${name})`, text: value });
    }
  }
  return out;
}

describe('both YAML parsers read our configuration files alike', () => {
  it('finds the files', () => {
    expect(SOURCES.length).toBeGreaterThan(20);
    expect(embeddedConfigs().length).toBeGreaterThan(0);
  });

  for (const src of [...SOURCES, ...embeddedConfigs()]) {
    it(src.where, () => {
      const r = both(src.text);
      expect(r.yaml).not.toBe('error');
      expect(r.jsYaml).toEqual(r.yaml);
    });
  }

  it('the edge cases parse as YAML 1.2 says in both', () => {
    const [doc] = loadAll(readFileSync(path.join(ROOT, 'testdata/config/yaml-edge-cases.yaml'), 'utf8')) as [
      Record<string, unknown>,
    ];
    expect(doc.not_booleans_in_yaml_1_2).toEqual(['yes', 'no', 'on', 'off', 'y', 'n']);
    expect(doc.leading_zero).toBe(755);
    expect(doc.unquoted_timestamp).toBe('2024-03-10');
    // Merge keys are not YAML 1.2: both keep `<<` as a key, which the configuration checks refuse by name.
    expect((doc.anchors as Record<string, Record<string, unknown>>).derived!['<<']).toBeDefined();
  });
});
