/**
 * How a job's training curves are grouped into charts: `train_loss` and `eval_loss` share the "Loss" chart,
 * `train_accuracy` and `eval_accuracy` the "Accuracy" chart, and any custom metric gets its own (with its
 * eval/val/test counterparts). Which metrics are curves is the server's rule, shared (src/model).
 */
import { isCurveMetric } from '../../model/curve-metrics.js';

export { isCurveMetric };

const SPLIT_PREFIX = /^(train|training|eval|evaluation|val|valid|validation|test)_/;

/** The split a metric belongs to (`train`, `eval`, …), or '' for none. */
export function curveSplit(name: string): string {
  return SPLIT_PREFIX.exec(name)?.[1] ?? '';
}

/** A metric without its split prefix: `eval_loss` → `loss`. */
export function curveStem(name: string): string {
  return name.replace(SPLIT_PREFIX, '') || name;
}

const KNOWN_ORDER = ['loss', 'accuracy', 'learning_rate', 'lr', 'perplexity', 'grad_norm'];
const TITLES: Record<string, string> = {
  loss: 'Loss',
  accuracy: 'Accuracy',
  learning_rate: 'Learning rate',
  lr: 'Learning rate',
  perplexity: 'Perplexity',
  grad_norm: 'Gradient norm',
};

export function chartTitle(stem: string): string {
  return TITLES[stem] ?? stem.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export interface CurveGroup {
  readonly stem: string;
  readonly title: string;
  readonly metrics: readonly string[];
}

/** Charts for a set of curve metrics: loss, accuracy and learning rate first, then the rest by name. */
export function groupCurves(metrics: readonly string[]): CurveGroup[] {
  const groups = new Map<string, string[]>();
  for (const m of metrics) {
    if (!isCurveMetric(m)) continue;
    const stem = curveStem(m);
    const g = groups.get(stem) ?? [];
    g.push(m);
    groups.set(stem, g);
  }
  const rank = (stem: string) => {
    const i = KNOWN_ORDER.indexOf(stem);
    return i < 0 ? KNOWN_ORDER.length : i;
  };
  return [...groups.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([stem, ms]) => ({
      stem,
      title: chartTitle(stem),
      // train before eval before the rest, so colours stay the same from chart to chart.
      metrics: ms.sort((a, b) => splitOrder(a) - splitOrder(b) || a.localeCompare(b)),
    }));
}

function splitOrder(name: string): number {
  const s = curveSplit(name);
  return s === 'train' || s === 'training' || s === ''
    ? 0
    : s.startsWith('eval') || s.startsWith('val')
      ? 1
      : 2;
}

/** Whether values of this metric are best read on a log scale by default (losses and perplexities). */
export function prefersLog(stem: string): boolean {
  return stem === 'loss' || stem === 'perplexity';
}
