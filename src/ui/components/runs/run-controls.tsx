/**
 * The runs page's controls over the view in the URL (pages/runs.tsx): the filter form (column, operator,
 * value) and the pager of runs or groups.
 */
import { useState } from 'react';
import { FILTER_OPS, type FilterOp, formatFilter, parseFilter, type RunColumn } from '../../lib/runs';

export const PAGE_SIZE = 100;

export function FilterForm({
  columns,
  onAdd,
}: {
  columns: readonly RunColumn[];
  onAdd: (f: string) => void;
}) {
  const [column, setColumn] = useState('');
  const [op, setOp] = useState<FilterOp>('=');
  const [value, setValue] = useState('');
  const col = column || columns[0]?.key || '';
  return (
    <form
      className="inline-form"
      aria-label="Add a filter"
      onSubmit={(e) => {
        e.preventDefault();
        if (!col) return;
        const f = formatFilter({ column: col, op, value });
        if (parseFilter(f)) onAdd(f);
        setValue('');
      }}
    >
      <select aria-label="Filter column" value={col} onChange={(e) => setColumn(e.target.value)}>
        {columns.map((c) => (
          <option key={c.key} value={c.key}>
            {c.source === 'config' ? `config: ${c.label}` : c.label}
          </option>
        ))}
      </select>
      <select aria-label="Filter operator" value={op} onChange={(e) => setOp(e.target.value as FilterOp)}>
        {FILTER_OPS.map((o) => (
          <option key={o} value={o}>
            {o === '~' ? 'contains' : o}
          </option>
        ))}
      </select>
      <input
        type="text"
        aria-label="Filter value"
        placeholder="value"
        value={value}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit" className="btn btn-small">
        Add filter
      </button>
    </form>
  );
}

export function Pager({
  offset,
  shown,
  total,
  what,
  onOffset,
}: {
  offset: number;
  shown: number;
  total: number;
  what: string;
  onOffset: (o: number) => void;
}) {
  if (total <= PAGE_SIZE && offset === 0) return null;
  return (
    <nav className="toolbar" aria-label="Pages of runs">
      <span className="muted">
        {what} {shown ? offset + 1 : 0}–{offset + shown} of {total}
      </span>
      <button
        type="button"
        className="btn btn-small"
        disabled={offset === 0}
        onClick={() => onOffset(Math.max(0, offset - PAGE_SIZE))}
      >
        Previous
      </button>
      <button
        type="button"
        className="btn btn-small"
        disabled={offset + shown >= total}
        onClick={() => onOffset(offset + PAGE_SIZE)}
      >
        Next
      </button>
    </nav>
  );
}
