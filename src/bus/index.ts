export {
  type AppendResult,
  type Bus,
  type BusEntry,
  type BusProducer,
  type GroupMember,
  hashPartitionKey,
  jobPartitionKey,
  type RebalanceListener,
  seriesPartitionKey,
} from './bus.js';
export { DiskLogBus, type DiskLogOptions, defaultDiskLogOptions, type FsyncPolicy } from './disk-log.js';
export { LocalGroupCoordinator, type LocalLog } from './local-group.js';
export { busPartitionHandlers, DelegatedBus } from './port-bus.js';
export { type BusRecordHeader, decodeBusRecordHeader, encodeBusRecord, newRecordWriter } from './record.js';
