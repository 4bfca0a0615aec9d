import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.js';

/**
 * The YAML parser, loaded on first use: most processes (the node agent above all, which must stay under
 * 60 MB) read no file and no TRAINWATCH_* variable, and the parser costs ~8 MB of resident memory.
 */
let yamlParse: ((text: string) => unknown) | undefined;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse;
  return yamlParse(text);
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Path of a YAML file; absent = defaults only. */
  readonly file?: string | undefined;
  /** Usually `process.env`; only `TRAINWATCH_<KEY>` variables whose first key is a config key are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Values from command-line flags, as nested objects (`{ bus: { partitions: 4 } }`). */
  readonly flags?: Readonly<Record<string, unknown>>;
}

type Tree = Record<string, unknown>;

const ENV_PREFIX = 'TRAINWATCH_';

/**
 * Builds the effective configuration: defaults ← file ← environment ← flags. Throws a {@link ConfigError}
 * that names every bad key, where its value came from, and what is wrong with it.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  return loadConfigWith(configSchema, sources);
}

/**
 * The same loading and error reporting for another program's schema (the agent's): defaults ← file ←
 * `<envPrefix><KEY>` environment ← flags.
 */
export function loadConfigWith<S extends z.ZodObject>(
  schema: S,
  sources: ConfigSources = {},
  envPrefix = ENV_PREFIX,
): z.output<S> {
  const origin = new Map<string, string>();
  let tree: Tree = {};

  if (sources.file) {
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${sources.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${sources.file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || Array.isArray(parsed) || parsed === null) {
      throw new ConfigError(
        `config file ${sources.file} must contain a mapping of keys to values at the top level`,
      );
    }
    tree = mergeInto(tree, parsed as Tree, `config file ${sources.file}`, origin, []);
  }

  if (sources.env) {
    const topKeys = new Set(Object.keys(schema.shape));
    for (const [name, raw] of Object.entries(sources.env)) {
      if (!name.startsWith(envPrefix) || raw === undefined) continue;
      const keyPath = name.slice(envPrefix.length).toLowerCase().split('__');
      // Other TRAINWATCH_* variables (TRAINWATCH_JOB_ID for the SDK, ...) are not server configuration.
      if (!topKeys.has(keyPath[0]!)) continue;
      let value: unknown = raw;
      try {
        value = parseYaml(raw);
      } catch {
        // Not YAML: keep the raw string; validation says what was expected.
      }
      tree = mergeInto(tree, nest(keyPath, value), `environment variable ${name}`, origin, []);
    }
  }

  if (sources.flags) tree = mergeInto(tree, sources.flags as Tree, 'command-line flag', origin, []);

  const result = schema.safeParse(tree);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const key = issue.path.join('.') || '(top level)';
    const from = originOf(origin, issue.path.map(String));
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys;
      const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
      return `  - ${keys.map((k) => prefix + k).join(', ')}: unknown key${keys.length > 1 ? 's' : ''}${from ? ` (from ${from})` : ''}`;
    }
    const got = valueAt(tree, issue.path.map(String));
    if (got !== undefined) message += ` (got ${JSON.stringify(got)})`;
    return `  - ${key}: ${message}${from ? ` [from ${from}]` : ''}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}

function nest(keyPath: string[], value: unknown): Tree {
  let out: unknown = value;
  for (let i = keyPath.length - 1; i >= 0; i--) out = { [keyPath[i]!]: out };
  return out as Tree;
}

function isPlainObject(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeInto(base: Tree, over: Tree, source: string, origin: Map<string, string>, at: string[]): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const keyPath = [...at, k];
    if (isPlainObject(v) && isPlainObject(out[k])) {
      out[k] = mergeInto(out[k] as Tree, v, source, origin, keyPath);
    } else {
      out[k] = v;
      origin.set(keyPath.join('.'), source);
      if (isPlainObject(v)) markAll(v, keyPath, source, origin);
    }
  }
  return out;
}

function markAll(tree: Tree, at: string[], source: string, origin: Map<string, string>): void {
  for (const [k, v] of Object.entries(tree)) {
    origin.set([...at, k].join('.'), source);
    if (isPlainObject(v)) markAll(v, [...at, k], source, origin);
  }
}

function originOf(origin: Map<string, string>, keyPath: string[]): string | undefined {
  for (let n = keyPath.length; n > 0; n--) {
    const o = origin.get(keyPath.slice(0, n).join('.'));
    if (o) return o;
  }
  return undefined;
}

function valueAt(tree: unknown, keyPath: string[]): unknown {
  let cur = tree;
  for (const k of keyPath) {
    if (!isPlainObject(cur) && !Array.isArray(cur)) return undefined;
    cur = (cur as Tree)[k];
  }
  return cur;
}
