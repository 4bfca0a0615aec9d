/**
 * The base units Prometheus's naming conventions put at the end of a metric's name (DESIGN.md: base units as
 * suffixes), written once for the metric catalog's metadata (src/model/metric-catalog.ts) and the dashboard's
 * axes (src/ui/lib/units.ts). Pure and free of Node imports, so that both tsconfigs compile it.
 */

export type SuffixUnit = 'bytes' | 'seconds' | 'ratio' | 'celsius' | 'watts' | 'hertz';

export const UNIT_SUFFIXES: readonly (readonly [suffix: string, unit: SuffixUnit])[] = [
  ['_bytes', 'bytes'],
  ['_seconds', 'seconds'],
  ['_ratio', 'ratio'],
  ['_celsius', 'celsius'],
  ['_watts', 'watts'],
  ['_hertz', 'hertz'],
];

/** The unit `name` ends with (`gpu_memory_used_bytes` → bytes), or null; `_total` is the caller's to strip. */
export function unitOfSuffix(name: string): SuffixUnit | null {
  for (const [suffix, unit] of UNIT_SUFFIXES) if (name.endsWith(suffix)) return unit;
  return null;
}
