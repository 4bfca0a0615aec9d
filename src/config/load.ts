import { createRequire } from 'node:module';
import { type ConfigLayerSources, layerConfig, originOf, problemLine } from '../model/config-layers.js';
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

/** Where the server's configuration comes from: a YAML file, `TRAINWATCH_*` variables, flags. */
export type ConfigSources = ConfigLayerSources;

const ENV_PREFIX = 'TRAINWATCH_';

/**
 * Builds the effective configuration: defaults ← file ← environment ← flags. Throws a {@link ConfigError}
 * that names every bad key, where its value came from, and what is wrong with it.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const layered = layerConfig(sources, {
    parseYaml,
    envPrefix: ENV_PREFIX,
    topKeys: new Set(Object.keys(configSchema.shape)),
    error: (message) => new ConfigError(message),
  });
  const result = configSchema.safeParse(layered.tree);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const keyPath = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys;
      const prefix = keyPath.length ? `${keyPath.join('.')}.` : '';
      const from = originOf(layered.origin, keyPath);
      return `  - ${keys.map((k) => prefix + k).join(', ')}: unknown key${keys.length > 1 ? 's' : ''}${from ? ` (from ${from})` : ''}`;
    }
    return problemLine(layered, keyPath, issue.message, true);
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
