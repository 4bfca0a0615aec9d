/**
 * Query-string updates that keep the other parameters: every page keeps its whole state in the URL.
 */
export function withParams(
  search: string,
  patch: Readonly<Record<string, string | null | undefined>>,
): string {
  const p = new URLSearchParams(search);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined || v === '') p.delete(k);
    else p.set(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}
