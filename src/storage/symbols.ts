/**
 * Interned strings (label names and values) of the head: each distinct string is stored once and referred
 * to by a small integer, so that a series' labels are a few integers in a shared arena rather than an
 * object, and comparing label sets compares integers.
 */
export class SymbolTable {
  /** String → id; read directly by the head's append loop to save a call per label. */
  readonly ids = new Map<string, number>();
  readonly strings: string[] = [];

  get size(): number {
    return this.strings.length;
  }

  /** The id of `s`, adding it if new. */
  intern(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(s);
      this.ids.set(s, id);
    }
    return id;
  }

  /** The id of `s`, or -1 when it was never interned. */
  lookup(s: string): number {
    return this.ids.get(s) ?? -1;
  }

  get(id: number): string {
    return this.strings[id]!;
  }
}

/**
 * A key for a label set whose string order is Prometheus's series order (labels sorted by name, compared
 * pair by pair, a shorter set first when it is a prefix): NUL never occurs in names and is below every
 * character of a value. Not model/labels.ts:labelsKey, whose `name="value",` form does not sort in that order.
 */
export function seriesSortKey(names: readonly string[], values: readonly string[]): string {
  let key = '';
  for (let i = 0; i < names.length; i++) key += `${names[i]}\u0000${values[i]}\u0000`;
  return key;
}

export function labelSetSortKey(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort();
  return seriesSortKey(
    names,
    names.map((n) => labels[n]!),
  );
}
