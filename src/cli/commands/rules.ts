/**
 * `trainwatch rules check FILE...`: checks Prometheus rule files as `promtool check rules` does, with its
 * output and exit status (0 when every file is valid, 1 otherwise), so CI scripts written for promtool work.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { countRules, parseRuleFile } from '../../alerting/rules/rule-file.js';

/** Checks each file; returns the text promtool would print and whether all were valid. */
export function checkRuleFiles(files: readonly string[]): { output: string; errors: string; ok: boolean } {
  let output = '';
  let errors = '';
  let ok = true;
  for (const file of files) {
    output += `Checking ${file}\n`;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      ok = false;
      errors += `  FAILED:\n${file}: ${(err as Error).message}\n\n`;
      continue;
    }
    const r = parseRuleFile(file, text);
    if (r.errors.length > 0) {
      ok = false;
      errors += `  FAILED:\n${r.errors.join('\n')}\n\n`;
    } else {
      output += `  SUCCESS: ${countRules(r.groups)} rules found\n\n`;
    }
  }
  return { output, errors, ok };
}

export function registerRules(program: Command): void {
  const rules = program.command('rules').description('Prometheus alerting and recording rule files');
  rules
    .command('check')
    .description('check rule files as promtool does: YAML fields, PromQL expressions, templates')
    .argument('<files...>', 'rule files')
    .action((files: string[]) => {
      const r = checkRuleFiles(files);
      process.stdout.write(r.output);
      if (r.errors) process.stderr.write(r.errors);
      process.exitCode = r.ok ? 0 : 1;
    });
}
