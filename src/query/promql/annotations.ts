/**
 * Warning and info annotations (Prometheus's util/annotations): messages attached to a query result, each
 * ending with the position of the expression it is about, as the HTTP API renders them.
 */
import type { PosRange } from './ast.js';
import { formatPosition } from './errors.js';

export class Annotations {
  readonly warnings = new Set<string>();
  readonly infos = new Set<string>();

  constructor(private readonly query: string) {}

  warn(message: string, at: PosRange): void {
    this.warnings.add(`PromQL warning: ${message} (${formatPosition(this.query, at.pos)})`);
  }

  /** A warning from storage (a partial answer), which has no position in the query. */
  storageWarning(message: string): void {
    this.warnings.add(message);
  }

  info(message: string, at: PosRange): void {
    this.infos.add(`PromQL info: ${message} (${formatPosition(this.query, at.pos)})`);
  }
}
