/**
 * Which of a job's metrics are training curves (loss, accuracy, learning rate, any custom metric) rather than
 * the hardware or the step loop. One rule for the server (the curves endpoint, src/query/dashboard.ts) and
 * the dashboard (its curve charts, src/ui/lib/metrics.ts): pure and free of Node imports, so that both
 * tsconfigs compile it.
 */

/** Metrics that are about the hardware or the step loop rather than the model: not training curves. */
const NON_CURVE_PREFIXES = ['gpu_', 'host_', 'node_', 'trainwatch_', 'process_', 'nodejs_', 'go_'];
const NON_CURVE_METRICS = new Set([
  'train_step',
  'train_step_duration_seconds',
  'train_samples_per_second',
  'train_tokens_per_second',
  'ALERTS',
  'ALERTS_FOR_STATE',
]);

/** Whether a metric a job reports is a training curve (loss, accuracy, learning rate, any custom metric). */
export function isCurveMetric(name: string): boolean {
  // Names with a colon are recording rules' outputs (`job_id:gpu_utilization_ratio:avg`), not the job's own.
  return (
    !NON_CURVE_METRICS.has(name) && !NON_CURVE_PREFIXES.some((p) => name.startsWith(p)) && !name.includes(':')
  );
}
