import type { Command } from 'commander';
import { AGENT_FLAGS, type AgentFlags, runAgent } from '../../agent/cli.js';

/**
 * `trainwatch agent` as the full CLI knows it: its help, and commander's answer to arguments the agent's own
 * parser leaves to it. bin/trainwatch.js normally starts the agent without commander (src/agent/cli.ts).
 */
export function registerAgent(program: Command): void {
  const cmd = program
    .command('agent')
    .description(
      'run the node agent: GPU (nvidia-smi), host, exporter and TensorBoard metrics, the SDK endpoint on ' +
        '127.0.0.1:9471, an on-disk buffer, and shipping to a collector (docs/agent.md)',
    );
  for (const f of AGENT_FLAGS) cmd.option(f.option, f.help);
  // runAgent loads the agent's modules when it runs, not when the CLI starts.
  cmd.action((flags: AgentFlags) => runAgent(flags));
}
