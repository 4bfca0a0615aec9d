export { PlaceholderMemoryStorage } from './placeholder-memory.js';
export type {
  Appender,
  AppendStats,
  BusPositions,
  Querier,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  Storage,
} from './storage.js';
