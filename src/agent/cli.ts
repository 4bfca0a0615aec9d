/**
 * `trainwatch agent`'s command line. bin/trainwatch.js starts the agent through {@link runAgentCli}, without
 * the rest of the CLI: the node agent then never loads commander, the other commands or the server's
 * configuration (zod), which keeps it under 60 MB of resident memory (docs/agent.md, Footprint).
 * `trainwatch agent --help`, and arguments this parser does not take, go to the full CLI
 * (src/cli/commands/agent.ts), which registers the same {@link AGENT_FLAGS} with commander and explains.
 *
 * This module imports nothing heavy at its top: the full CLI imports it for the flags.
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';

export interface AgentFlags {
  server?: string | undefined;
  token?: string | undefined;
  config?: string | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
}

/** The agent's flags: `option` as commander writes it, the long name as node:util's parseArgs takes it. */
export const AGENT_FLAGS = [
  {
    name: 'server',
    option: '--server <url>',
    help: 'collector base URL, e.g. http://trainwatch:9470 (or server.url in the config)',
  },
  {
    name: 'token',
    option: '--token <token>',
    help: 'ingest token (default: server.token, server.token_file or $TRAINWATCH_TOKEN)',
  },
  {
    name: 'config',
    short: 'c',
    option: '-c, --config <file>',
    help: 'agent YAML configuration file (docs/agent.md)',
  },
  {
    name: 'data-dir',
    option: '--data-dir <dir>',
    help: 'where the disk buffer and the agent state live (default: ./agent-data)',
  },
  {
    name: 'log-level',
    option: '--log-level <level>',
    help: 'trace, debug, info, warn, error, fatal or silent',
  },
] as const;

/**
 * The flags of `trainwatch agent <args>`, or undefined when these arguments are not simply the agent's
 * flags with their values (help, an unknown flag, a missing value, a positional argument): the full CLI then
 * gives its usual answer. A repeated flag counts once, with its last value, as commander does.
 */
export function parseAgentArgs(args: readonly string[]): AgentFlags | undefined {
  const options: Record<string, { type: 'string'; short?: string }> = {};
  for (const f of AGENT_FLAGS)
    options[f.name] = 'short' in f ? { type: 'string', short: f.short } : { type: 'string' };
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch {
    return undefined;
  }
  const get = (name: string) => v[name] as string | undefined;
  return {
    server: get('server'),
    token: get('token'),
    config: get('config'),
    dataDir: get('data-dir'),
    logLevel: get('log-level'),
  };
}

/** Runs `trainwatch agent <args>` when the arguments are the agent's flags; false: leave them to the full CLI. */
export async function runAgentCli(args: readonly string[]): Promise<boolean> {
  const flags = parseAgentArgs(args);
  if (!flags) return false;
  await runAgent(flags);
  return true;
}

/**
 * Loads the configuration (defaults ← file ← TRAINWATCH_AGENT_* ← flags), starts the agent and stops it
 * cleanly on SIGINT/SIGTERM (a second signal exits at once). Configuration problems exit with code 2, other
 * start failures with 1, as every trainwatch command does.
 */
export async function runAgent(flags: AgentFlags): Promise<void> {
  withoutOptimizingCompiler();
  const { Agent, AgentConfigError, createAgentLogger, loadAgentConfig } = await import('./index.js');
  let agent: InstanceType<typeof Agent>;
  try {
    const config = loadAgentConfig({
      file: flags.config,
      env: process.env,
      flags: {
        server: { url: flags.server, token: flags.token ?? (process.env.TRAINWATCH_TOKEN || undefined) },
        data_dir: flags.dataDir,
        ...(flags.logLevel ? { log: { level: flags.logLevel } } : {}),
      },
    });
    agent = new Agent(config, { env: process.env, logger: createAgentLogger(config.log.level) });
    await agent.start();
  } catch (err) {
    process.stderr.write(`trainwatch: ${(err as Error).message}\n`);
    process.exit(err instanceof AgentConfigError ? 2 : 1);
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
}

/**
 * Turns off V8's optimizing compiler (TurboFan) for the agent: it costs the agent ~6 MB of resident memory
 * (the compiler's own code paged in from the node binary, its zones, optimized code) and saves it no CPU,
 * because the agent's work is small and spread out and V8's interpreter and baseline code (Sparkplug) run it
 * as fast (bench/agent-footprint.ts, docs/agent.md: 0.50 % of a core either way). NODE_OPTIONS does not
 * accept --no-opt, so the agent sets it here, before its own code has run; the flag is read when V8 decides
 * to optimize a function, so it takes effect from then on. `node --turbofan …/trainwatch.js agent` keeps it.
 */
function withoutOptimizingCompiler(): void {
  if (process.execArgv.some((a) => /^--(no-?)?(opt|turbofan)$/.test(a))) return;
  setFlagsFromString('--no-opt');
}
