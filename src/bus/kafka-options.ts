/**
 * The Kafka bus's options and what its producer side (kafka.ts) and its consumer-group members
 * (kafka-member.ts) share: the defaults, the connection settings of every client, and how a client error is
 * turned into the 503 the collector answers. Separate so that the two sides do not import each other.
 */
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { Errors, TrainwatchError, twError } from '../model/errors.js';

export interface KafkaBusOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly topic: string;
  /** The topic's partition count: created with it, and an existing topic must have it (keys map by it). */
  readonly partitions: number;
  readonly clientId: string;
  /** For a topic created by `open`; the cluster's default (`default.replication.factor`) when absent. */
  readonly replicationFactor?: number;
  /** Passed to the client as is: managed services (Event Hubs, MSK IAM/SCRAM, Confluent Cloud) need them. */
  readonly sasl?: SASLOptions;
  readonly tls?: TlsConnectionOptions;
  /** A request (produce, fetch, commit, …) not answered by then fails. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Retries of a failed request before `append` rejects (with 503 for the collector). Default 3. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  /** Consumer group session: a member silent this long is dropped and its partitions move. Default 30 s. */
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  /** How long the coordinator waits for every member to rejoin (and revoke) in a rebalance. Default 60 s. */
  readonly rebalanceTimeoutMs?: number;
  /** Appends are refused with a retryable error while more than this many bytes wait to be produced. */
  readonly maxQueuedBytes?: number;
  readonly logger: Logger;
}

export const DEFAULTS = {
  requestTimeoutMs: 30_000,
  retries: 3,
  retryDelayMs: 500,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 60_000,
  maxQueuedBytes: 256 << 20,
};

/** Seconds the collector's 503 asks clients to wait when Kafka cannot be reached. */
const RETRY_AFTER_SECONDS = 2;

/** Connection settings every client of one bus shares. */
export function clientBase(opts: KafkaBusOptions, clientId: string) {
  return {
    clientId,
    bootstrapBrokers: [...opts.brokers],
    requestTimeout: opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    retries: opts.retries ?? DEFAULTS.retries,
    retryDelay: opts.retryDelayMs ?? DEFAULTS.retryDelayMs,
    ...(opts.sasl ? { sasl: opts.sasl } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  };
}

/** The client's error, as a retryable 503 naming what failed. */
export function unavailable(what: string, err: unknown, brokers: readonly string[]): TrainwatchError {
  if (err instanceof TrainwatchError) return err;
  return twError(
    Errors.unavailable,
    `${what} (Kafka brokers ${brokers.join(',')}): ${describe(err)}`,
    RETRY_AFTER_SECONDS,
  );
}

/** The client wraps retried failures in an AggregateError whose message says only "failed N times". */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const inner = (err as Partial<AggregateError>).errors;
  const last = Array.isArray(inner) && inner.length > 0 ? inner[inner.length - 1] : undefined;
  return last instanceof Error && last.message !== err.message
    ? `${err.message} (${describe(last)})`
    : err.message;
}
