import type { Command } from 'commander';
import { durationArg } from '../common.js';
import { type SimFlags, simulationConfig, simulatorOptions } from './simulation-options.js';

export function registerSimulate(program: Command): void {
  simulatorOptions(
    program
      .command('simulate')
      .description('run the fleet simulator against a running trainwatch (or any native-protocol collector)')
      .requiredOption('--url <url>', 'collector base URL, e.g. http://127.0.0.1:9470')
      .option('--token <token>', 'ingest token (default: $TRAINWATCH_TOKEN)')
      .option(
        '--duration <duration>',
        'how long to run live after the backfill (0 = until interrupted)',
        durationArg,
        0,
      ),
    '0s',
  ).action(async (flags: SimFlags & { url: string }) => {
    const abort = new AbortController();
    process.on('SIGINT', () => abort.abort());
    process.on('SIGTERM', () => abort.abort());
    let lastPrint = 0;
    const { runSimulation } = await import('../../simulator/index.js');
    const report = await runSimulation({
      ...simulationConfig(flags, flags.url, abort.signal),
      onIncident: (inc) => process.stdout.write(`${JSON.stringify({ incident: inc })}\n`),
      onProgress: (r) => {
        if (Date.now() - lastPrint < 5000) return;
        lastPrint = Date.now();
        process.stdout.write(`${JSON.stringify({ progress: { ...r, incidents: r.incidents.length } })}\n`);
      },
    });
    process.stdout.write(`${JSON.stringify({ done: { ...report, incidents: report.incidents.length } })}\n`);
    process.exit(report.failedBatches > 0 ? 1 : 0);
  });
}
