/**
 * Which of a job's metrics are training curves, and how they are grouped into charts: `train_loss` and
 * `eval_loss` share the "Loss" chart, `train_accuracy` and `eval_accuracy` the "Accuracy" chart, and any
 * custom metric gets its own (with its eval/val/test counterparts). Same rules as the server's
 * isCurveMetric (src/query/dashboard.ts).
 */

const NON_CURVE_PREFIXES = ['gpu_', 'host_', 'node_', 'trainwatch_', 'process_', 'nodejs_', 'go_'];
const NON_CURVE_METRICS = new Set([
  'train_step',
  'train_step_duration_seconds',
  'train_samples_per_second',
  'train_tokens_per_second',
  'ALERTS',
  'ALERTS_FOR_STATE',
]);

export function isCurveMetric(name: string): boolean {
  // Names with a colon are recording rules' outputs (`job_id:gpu_utilization_ratio:avg`), not the job's own.
  return (
    !NON_CURVE_METRICS.has(name) && !NON_CURVE_PREFIXES.some((p) => name.startsWith(p)) && !name.includes(':')
  );
}

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
