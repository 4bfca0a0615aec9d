/**
 * Typed PromQL errors. Each maps to the Prometheus HTTP API's `errorType` and status code
 * (web/api/v1/api.go), so the API layer never guesses from a message.
 */

/** Where an error or annotation points: `line:column`, both 1-based, as Prometheus prints positions. */
export function formatPosition(query: string, pos: number): string {
  let line = 1;
  let lastBreak = -1;
  const upto = Math.min(pos, query.length);
  for (let i = 0; i < upto; i++) {
    if (query.charCodeAt(i) === 10) {
      line++;
      lastBreak = i;
    }
  }
  return `${line}:${pos - lastBreak}`;
}

export type PromqlErrorType = 'bad_data' | 'execution' | 'timeout' | 'canceled' | 'internal';

export abstract class PromqlError extends Error {
  abstract readonly errorType: PromqlErrorType;
  /** HTTP status the Prometheus API answers with for this error. */
  abstract readonly httpStatus: number;

  constructor(message: string) {
    super(message);
    // Every subclass is named as its class (ParseError, TooManySamplesError, ...), for logs and stack traces.
    this.name = new.target.name;
  }
}

/** Errors Prometheus answers with `errorType: execution` and status 422 (the query is valid but cannot run). */
abstract class ExecutionFailure extends PromqlError {
  readonly errorType = 'execution' as const;
  readonly httpStatus = 422;
}

/** The query text is not valid PromQL. Message: `<line>:<col>: parse error: <what>` as Prometheus prints it. */
export class ParseError extends PromqlError {
  readonly errorType = 'bad_data' as const;
  readonly httpStatus = 400;
  readonly detail: string;
  readonly pos: number;

  constructor(detail: string, query: string, pos: number) {
    super(`${formatPosition(query, pos)}: parse error: ${detail}`);
    this.detail = detail;
    this.pos = pos;
  }
}

/** The query failed while evaluating (e.g. duplicate series after a label change, bad function argument). */
export class ExecutionError extends ExecutionFailure {}

/** The query would hold more samples in memory than allowed (Prometheus's ErrTooManySamples). */
export class TooManySamplesError extends ExecutionFailure {
  /** `where`: the part of the query that hit the limit (for logs; the message is Prometheus's, unchanged). */
  constructor(
    readonly limit: number,
    readonly where = 'evaluation',
  ) {
    super('query processing would load too many samples into memory in query execution');
  }
}

/**
 * A subquery would evaluate more points per series than `query.max_subquery_points`: refused before it
 * allocates anything, with the subquery and its step named so the user knows what to change.
 */
export class SubqueryResolutionError extends ExecutionFailure {
  constructor(
    readonly subquery: string,
    readonly points: number,
    step: string,
    readonly limit: number,
  ) {
    super(
      `subquery ${subquery} would evaluate ${points} points per series at step ${step}, more than the limit of ${limit} (query.max_subquery_points): use a larger subquery step or a shorter range`,
    );
  }
}

/** The query selected more series than allowed. */
export class TooManySeriesError extends ExecutionFailure {
  constructor(readonly limit: number) {
    super(`query selected more than ${limit} series (limit query.max_series); narrow the selector`);
  }
}

/** The query ran past its deadline (Prometheus's ErrQueryTimeout). */
export class QueryTimeoutError extends PromqlError {
  readonly errorType = 'timeout' as const;
  readonly httpStatus = 503;

  constructor(readonly where: string) {
    super(`query timed out in ${where}`);
  }
}

/** The query was cancelled by its caller (e.g. the HTTP client went away). */
export class QueryCanceledError extends PromqlError {
  readonly errorType = 'canceled' as const;
  readonly httpStatus = 503;

  constructor(readonly where: string) {
    super(`query was canceled in ${where}`);
  }
}
