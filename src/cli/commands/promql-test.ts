import type { Command } from 'commander';

export function registerPromqlTest(program: Command): void {
  program
    .command('promql-test')
    .description("run Prometheus PromQL test scripts (load / eval / expect ...) against trainwatch's engine")
    .argument('<files...>', '.test files, e.g. testdata/promql/*.test')
    .option('-v, --verbose', 'print every case, not only failures')
    .action(async (files: string[], flags: { verbose?: boolean }) => {
      // The scripts load into trainwatch's own TSDB (kept in memory), the engine the server embeds. Loaded
      // here so that other commands don't pay for the engine.
      const { memoryTsdb: createStorage, runTestFile } = await import('../../query/promql/test-script.js');
      let passed = 0;
      let failed = 0;
      let skipped = 0;
      for (const file of files) {
        let r: Awaited<ReturnType<typeof runTestFile>>;
        try {
          r = await runTestFile(file, { createStorage });
        } catch (err) {
          process.stdout.write(`${file}: cannot run: ${(err as Error).message}\n`);
          failed++;
          continue;
        }
        for (const c of r.cases) {
          if (c.status === 'failed') {
            process.stdout.write(`FAIL ${file}:${c.line}: ${c.query}\n     ${c.message}\n`);
          } else if (flags.verbose) {
            const why = c.skipReason ? ` (${c.skipReason})` : '';
            process.stdout.write(
              `${c.status === 'passed' ? 'ok  ' : 'skip'} ${file}:${c.line}: ${c.query}${why}\n`,
            );
          }
        }
        const by = Object.entries(r.skippedBy)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ');
        process.stdout.write(
          `${file}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${by ? ` (${by})` : ''}\n`,
        );
        passed += r.passed;
        failed += r.failed;
        skipped += r.skipped;
      }
      process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
      process.exitCode = failed > 0 ? 1 : 0;
    });
}
