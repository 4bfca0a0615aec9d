export { ConfigError, type ConfigSources, loadConfig } from './load.js';
export { type Config, configSchema, ROLE_NAMES, type RoleName } from './schema.js';
