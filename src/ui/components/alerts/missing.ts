/** What a list says when the server has no alerting API. */
export const MISSING =
  'The alerting API is not on this server yet: alerts, silences, rules and detectors appear here once trainwatch runs its alerting role.';
