export {
  type DashboardDeps,
  type FleetJob,
  isCurveMetric,
  registerDashboardApi,
  summarizeFleet,
} from './dashboard.js';
export { type JobSummary, summarizeJob } from './job-summary.js';
export { parseTime, type RestDeps, registerRestApi } from './rest.js';
export { type ColumnarSeries, type JsonSample, jsonValue, readSeries } from './series-read.js';
