import type { ReactNode } from 'react';
import type { ApiError } from '../../api';
import { Empty, ErrorBox } from '../widgets';

/** What a list says when the server has no alerting API. */
export const MISSING =
  'The alerting API is not on this server yet: alerts, silences, rules and detectors appear here once trainwatch runs its alerting role.';

/**
 * What an alerting list (alerts, silences, rules, detectors) shows until it has rows: the note above when the
 * server has no alerting API, the error, or "Loading …"; null once loaded. An error wins over stale rows.
 */
export function notLoaded(
  what: string,
  data: unknown,
  error: ApiError | null,
  missingTitle = `No ${what} yet`,
): ReactNode | null {
  if (error)
    return error.missingRoute ? (
      <Empty title={missingTitle}>
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what={what} />
    );
  if (data === null || data === undefined) return <div className="empty">{`Loading ${what}…`}</div>;
  return null;
}
