export { type AppendResult, type Bus, type BusEntry, hashPartitionKey, jobPartitionKey } from './bus.js';
export { DiskLogBus, type DiskLogOptions, defaultDiskLogOptions, type FsyncPolicy } from './disk-log.js';
export { type BusRecordHeader, decodeBusRecordHeader, encodeBusRecord, newRecordWriter } from './record.js';
