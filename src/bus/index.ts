export {
  type AppendResult,
  type Bus,
  type BusEntry,
  type GroupMember,
  hashPartitionKey,
  jobPartitionKey,
  type RebalanceListener,
} from './bus.js';
export { DiskLogBus, type DiskLogOptions, defaultDiskLogOptions, type FsyncPolicy } from './disk-log.js';
export { type BusRecordHeader, decodeBusRecordHeader, encodeBusRecord, newRecordWriter } from './record.js';
export { type LocalLog, LocalGroupCoordinator } from './local-group.js';
