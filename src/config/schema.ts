/**
 * trainwatch's configuration: one YAML file, overridable by `TRAINWATCH_*` environment variables and by
 * command-line flags (flags win). Keys are snake_case as in Prometheus's own configuration. Every key has a
 * default, so an empty file (or none) is a valid configuration.
 */
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9470')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

const byteSize = z.number().int().positive();

export const ROLE_NAMES = ['collector', 'processor', 'query', 'ui'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

export const configSchema = z
  .object({
    /** Where the UI, the APIs and ingest listen: one port for everything. */
    listen: hostPort.default('127.0.0.1:9470'),
    data_dir: z.string().min(1).default('./data'),
    /** Which roles this process runs; `all` is every role on embedded defaults. */
    roles: z
      .array(z.enum(['all', ...ROLE_NAMES]))
      .min(1)
      .default(['all']),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    bus: z
      .object({
        partitions: z.number().int().min(1).max(1024).default(8),
        segment_bytes: byteSize.min(1 << 16).default(64 << 20),
        fsync: z.enum(['always', 'interval', 'never']).default('always'),
        fsync_interval_ms: z.number().int().min(1).max(60_000).default(200),
        max_queued_bytes: byteSize.default(256 << 20),
      })
      .strict()
      .prefault({}),
    ingest: z
      .object({
        /** Largest request body accepted, checked while reading. */
        max_body_bytes: byteSize.default(16 << 20),
        /** Largest decompressed payload: guards against compression bombs. */
        max_payload_bytes: byteSize.default(64 << 20),
        max_labels_per_series: z.number().int().min(1).max(1000).default(40),
        max_label_value_bytes: z.number().int().min(16).max(65536).default(2048),
        /** How many recent (source, sequence) keys per source the collector remembers to drop retried batches. */
        dedup_window: z.number().int().min(1).max(1_000_000).default(4096),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        /**
         * Accept requests without credentials, as this tenant. Meant for a single-user laptop or the demo;
         * trainwatch logs a warning at start when it is on and the listen address is not loopback.
         */
        anonymous_tenant: z
          .string()
          .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a tenant name: lowercase letters, digits, _ and -')
          .nullable()
          .default('default'),
      })
      .strict()
      .prefault({}),
    processor: z
      .object({
        /** How often the processor asks storage to persist and then commits bus offsets. */
        checkpoint_interval_ms: z.number().int().min(10).max(600_000).default(2000),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        /** A running job with no sample for this long is shown as `unknown`. */
        silent_after_ms: z
          .number()
          .int()
          .min(1000)
          .default(5 * 60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
