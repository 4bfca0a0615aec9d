/** Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus prints alert values in its API. */
export function promFloatString(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return v.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
}
