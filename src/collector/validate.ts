/**
 * Checks a decoded batch before anything of it is appended: a request is accepted whole or refused whole,
 * with a message that names the limit or rule, the value, and the first offending series.
 */
import type { SeriesBatch } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import { type JobEvent, validateJobId } from '../model/job.js';
import {
  formatSeries,
  isValidLabelName,
  isValidMetricName,
  METRIC_NAME_LABEL,
  WellKnownLabel,
} from '../model/labels.js';

export interface SeriesLimits {
  readonly maxLabelsPerSeries: number;
  readonly maxLabelValueBytes: number;
  /** Longest label name (and metric name) in UTF-8 bytes; unlimited when absent. */
  readonly maxLabelNameBytes?: number;
}

/** Samples further in the future than this are refused: a clock that far off is a bug worth reporting. */
const MAX_FUTURE_MS = 10 * 60_000;

export function validateBatch(
  batch: SeriesBatch,
  events: readonly JobEvent[],
  limits: SeriesLimits,
  nowMs: number,
): void {
  for (let i = 0; i < batch.series.length; i++) {
    const labels = batch.series[i]!;
    const problem = seriesProblem(labels, limits);
    if (problem)
      throw twError(Errors.invalidSeries, `series ${formatSeries(labels).slice(0, 300)}: ${problem}`);
    for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++) {
      const t = batch.timestamps[j]!;
      if (t < 0 || t > nowMs + MAX_FUTURE_MS) {
        throw twError(
          Errors.invalidSeries,
          `series ${formatSeries(labels).slice(0, 300)}: timestamp ${t} (${Number.isFinite(t) ? new Date(t).toISOString() : t}) ` +
            `is ${t < 0 ? 'negative' : 'more than 10 minutes in the future'}; timestamps are milliseconds since the Unix epoch`,
        );
      }
    }
  }
  for (const ev of events) {
    const problem = validateJobId(ev.jobId);
    if (problem) throw twError(Errors.badPayload, `job event (${ev.kind}): ${problem}`);
  }
}

/** What is wrong with one series' labels, or undefined when nothing is. */
export function seriesProblem(
  labels: Readonly<Record<string, string>>,
  limits: SeriesLimits,
): string | undefined {
  const name = labels[METRIC_NAME_LABEL];
  if (name === undefined || name === '') return 'has no metric name (label __name__)';
  if (!isValidMetricName(name)) {
    return `metric name ${JSON.stringify(name)} is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]* (senders map other characters to _)`;
  }
  let count = 0;
  const maxName = limits.maxLabelNameBytes ?? Number.POSITIVE_INFINITY;
  for (const label in labels) {
    count++;
    if (label.length > maxName) {
      return `label name ${JSON.stringify(label.slice(0, 100))}${label.length > 100 ? '…' : ''} is ${label.length} bytes long, over the limit of ${maxName} (ingest.max_label_name_bytes)`;
    }
    if (label === METRIC_NAME_LABEL && labels[label]!.length > maxName) {
      return `metric name is ${labels[label]!.length} bytes long, over the limit of ${maxName} (ingest.max_label_name_bytes)`;
    }
    if (label !== METRIC_NAME_LABEL) {
      if (!isValidLabelName(label))
        return `label name ${JSON.stringify(label)} is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]*`;
      if (label.startsWith('__'))
        return `label name ${JSON.stringify(label)} is reserved: names starting with __ are internal`;
    }
    const value = labels[label]!;
    // UTF-16 length is a lower bound of the UTF-8 length; measure bytes only when it matters.
    if (
      value.length * 3 > limits.maxLabelValueBytes &&
      Buffer.byteLength(value) > limits.maxLabelValueBytes
    ) {
      return `label ${label} is ${Buffer.byteLength(value)} bytes long, over the limit of ${limits.maxLabelValueBytes} (ingest.max_label_value_bytes)`;
    }
  }
  if (count > limits.maxLabelsPerSeries)
    return `has ${count} labels, over the limit of ${limits.maxLabelsPerSeries} (ingest.max_labels_per_series)`;
  if (labels[WellKnownLabel.jobId] !== undefined) {
    const problem = validateJobId(labels[WellKnownLabel.jobId]!);
    if (problem) return problem;
  }
  return undefined;
}
