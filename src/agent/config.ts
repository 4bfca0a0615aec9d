/**
 * The agent's configuration: one YAML file (`trainwatch agent --config agent.yaml`), overridable by
 * `TRAINWATCH_AGENT_*` environment variables (`TRAINWATCH_AGENT_BUFFER__TTL_MS=900000`) and by the flags
 * `--server` and `--token`. Every key has a default except the server URL; docs/agent.md is the reference.
 */
import { z } from 'zod';
import { type ConfigSources, loadConfigWith } from '../config/index.js';

export const AGENT_ENV_PREFIX = 'TRAINWATCH_AGENT_';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9471');

const labelName = z
  .string()
  .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)');
const staticLabels = z.record(labelName, z.string().max(2048)).default({});
const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const httpUrl = z.string().regex(/^https?:\/\/[^\s/]+/, 'must be an http:// or https:// URL');

const scrapeTarget = z
  .object({
    /** Full URL of the exporter's metrics page, e.g. http://127.0.0.1:9400/metrics (dcgm-exporter). */
    url: httpUrl,
    /** Value of the `job` label, as Prometheus's scrape job name; default: the URL's host:port. */
    name: z.string().min(1).optional(),
    interval_ms: ms(100, 3_600_000).default(15_000),
    timeout_ms: ms(100, 120_000).default(5_000),
    /** Extra labels on every series of this target. */
    labels: staticLabels,
    /** Keep the exporter's own labels when they clash with the agent's (Prometheus's honor_labels). */
    honor_labels: z.boolean().default(false),
  })
  .strict();

const tensorboardDir = z
  .object({
    /** A log directory: every run below it (any depth) with events.out.tfevents.* files is imported. */
    path: z.string().min(1),
    /**
     * Fixed job_id for every run under this directory. Default: the writer process's job (its
     * TRAINWATCH_JOB_ID / Slurm / torchrun environment, when it runs on this node), else the run's directory name.
     */
    job_id: z.string().min(1).max(200).optional(),
    labels: staticLabels,
  })
  .strict();

export const agentConfigSchema = z
  .object({
    server: z
      .object({
        /** Collector base URL (required): --server. */
        url: httpUrl.optional(),
        /** Ingest token: --token, or read from token_file (a Kubernetes secret mount). */
        token: z.string().min(1).optional(),
        token_file: z.string().min(1).optional(),
        request_timeout_ms: ms(100, 300_000).default(10_000),
      })
      .strict()
      .prefault({}),
    /** Where the disk buffer and the agent's state live. */
    data_dir: z.string().min(1).default('./agent-data'),
    /** The node's name: default $TRAINWATCH_NODE_NAME, $NODE_NAME (Kubernetes downward API), then the hostname. */
    node_id: z.string().min(1).max(200).optional(),
    /** Static labels on every series (cluster, region, ...). */
    labels: staticLabels,
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    ship: z
      .object({
        /** A batch is closed at least this often (the issue's "≤ 1 s"). */
        interval_ms: ms(50, 1000).default(1000),
        /** ...or when it holds this many samples. */
        max_batch_samples: z.number().int().min(100).max(1_000_000).default(20_000),
        compression: z.enum(['zlib', 'none']).default('zlib'),
        base_delay_ms: ms(10, 60_000).default(250),
        max_delay_ms: ms(100, 600_000).default(10_000),
      })
      .strict()
      .prefault({}),
    buffer: z
      .object({
        /** Largest size of the on-disk buffer; beyond it the oldest segments are dropped (and counted). */
        max_bytes: z
          .number()
          .int()
          .min(16 << 10)
          .default(256 << 20),
        /** Samples older than this are dropped (and counted) instead of sent. */
        ttl_ms: ms(1000, 7 * 24 * 3_600_000).default(10 * 60_000),
        /** A new segment file starts beyond this size; dropping for size removes whole segments. */
        segment_bytes: z
          .number()
          .int()
          .min(4 << 10)
          .default(4 << 20),
        /** always: a batch is on disk (fdatasync) before it counts as buffered; never: leave it to the OS. */
        fsync: z.enum(['always', 'never']).default('always'),
      })
      .strict()
      .prefault({}),
    gpu: z
      .object({
        enabled: z.boolean().default(true),
        /** The nvidia-smi binary: a name looked up on PATH, or a path. */
        nvidia_smi: z.string().min(1).default('nvidia-smi'),
        /** How often the GPUs are read (nvidia-smi -lms); when shorter than ship.interval_ms, _min/_max series are added. */
        interval_ms: ms(100, 60_000).default(1000),
        /** How often the processes on each GPU are listed (attribution to jobs and ranks). */
        processes_interval_ms: ms(1000, 600_000).default(5000),
        /** The reading loop is restarted this often to pick up GPUs that appeared. */
        rediscover_interval_ms: ms(10_000, 86_400_000).default(10 * 60_000),
      })
      .strict()
      .prefault({}),
    host: z
      .object({
        enabled: z.boolean().default(true),
        interval_ms: ms(100, 600_000).default(1000),
        /** Where the host's /proc and /sys are (in a container: mount them and set /host). */
        root: z.string().min(1).default('/'),
        /** Network devices not reported (regular expression, anchored). */
        network_exclude: z.string().default('lo|veth.*|docker.*|br-.*|cali.*|flannel.*|cni.*|virbr.*'),
        /** Block devices not reported (partitions and virtual devices; anchored). */
        disk_exclude: z
          .string()
          .default('(loop|ram|zram|sr|fd|dm-)\\d*|(sd[a-z]+|vd[a-z]+|xvd[a-z]+)\\d+|nvme\\d+n\\d+p\\d+'),
        /** Filesystems whose free space is reported. */
        filesystems: z.array(z.string().min(1)).default(['/']),
      })
      .strict()
      .prefault({}),
    scrape: z.array(scrapeTarget).default([]),
    tensorboard: z
      .object({
        dirs: z.array(tensorboardDir).default([]),
        /** How often the directories are scanned for new files and new records. */
        interval_ms: ms(100, 600_000).default(2000),
      })
      .strict()
      .prefault({}),
    local: z
      .object({
        /** The SDK's endpoint; null turns it off. */
        listen: hostPort.nullable().default('127.0.0.1:9471'),
        /** Unix socket for the SDK; default <data_dir>/agent.sock; null turns it off. */
        socket: z.string().min(1).nullable().optional(),
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .default(16 << 20),
      })
      .strict()
      .prefault({}),
    /** How often the agent's own metrics (trainwatch_agent_*) are recorded. */
    self_metrics_interval_ms: ms(1000, 600_000).default(10_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.buffer.segment_bytes * 4 > c.buffer.max_bytes)
      ctx.addIssue({
        code: 'custom',
        path: ['buffer', 'segment_bytes'],
        message: `must be at most a quarter of buffer.max_bytes (${c.buffer.max_bytes}), so that dropping a segment for space drops little`,
      });
    if (c.ship.base_delay_ms > c.ship.max_delay_ms)
      ctx.addIssue({
        code: 'custom',
        path: ['ship', 'base_delay_ms'],
        message: `must not exceed ship.max_delay_ms (${c.ship.max_delay_ms})`,
      });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;

/** Defaults ← file ← TRAINWATCH_AGENT_* environment ← flags; throws ConfigError naming every bad key. */
export function loadAgentConfig(sources: ConfigSources): AgentConfig {
  return loadConfigWith(agentConfigSchema, sources, AGENT_ENV_PREFIX);
}
