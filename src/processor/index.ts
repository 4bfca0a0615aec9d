export { DetectorSettings, type DetectorsConfig, detectorsConfigSchema } from './detectors/config.js';
export { DetectorEngine, type DetectorStatus } from './detectors/engine.js';
export { PROCESSOR_GROUP, Processor, type ProcessorAnalysis, type ProcessorOptions } from './processor.js';
