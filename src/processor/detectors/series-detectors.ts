/**
 * Detectors that look at one series at a time, one file per detector family; this module lists them for the
 * engine. Each is a *family* (family.ts): one instance holds the state of every series it applies to in
 * typed-array columns indexed by a slot, sees every new sample of those series once, in time order, and raises
 * or clears their alerts through the engine.
 */
export { EccFamily, ThrottleFamily, WasteFamily } from './gpu-detectors.js';
export { LossSpikeFamily, LossTrendFamily, NonFiniteFamily, PlateauFamily } from './loss-detectors.js';
export { MemoryLeakFamily } from './memory-leak-detector.js';
export { AnomalyFamily, ThresholdFamily } from './metric-detectors.js';
export { ThroughputFamily } from './throughput-detector.js';
