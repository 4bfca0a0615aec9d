/**
 * What `trainwatch rules check` prints: promtool's output and exit status for a list of rule files, so CI
 * scripts written for `promtool check rules` work unchanged.
 */
import { readFileSync } from 'node:fs';
import { countRules, parseRuleFile } from './rule-file.js';

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
