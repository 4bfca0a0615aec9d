/**
 * The trainwatch agent (docs/agent.md): collects GPU, host, exporter and TensorBoard metrics on a training
 * node, takes the SDK's batches on a local endpoint, buffers everything on disk and ships it to a collector.
 */
export { Agent } from './agent.js';
export {
  AGENT_ENV_PREFIX,
  type AgentConfig,
  AgentConfigError,
  type AgentConfigSources,
  loadAgentConfig,
} from './config.js';
export { type AgentLogger, createAgentLogger, type LogLevel, silentLogger } from './log.js';
