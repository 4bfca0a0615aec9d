/**
 * Prometheus rule files (the format of `rule_files`), read and checked as promtool checks them, with
 * promtool's messages so that people and CI scripts read them the same way:
 *
 * ```
 * rules.yml: yaml: unmarshal errors:
 *   line 5: field exprr not found in type rulefmt.RuleNode
 * rules.yml: 5:15: group "gpu", rule 1, "GPUHot": could not parse expression: 1:26: parse error: unexpected end of input
 * rules.yml: group "gpu", rule 2, "X": annotation "summary": template: __alert_X:1: unclosed action
 * ```
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { parseDuration } from '../../model/duration.js';
import { isValidLabelName, isValidMetricName } from '../../model/labels.js';
import { type Expr, parseExpr } from '../../query/promql/index.js';
import { Template, TemplateError } from './template.js';

export interface RuleDef {
  readonly kind: 'alerting' | 'recording';
  /** Alert name or recorded metric name. */
  readonly name: string;
  readonly expr: string;
  readonly ast: Expr;
  readonly forMs: number;
  readonly keepFiringForMs: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly labelTemplates: ReadonlyMap<string, Template>;
  readonly annotationTemplates: ReadonlyMap<string, Template>;
}

export interface RuleGroupDef {
  readonly file: string;
  readonly name: string;
  /** Undefined: the global `alerting.evaluation_interval`. */
  readonly intervalMs: number | undefined;
  /** At most this many alerts (or series) per rule; 0 = no limit. */
  readonly limit: number;
  readonly rules: readonly RuleDef[];
}

export interface RuleFileResult {
  readonly groups: RuleGroupDef[];
  /** promtool-style messages, each starting with the file name. */
  readonly errors: string[];
}

const FIELDS = {
  'rulefmt.RuleGroups': new Set(['groups']),
  'rulefmt.RuleGroup': new Set(['name', 'interval', 'limit', 'query_offset', 'rules']),
  'rulefmt.RuleNode': new Set(['record', 'alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations']),
} as const;

