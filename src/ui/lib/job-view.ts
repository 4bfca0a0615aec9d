/**
 * What a job page derives from its panels and alerts: the step at which the loss diverged, the order of
 * its alert groups, the stalls to shade, and the heatmap rows to outline. DOM-free, so unit tests run it.
 */
import type { AlertGroup } from './alert-groups.js';
import { alertName, alertStart, STALL_ALERT } from './alerts.js';
import { fmtSpan, type JobCause } from './causes.js';
import { SEVERITY_COLORS } from './colors.js';
import type { HeatmapRowInfo, Matrix } from './matrix.js';
import { type Alert, type Curve, type StragglerResponse, toNumber } from './types.js';

/** A shaded stretch of the time charts (the charts' TimeSpan). */
export interface TimeSpan {
  readonly from: number;
  readonly to: number;
  readonly color: string;
  readonly label: string;
}

/** An outlined heatmap row (the heatmap's RowHighlight). */
export interface RowHighlight {
  readonly label: string;
  readonly color: string;
}

/** The curve whose steps map time to step (markers on step axes, when a stall began): the loss's first. */
export function stepReferenceOf(curves: readonly Curve[]): Curve | undefined {
  return curves.find((c) => c.step && c.metric === 'train_loss') ?? curves.find((c) => c.step);
}

/** The step at which the loss first became non-finite: what "diverged (NaN loss at step N)" names. */
export function nanStepOf(curves: readonly Curve[]): number | null {
  const loss = curves.find((c) => c.metric === 'train_loss' && c.step);
  if (!loss) return null;
  const k = loss.v.findIndex((v) => !Number.isFinite(toNumber(v)));
  return k < 0 ? null : (loss.step![k] ?? null);
}

/** Stall alerts that fired (pending ones are not stalls yet). */
export function firedStalls(alerts: readonly Alert[]): Alert[] {
  return alerts.filter((a) => alertName(a) === STALL_ALERT && a.state !== 'pending');
}

/**
 * Alert groups in the order the job page lists them: the cause of the failure first, then what still
 * fires, then what is pending, then the rest; the newest first within each.
 */
export function orderAlertGroups(groups: readonly AlertGroup[], cause: JobCause | null): AlertGroup[] {
  const order = (g: AlertGroup) =>
    g.cause === cause?.alert ? 0 : g.cause.state === 'firing' ? 1 : g.cause.state === 'pending' ? 2 : 3;
  return [...groups].sort((a, b) => order(a) - order(b) || alertStart(b.cause) - alertStart(a.cause));
}

/** Stalls, shaded on the time charts from when the step stopped to when it moved again (or now). */
export function stallSpansOf(
  alerts: readonly Alert[],
  stallStart: (a: Alert) => number,
  now: number,
): TimeSpan[] {
  return firedStalls(alerts).map((a) => {
    const from = stallStart(a);
    const to = a.resolvedAtMs ?? now;
    return {
      from,
      to,
      color: SEVERITY_COLORS[a.labels.severity ?? ''] ?? '#d9534f',
      label: `${a.resolvedAtMs === null ? 'stalled' : 'stall'} ${fmtSpan(to - from)}`,
    };
  });
}

export function gpuRowLabel(r: Pick<HeatmapRowInfo, 'labels'>): string {
  const l = r.labels;
  const where = `${l.node_id ?? '?'}/gpu${l.gpu ?? '?'}`;
  return l.rank !== undefined ? `rank ${l.rank} · ${where}` : where;
}

/**
 * Rows to outline on the rank heatmaps: where firing alerts point (rank, GPU or node), else the straggler
 * found by the server's robust z-score of step times.
 */
export function stragglerHighlights(
  m: Matrix | null,
  firing: readonly Alert[],
  s: StragglerResponse | null,
): Map<number, RowHighlight> {
  const out = new Map<number, RowHighlight>();
  if (!m) return out;
  const rowsWhere = (pred: (l: Readonly<Record<string, string>>) => boolean) =>
    m.rows.flatMap((r, i) => (pred(r.labels) ? [i] : []));
  for (const a of firing) {
    const l = a.labels;
    let rows: number[] = [];
    if (l.rank !== undefined) rows = rowsWhere((r) => r.rank === l.rank);
    if (rows.length === 0 && l.node_id !== undefined && l.gpu !== undefined)
      rows = rowsWhere((r) => r.node_id === l.node_id && r.gpu === l.gpu);
    if (rows.length === 0 && l.node_id !== undefined && l.gpu === undefined && l.rank === undefined)
      rows = rowsWhere((r) => r.node_id === l.node_id);
    for (const i of rows)
      if (!out.has(i))
        out.set(i, {
          label: `${l.alertname ?? a.name} · ${gpuRowLabel(m.rows[i]!)}`,
          color: SEVERITY_COLORS[l.severity ?? ''] ?? '#e05a5a',
        });
  }
  if (out.size === 0 && s?.straggler) {
    const sl = s.straggler.labels;
    let rows = rowsWhere((r) => r.rank !== undefined && r.rank === sl.rank);
    if (rows.length === 0 && sl.node_id !== undefined && sl.local_rank !== undefined)
      rows = rowsWhere((r) => r.node_id === sl.node_id && r.gpu === sl.local_rank);
    const slow =
      s.straggler.slowdown === null ? '' : ` +${Math.round(s.straggler.slowdown * 100)}% step time`;
    for (const i of rows)
      out.set(i, { label: `straggler · ${gpuRowLabel(m.rows[i]!)}${slow}`, color: '#e0607e' });
  }
  return out;
}

/** The same highlights on another heatmap of the same GPUs (rows matched by node and GPU). */
export function remapHighlights(
  from: Matrix | null,
  to: Matrix | null,
  h: ReadonlyMap<number, RowHighlight>,
): Map<number, RowHighlight> {
  const out = new Map<number, RowHighlight>();
  if (!from || !to) return out;
  for (const [i, hl] of h) {
    const l = from.rows[i]!.labels;
    const j = to.rows.findIndex((r) => r.labels.node_id === l.node_id && r.labels.gpu === l.gpu);
    if (j >= 0) out.set(j, hl);
  }
  return out;
}
