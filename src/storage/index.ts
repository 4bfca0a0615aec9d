export type { BlockMeta, TierName } from './block.js';
export type {
  AggregateIterator,
  Appender,
  AppendStats,
  BusPositions,
  Querier,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  Storage,
} from './storage.js';
export { defaultTsdbOptions, MemoryStorage, Tsdb, type TsdbOptions } from './tsdb.js';
/** @deprecated The placeholder is gone: this is {@link MemoryStorage}, the real TSDB kept in memory. */
export { MemoryStorage as PlaceholderMemoryStorage } from './tsdb.js';
export { ROLLUP_FUNCS, ROLLUP_TIERS } from './rollup.js';
export { exportBlock, exportPolicy, exportRange, type ExportResult } from './export.js';
