/**
 * Configuration layering shared by the server (src/config, zod schema) and the node agent (src/agent/config.ts,
 * hand-written checks): defaults ← YAML file ← `<PREFIX><KEY>` environment variables ← command-line flags.
 * Each value remembers where it came from, so a validation error can say "[from environment variable
 * TRAINWATCH_BUS__PARTITIONS]".
 *
 * It imports no YAML parser and no schema library: the agent must stay small on a training node (docs/agent.md,
 * Footprint), so each program passes its own parser (`yaml` for the server, `js-yaml` for the agent) and
 * validates the layered tree its own way. `test/config-yaml.test.ts` checks both parsers read the shipped
 * configuration files alike.
 */
import { readFileSync } from 'node:fs';

/** A configuration tree as the YAML file spells it: nested mappings of snake_case keys. */
export type ConfigTree = Record<string, unknown>;

export interface ConfigLayerSources {
  /** Path of a YAML file; absent = defaults only. */
  readonly file?: string | undefined;
  /** Usually `process.env`; only `<prefix><KEY>` variables whose first key is a top-level config key are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Values from command-line flags, as nested objects (`{ bus: { partitions: 4 } }`); undefined values are absent. */
  readonly flags?: Readonly<Record<string, unknown>>;
}

export interface LayerOptions {
  /** Parses one YAML document; throws on invalid YAML. Also reads environment values (`"4"` → 4, `"[a]"` → ["a"]). */
  readonly parseYaml: (text: string) => unknown;
  /** Environment variable prefix, e.g. `TRAINWATCH_`; `<prefix>BUS__PARTITIONS` sets `bus.partitions`. */
  readonly envPrefix: string;
  /**
   * The top-level keys of the program's configuration. Other `<prefix>*` variables are not configuration
   * (`TRAINWATCH_JOB_ID` is the SDK's) and are ignored.
   */
  readonly topKeys: ReadonlySet<string>;
  /** Builds the program's error type for a file that cannot be read or parsed. */
  readonly error: (message: string) => Error;
}

/** The layered tree and where each key's value came from (dotted key path → source). */
export interface LayeredConfig {
  readonly tree: ConfigTree;
  readonly origin: ReadonlyMap<string, string>;
}

export function isMapping(v: unknown): v is ConfigTree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges the sources in order of precedence; the caller validates the tree. */
export function layerConfig(sources: ConfigLayerSources, opts: LayerOptions): LayeredConfig {
  const origin = new Map<string, string>();
  let tree: ConfigTree = {};

  if (sources.file) {
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (err) {
      throw opts.error(`cannot read config file ${sources.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = opts.parseYaml(text) ?? {};
    } catch (err) {
      throw opts.error(`config file ${sources.file} is not valid YAML: ${(err as Error).message}`);
    }
    if (!isMapping(parsed)) {
      throw opts.error(
        `config file ${sources.file} must contain a mapping of keys to values at the top level`,
      );
    }
    tree = mergeInto(tree, parsed, `config file ${sources.file}`, origin, []);
  }

  for (const [name, raw] of Object.entries(sources.env ?? {})) {
    if (!name.startsWith(opts.envPrefix) || raw === undefined) continue;
    const keyPath = name.slice(opts.envPrefix.length).toLowerCase().split('__');
    if (!opts.topKeys.has(keyPath[0]!)) continue;
    let value: unknown = raw;
    try {
      value = opts.parseYaml(raw) ?? null;
    } catch {
      // Not YAML: keep the raw string; validation says what was expected.
    }
    tree = mergeInto(tree, nest(keyPath, value), `environment variable ${name}`, origin, []);
  }

  if (sources.flags) tree = mergeInto(tree, sources.flags as ConfigTree, 'command-line flag', origin, []);
  return { tree, origin };
}

/** Where the value at `keyPath` (or the nearest enclosing key that was set) came from. */
export function originOf(
  origin: ReadonlyMap<string, string>,
  keyPath: readonly string[],
): string | undefined {
  for (let n = keyPath.length; n > 0; n--) {
    const o = origin.get(keyPath.slice(0, n).join('.'));
    if (o) return o;
  }
  return undefined;
}

/** The value at `keyPath` in the layered tree, if any. */
export function valueAt(tree: unknown, keyPath: readonly string[]): unknown {
  let cur = tree;
  for (const k of keyPath) {
    if (!isMapping(cur) && !Array.isArray(cur)) return undefined;
    cur = (cur as ConfigTree)[k];
  }
  return cur;
}

/**
 * One line of a validation error: `  - bus.partitions: must be ≥ 1 (got 0) [from config file x.yaml]`.
 * `showValue` adds the offending value (off for "unknown key" and cross-key problems).
 */
export function problemLine(
  layered: LayeredConfig,
  keyPath: readonly string[],
  message: string,
  showValue: boolean,
): string {
  const key = keyPath.join('.') || '(top level)';
  const from = originOf(layered.origin, keyPath);
  const got = showValue ? valueAt(layered.tree, keyPath) : undefined;
  return `  - ${key}: ${message}${got !== undefined ? ` (got ${JSON.stringify(got)})` : ''}${from ? ` [from ${from}]` : ''}`;
}

function nest(keyPath: readonly string[], value: unknown): ConfigTree {
  let out: unknown = value;
  for (let i = keyPath.length - 1; i >= 0; i--) out = { [keyPath[i]!]: out };
  return out as ConfigTree;
}

function mergeInto(
  base: ConfigTree,
  over: ConfigTree,
  source: string,
  origin: Map<string, string>,
  at: readonly string[],
): ConfigTree {
  const out: ConfigTree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const keyPath = [...at, k];
    if (isMapping(v) && isMapping(out[k])) {
      out[k] = mergeInto(out[k] as ConfigTree, v, source, origin, keyPath);
    } else {
      out[k] = v;
      origin.set(keyPath.join('.'), source);
      if (isMapping(v)) markAll(v, keyPath, source, origin);
    }
  }
  return out;
}

function markAll(tree: ConfigTree, at: readonly string[], source: string, origin: Map<string, string>): void {
  for (const [k, v] of Object.entries(tree)) {
    origin.set([...at, k].join('.'), source);
    if (isMapping(v)) markAll(v, [...at, k], source, origin);
  }
}
