export { PROCESSOR_GROUP, Processor, type ProcessorOptions } from './processor.js';
