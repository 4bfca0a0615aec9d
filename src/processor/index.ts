export { DetectorSettings, type DetectorsConfig, detectorsConfigSchema } from './detectors/config.js';
export { DetectorEngine, type DetectorStatus, type PartitionOf } from './detectors/engine.js';
export { type JobEventSink, STALLED_JOB_ALERT, withJobStatusFromAlerts } from './job-status.js';
export {
  FilePartitionStateStore,
  type PartitionStateStore,
  type SavedPartitionState,
} from './partition-state.js';
export { PROCESSOR_GROUP, Processor, type ProcessorAnalysis, type ProcessorOptions } from './processor.js';
