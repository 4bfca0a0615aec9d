/**
 * The dashboard's view of trainwatch's HTTP APIs: the REST and dashboard endpoints (/api/tw/v1), the
 * Prometheus API (/api/v1) and Alertmanager's silences (/api/v2). Types live in lib/types.ts.
 *
 * Authentication: a signed-in user's browser holds the session cookie (`tw_session`, HttpOnly), which every
 * same-origin request carries; state-changing requests add `X-CSRF-Token` from `/auth/me`. When the user
 * pasted an API token instead (stored in localStorage), every request — streams included — carries
 * `Authorization: Bearer <token>`. Streams are read with fetch rather than EventSource, which cannot send
 * headers, so no token ever goes into a URL. A 401 raises the `tw:unauthorized` event; the app shell answers
 * it with the login page.
 *
 * The calls live by group (api-data.ts, api-alerting.ts, api-access.ts) over one HTTP client (api-client.ts);
 * pages import them all from here.
 */

export * from './api-access';
export * from './api-alerting';
export { ApiError, getToken, setCsrfToken, setToken, UNAUTHORIZED_EVENT } from './api-client';
export * from './api-data';
export type { CurvesQuery, HeatmapQuery, SeriesQuery, SpreadQuery } from './lib/queries';
export type { FleetJob, JobStatus, JobSummary, JsonSample, JsonSpecial, Series } from './lib/types';
export { toNumber } from './lib/types';
