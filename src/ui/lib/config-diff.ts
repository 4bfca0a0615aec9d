/**
 * Diffing run configurations: nested configs are flattened to dotted keys (`optimizer.lr`), and each key
 * reports whether the runs agree. Values are compared by their JSON form, so `1` and `1.0` agree and `"1"`
 * and `1` do not.
 */

export function flattenConfig(
  config: Readonly<Record<string, unknown>>,
  prefix = '',
  out: Record<string, unknown> = {},
): Record<string, unknown> {
  for (const [k, v] of Object.entries(config)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0)
      flattenConfig(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

export interface ConfigDiffRow {
  readonly key: string;
  /** One entry per run; undefined when the run does not have the key. */
  readonly values: readonly unknown[];
  readonly differs: boolean;
}

export function diffConfigs(configs: readonly Readonly<Record<string, unknown>>[]): ConfigDiffRow[] {
  const flat = configs.map((c) => flattenConfig(c));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort((a, b) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
  return keys.map((key) => {
    const values = flat.map((f) => f[key]);
    const forms = new Set(values.map((v) => (v === undefined ? '\u0000absent' : JSON.stringify(v))));
    return { key, values, differs: forms.size > 1 };
  });
}

export function formatConfigValue(v: unknown): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
