export type { BlockMeta, TierName } from './block.js';
export { SampleBuffer } from './codec/chunk.js';
export { type ExportResult, exportBlock, exportPolicy, exportRange } from './export.js';
export { type ExportOptions, exportDataDir } from './export-cli.js';
export { EMPTY_ITERATOR } from './iterators.js';
export {
  localQueryEndpoints,
  PortStorageReader,
  type ServedStorage,
  type ShardRouting,
  StoragePortClient,
  type StorageQueryEndpoints,
  serveStorageQueries,
  shardOfSelection,
} from './port/index.js';
export { type RemoteFlavor, RemoteStorage, type RemoteStorageOptions } from './remote/remote-storage.js';
export { AGG_COUNT, AGG_LAST, AGG_SUM, ROLLUP_FUNCS, ROLLUP_TIERS, RollupColumns } from './rollup.js';
export type {
  AggregateArrays,
  AggregateIterator,
  Appender,
  AppendStats,
  BusPositions,
  KeyedLabelIds,
  KeyedSeriesBatch,
  Querier,
  SampleArrays,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  SeriesRefCache,
  SeriesSet,
  Storage,
} from './storage.js';
export { seriesSet, sumAppendStats } from './storage.js';
export {
  defaultTsdbOptions,
  type LocalQuerier,
  MemoryStorage,
  Tsdb,
  type TsdbOptions,
} from './tsdb.js';
