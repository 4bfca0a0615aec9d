/**
 * The tables of the list pages (settings, notifications, alerting, node): one scrolling wrapper, an optional
 * caption for screen readers, a header row of column headers and the rows the caller renders. Kept apart from
 * the virtual fleet table (fleet-table.tsx) and the run table (sortable headers), which build their own heads.
 */
import type { ReactNode } from 'react';

/** A column header: its text, or `{ label, num }` for a right-aligned column of numbers. */
export type Column = string | { label: string; num?: boolean };

export function DataTable({
  testId,
  caption,
  className = 'jobs',
  columns,
  children,
}: {
  testId: string;
  /** Read by screen readers only: what the rows are. */
  caption?: ReactNode;
  className?: string;
  columns: readonly Column[];
  children: ReactNode;
}) {
  return (
    <div className="table-scroll">
      <table className={className} data-testid={testId}>
        {caption !== undefined && <caption className="sr-only">{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => {
              const { label, num } = typeof c === 'string' ? { label: c, num: false } : c;
              return (
                <th key={label} scope="col" className={num ? 'num' : undefined}>
                  {label === '' ? <span className="sr-only">Actions</span> : label}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
