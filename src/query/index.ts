export {
  type DashboardDeps,
  type FleetJob,
  isCurveMetric,
  registerDashboardApi,
  summarizeFleet,
} from './dashboard.js';
export { type JobSummary, summarizeJob } from './job-summary.js';
export { DEFAULT_LIVE_STREAM_LIMITS, type LiveStreamLimits, LiveStreams } from './live-streams.js';
export {
  MAX_NODE_JOBS,
  type NodeApiDeps,
  type NodeDetail,
  type NodeGpu,
  type NodeJob,
  registerNodeApi,
} from './nodes.js';
export {
  DEFAULT_PROM_API_LIMITS,
  type PromApiDeps,
  type PromApiLimits,
  registerPromApi,
} from './prom-api.js';
export type { PromAnswer, PromQueryRequest } from './prom-eval.js';
export {
  defaultQueryWorkers,
  QueryPool,
  type QueryPoolConfig,
  type QueryPoolOptions,
  startQueryPool,
} from './query-pool.js';
export { type ForwardedAnswer, RemotePromql, type RemotePromqlOptions } from './remote-promql.js';
export { parseTime, type RestDeps, registerRestApi } from './rest.js';
export { type JsonRun, parseRunQuery, type RunsDeps, registerRunsApi } from './runs.js';
export { type ColumnarSeries, type JsonSample, jsonValue, readSeries } from './series-read.js';
