import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../../model/duration.js';
import { configFrom, fail } from '../common.js';

/** A time: RFC 3339, milliseconds since the epoch, `now`, or `now-7d` / `-7d` (relative to now). */
export function timeArg(value: string): number {
  const v = value.trim();
  if (v === 'now') return Date.now();
  const rel = /^(?:now)?-(.+)$/.exec(v);
  if (rel) {
    try {
      return Date.now() - parseDuration(rel[1]!);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  }
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new InvalidArgumentError(
      `${JSON.stringify(value)} is not a time (RFC 3339, ms since the epoch, now or -7d)`,
    );
  return t;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('cold export: write stored samples (or rollups) of a time range as Parquet files')
    .requiredOption('--from <time>', 'start: RFC 3339, ms since the epoch, now or -7d', timeArg)
    .requiredOption('--to <time>', 'end (inclusive), same forms', timeArg)
    .option('--format <format>', 'output format (parquet)', 'parquet')
    .option('--tier <tier>', 'raw, 10s, 1m or 1h', 'raw')
    .option('--out <dir>', 'output directory', './export')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--metric <name>', 'only this metric')
    .option('-c, --config <file>', 'YAML configuration file (for data_dir)')
    .option('--data-dir <dir>', 'trainwatch data directory (default: ./data)')
    .action(
      async (flags: {
        from: number;
        to: number;
        format: string;
        tier: string;
        out: string;
        tenant?: string;
        metric?: string;
        config?: string;
        dataDir?: string;
      }) => {
        try {
          if (flags.format !== 'parquet')
            throw new Error(`--format ${flags.format}: only parquet is supported`);
          if (!['raw', '10s', '1m', '1h'].includes(flags.tier))
            throw new Error(`--tier ${flags.tier}: expected raw, 10s, 1m or 1h`);
          if (flags.to < flags.from) throw new Error('--to is before --from');
          const config = configFrom({ config: flags.config, dataDir: flags.dataDir });
          const { exportDataDir } = await import('../../storage/index.js');
          const results = await exportDataDir({
            dataDir: config.data_dir,
            outDir: flags.out,
            from: flags.from,
            to: flags.to,
            tier: flags.tier as 'raw',
            tenant: flags.tenant,
            metric: flags.metric,
          });
          for (const r of results) process.stdout.write(`${r.file}\t${r.series} series\t${r.rows} rows\n`);
          process.stdout.write(
            `exported ${results.reduce((n, r) => n + r.rows, 0)} rows in ${results.length} file(s) to ${flags.out}\n` +
              (results.length === 0
                ? '(data newer than the last block cut is still in the head and not exported yet)\n'
                : ''),
          );
        } catch (err) {
          fail(err);
        }
      },
    );
}
