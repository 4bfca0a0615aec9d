/**
 * `trainwatch rules check FILE...`: checks Prometheus rule files as `promtool check rules` does, with its
 * output and exit status (0 when every file is valid, 1 otherwise), so CI scripts written for promtool work.
 */
import type { Command } from 'commander';

export function registerRules(program: Command): void {
  const rules = program.command('rules').description('Prometheus alerting and recording rule files');
  rules
    .command('check')
    .description('check rule files as promtool does: YAML fields, PromQL expressions, templates')
    .argument('<files...>', 'rule files')
    .action(async (files: string[]) => {
      // The PromQL parser is loaded only for this command.
      const { checkRuleFiles } = await import('../../alerting/rules/check.js');
      const r = checkRuleFiles(files);
      process.stdout.write(r.output);
      if (r.errors) process.stderr.write(r.errors);
      process.exitCode = r.ok ? 0 : 1;
    });
}
