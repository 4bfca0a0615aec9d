/**
 * Every error trainwatch reports to a client, in one registry: a stable code, the HTTP status, and whether
 * retrying the same request can help. Senders (the agent, the SDK, Prometheus remote-write) decide to retry
 * or drop from the status alone, so the status is part of the contract:
 * 4xx except 429 = the request is wrong and will be wrong again; 429/503 = come back later (Retry-After).
 */

export interface ErrorKind {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
}

function kind(code: string, status: number, retryable = false): ErrorKind {
  return { code, status, retryable };
}

export const Errors = {
  badRequest: kind('bad_request', 400),
  badPayload: kind('bad_payload', 400),
  unsupportedMediaType: kind('unsupported_media_type', 415),
  payloadTooLarge: kind('payload_too_large', 413),
  invalidSeries: kind('invalid_series', 400),
  limitExceeded: kind('limit_exceeded', 400),
  /** A read that would hold more than its memory budget (samples or bytes) allows: refused before it allocates. */
  budgetExceeded: kind('budget_exceeded', 422),
  unauthorized: kind('unauthorized', 401),
  forbidden: kind('forbidden', 403),
  notFound: kind('not_found', 404),
  /** The request lost a race it cannot win by retrying as is (e.g. a commit from a fenced group member). */
  conflict: kind('conflict', 409),
  tooManyRequests: kind('too_many_requests', 429, true),
  unavailable: kind('unavailable', 503, true),
  internal: kind('internal', 500, true),
} as const satisfies Record<string, ErrorKind>;

/** An error meant for a client: its message says what was wrong, and names the offending input. */
export class TrainwatchError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** Seconds a client should wait before retrying; only for retryable kinds. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'TrainwatchError';
  }

  get status(): number {
    return this.kind.status;
  }
}

export function twError(kind: ErrorKind, message: string, retryAfterSeconds?: number): TrainwatchError {
  return new TrainwatchError(kind, message, retryAfterSeconds);
}

/** An error as it crosses a thread or process boundary: its message, and its kind when it had one. */
export interface WireError {
  readonly message: string;
  readonly code?: string;
  readonly retryAfterSeconds?: number;
}

const KINDS_BY_CODE = new Map<string, ErrorKind>(Object.values(Errors).map((k) => [k.code, k]));

export function toWireError(err: unknown): WireError {
  if (err instanceof TrainwatchError)
    return {
      message: err.message,
      code: err.kind.code,
      ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
    };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** The error again, as the kind it had where it was raised (a plain Error when it had none). */
export function fromWireError(e: WireError): Error {
  const kind = e.code ? KINDS_BY_CODE.get(e.code) : undefined;
  return kind ? new TrainwatchError(kind, e.message, e.retryAfterSeconds) : new Error(e.message);
}
