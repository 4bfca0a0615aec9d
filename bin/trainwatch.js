#!/usr/bin/env node
// The compiled CLI lives in dist/ (npm run build).
// `trainwatch agent` runs on every training node and must stay small (docs/agent.md, Footprint): it starts
// without the rest of the CLI. Its --help, and arguments it does not take, go to the full CLI.
const argv = process.argv;
const agentStarted =
  argv[2] === 'agent' && (await (await import('../dist/agent/cli.js')).runAgentCli(argv.slice(3)));
if (!agentStarted) {
  const { main } = await import('../dist/cli/main.js');
  await main(argv);
}
