import type { Command } from 'commander';
import { fail } from '../common.js';

interface AgentFlags {
  server?: string;
  token?: string;
  config?: string;
  dataDir?: string;
  logLevel?: string;
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description(
      'run the node agent: GPU (nvidia-smi), host, exporter and TensorBoard metrics, the SDK endpoint on ' +
        '127.0.0.1:9471, an on-disk buffer, and shipping to a collector (docs/agent.md)',
    )
    .option('--server <url>', 'collector base URL, e.g. http://trainwatch:9470 (or server.url in the config)')
    .option('--token <token>', 'ingest token (default: server.token, server.token_file or $TRAINWATCH_TOKEN)')
    .option('-c, --config <file>', 'agent YAML configuration file (docs/agent.md)')
    .option('--data-dir <dir>', 'where the disk buffer and the agent state live (default: ./agent-data)')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent')
    .action(async (flags: AgentFlags) => {
      // Loaded here, not at the top: the agent's footprint should not include other commands' modules.
      const { Agent, ConfigProblem, createAgentLogger, loadAgentConfig } = await import(
        '../../agent/index.js'
      );
      let agent: InstanceType<typeof Agent>;
      try {
        const config = loadAgentConfig({
          file: flags.config,
          env: process.env,
          flags: {
            server: {
              url: flags.server,
              token: flags.token ?? (process.env.TRAINWATCH_TOKEN || undefined),
            },
            data_dir: flags.dataDir,
            ...(flags.logLevel ? { log: { level: flags.logLevel } } : {}),
          },
        });
        agent = new Agent(config, { env: process.env, logger: createAgentLogger(config.log.level) });
        await agent.start();
      } catch (err) {
        if (err instanceof ConfigProblem) {
          process.stderr.write(`trainwatch: ${err.message}\n`);
          process.exit(2);
        }
        fail(err);
      }
      let stopping = false;
      const onSignal = (signal: string) => {
        if (stopping) process.exit(130);
        stopping = true;
        process.stderr.write(`trainwatch agent: ${signal} received, stopping\n`);
        void agent.stop().then(() => process.exit(0));
      };
      process.on('SIGINT', () => onSignal('SIGINT'));
      process.on('SIGTERM', () => onSignal('SIGTERM'));
    });
}