export function parseRuleFile(file: string, text: string): RuleFileResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
  const pos = (n: Node | null | undefined) => {
    const p = lc.linePos(n?.range?.[0] ?? 0);
    return `${p.line}:${p.col}`;
  };
  const lineOf = (n: Node | null | undefined) => lc.linePos(n?.range?.[0] ?? 0).line;
  if (doc.errors.length > 0) {
    return {
      groups: [],
      errors: doc.errors.map(
        (e) => `${file}: yaml: line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`,
      ),
    };
  }
  const unmarshal: string[] = [];
  const errors: string[] = [];
  const groups: RuleGroupDef[] = [];
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === '')))
    return { groups, errors };
  const checkFields = (m: YAMLMap, type: keyof typeof FIELDS) => {
    for (const pair of m.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!FIELDS[type].has(key))
        unmarshal.push(`  line ${lineOf(pair.key as Node)}: field ${key} not found in type ${type}`);
    }
  };
  const scalar = (m: YAMLMap, key: string): { v: unknown; node: Node } | undefined => {
    const pair = m.items.find((p) => isScalar(p.key) && p.key.value === key);
    if (!pair) return undefined;
    return { v: isScalar(pair.value) ? pair.value.value : pair.value, node: pair.value as Node };
  };
  /** promtool stops at the first duration it cannot read, with this message alone. */
  let fatal: string | undefined;
  const duration = (m: YAMLMap, key: string): number | undefined => {
    const s = scalar(m, key);
    if (!s || s.v === null) return undefined;
    try {
      return parseDuration(String(s.v));
    } catch {
      fatal ??= `${file}: not a valid duration string: ${JSON.stringify(String(s.v))}`;
      return undefined;
    }
  };
  const stringMap = (m: YAMLMap, key: string): { map: Record<string, string>; node: Node | undefined } => {
    const s = scalar(m, key);
    const out: Record<string, string> = {};
    if (!s || s.v === null) return { map: out, node: undefined };
    if (!isMap(s.node)) {
      unmarshal.push(`  line ${lineOf(s.node)}: cannot unmarshal ${key} into map[string]string`);
      return { map: out, node: s.node };
    }
    for (const p of s.node.items)
      out[String(isScalar(p.key) ? p.key.value : p.key)] = String(
        isScalar(p.value) ? (p.value.value ?? '') : p.value,
      );
    return { map: out, node: s.node };
  };

  if (!isMap(root)) {
    unmarshal.push(`  line ${lineOf(root)}: cannot unmarshal the document into type rulefmt.RuleGroups`);
  } else {
    checkFields(root, 'rulefmt.RuleGroups');
    const gs = scalar(root, 'groups');
    const seen = new Set<string>();
    if (gs && gs.v !== null && !isSeq(gs.node))
      unmarshal.push(`  line ${lineOf(gs.node)}: groups must be a list`);
    for (const gNode of gs && isSeq(gs.node) ? gs.node.items : []) {
      if (!isMap(gNode)) {
        unmarshal.push(`  line ${lineOf(gNode as Node)}: cannot unmarshal into type rulefmt.RuleGroup`);
        continue;
      }
      checkFields(gNode, 'rulefmt.RuleGroup');
      const nameS = scalar(gNode, 'name');
      const gname = nameS?.v === undefined || nameS.v === null ? '' : String(nameS.v);
      if (gname === '') errors.push(`${file}: ${pos(gNode)}: Groupname must not be empty`);
      else if (seen.has(gname))
        errors.push(
          `${file}: ${pos(gNode)}: groupname: ${JSON.stringify(gname)} is repeated in the same file`,
        );
      seen.add(gname);
      const intervalMs = duration(gNode, 'interval');
      const limitS = scalar(gNode, 'limit');
      const limit = limitS && limitS.v !== null ? Number(limitS.v) : 0;
      if (!Number.isInteger(limit) || limit < 0)
        unmarshal.push(`  line ${lineOf(limitS?.node)}: limit must be a non-negative integer`);
      const rules: RuleDef[] = [];
      const rs = scalar(gNode, 'rules');
      (rs && isSeq(rs.node) ? rs.node.items : []).forEach((rNode, idx) => {
        const where = (name: string) =>
          `group ${JSON.stringify(gname)}, rule ${idx + 1}, ${JSON.stringify(name)}`;
        if (!isMap(rNode)) {
          unmarshal.push(`  line ${lineOf(rNode as Node)}: cannot unmarshal into type rulefmt.RuleNode`);
          return;
        }
        checkFields(rNode, 'rulefmt.RuleNode');
        const rec = scalar(rNode, 'record');
        const alert = scalar(rNode, 'alert');
        const exprS = scalar(rNode, 'expr');
        const name = String((alert ?? rec)?.v ?? '');
        const ruleErrors: string[] = [];
        // promtool's positions: the `record` node for recording-rule errors, the expression for expression
        // errors, 0:0 for a field that is missing, both nodes when `record` and `alert` are both set.
        const nameNode = rec?.node ?? alert?.node;
        const at = (n: Node | undefined | null, msg: string) =>
          ruleErrors.push(
            `${file}: ${n === undefined ? '' : n === null ? '0:0: ' : `${pos(n)}: `}${where(name)}: ${msg}`,
          );
        if (rec && alert)
          ruleErrors.push(
            `${file}: ${pos(rec.node)}: ${pos(alert.node)}: ${where(name)}: only one of 'record' and 'alert' must be set`,
          );
        if (!rec && !alert) at(null, "one of 'record' or 'alert' must be set");
        let ast: Expr | undefined;
        const expr = exprS?.v === undefined || exprS.v === null ? '' : String(exprS.v);
        if (expr.trim() === '') at(exprS?.node ?? null, "field 'expr' must be set in rule");
        else {
          try {
            ast = parseExpr(expr);
          } catch (err) {
            at(exprS!.node, `could not parse expression: ${(err as Error).message}`);
          }
        }
        const forMs = duration(rNode, 'for') ?? 0;
        const keepMs = duration(rNode, 'keep_firing_for') ?? 0;
        const labels = stringMap(rNode, 'labels').map;
        const annotations = stringMap(rNode, 'annotations');
        if (rec) {
          if (scalar(rNode, 'for')) at(nameNode, "invalid field 'for' in recording rule");
          if (scalar(rNode, 'keep_firing_for'))
            at(nameNode, "invalid field 'keep_firing_for' in recording rule");
          if (annotations.node) at(nameNode, "invalid field 'annotations' in recording rule");
          if (!isValidMetricName(name)) at(nameNode, `invalid recording rule name: ${name}`);
        }
        for (const k of Object.keys(labels)) {
          if (!isValidLabelName(k) || k === '__name__') at(undefined, `invalid label name: ${k}`);
        }
        for (const k of Object.keys(annotations.map))
          if (!isValidLabelName(k)) at(undefined, `invalid annotation name: ${k}`);
        const labelTemplates = new Map<string, Template>();
        const annotationTemplates = new Map<string, Template>();
        if (alert) {
          const tplName = `__alert_${name}`;
          for (const [k, v] of Object.entries(labels)) {
            try {
              labelTemplates.set(k, new Template(tplName, v));
            } catch (err) {
              if (!(err instanceof TemplateError)) throw err;
              at(undefined, `label ${JSON.stringify(k)}: ${err.message}`);
            }
          }
          for (const [k, v] of Object.entries(annotations.map)) {
            try {
              annotationTemplates.set(k, new Template(tplName, v));
            } catch (err) {
              if (!(err instanceof TemplateError)) throw err;
              at(undefined, `annotation ${JSON.stringify(k)}: ${err.message}`);
            }
          }
        }
        errors.push(...ruleErrors);
        if (ruleErrors.length === 0 && ast)
          rules.push({
            kind: alert ? 'alerting' : 'recording',
            name,
            expr,
            ast,
            forMs,
            keepFiringForMs: keepMs,
            labels,
            annotations: annotations.map,
            labelTemplates,
            annotationTemplates,
          });
      });
      groups.push({ file, name: gname, intervalMs, limit: Number.isInteger(limit) ? limit : 0, rules });
    }
  }
  if (fatal) return { groups: [], errors: [fatal] };
  // As promtool: a file that does not unmarshal is reported for that alone.
  if (unmarshal.length > 0)
    return { groups: [], errors: [`${file}: yaml: unmarshal errors:\n${unmarshal.join('\n')}`] };
  return { groups: errors.length > 0 ? [] : groups, errors };
}

export function countRules(groups: readonly RuleGroupDef[]): number {
  return groups.reduce((n, g) => n + g.rules.length, 0);
}
