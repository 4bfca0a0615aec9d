/**
 * The agent's configuration: one YAML file (`trainwatch agent --config agent.yaml`), overridable by
 * `TRAINWATCH_AGENT_*` environment variables (`TRAINWATCH_AGENT_BUFFER__TTL_MS=900000`) and by the flags
 * `--server`, `--token`, `--data-dir` and `--log-level`. Every key has a default except the server URL;
 * docs/agent.md is the reference.
 *
 * The agent does not use the server's configuration loader (src/config, zod and the `yaml` package): on a
 * training node it must stay under 60 MB of resident memory, and those cost ~20 MB (docs/agent.md,
 * Footprint). Its schema is small and fixed, so it is checked here by a few composable checks that name
 * every bad key, where its value came from and what was expected; YAML is read with js-yaml (~0.5 MB).
 */
import { loadAll } from 'js-yaml';
import { type ConfigLayerSources, isMapping, layerConfig, problemLine } from '../model/config-layers.js';
import { LOG_LEVELS, type LogLevel } from './log.js';

export const AGENT_ENV_PREFIX = 'TRAINWATCH_AGENT_';

export interface ScrapeTargetConfig {
  /** Full URL of the exporter's metrics page, e.g. http://127.0.0.1:9400/metrics (dcgm-exporter). */
  url: string;
  /** Value of the `job` label, as Prometheus's scrape job name; default: the URL's host:port. */
  name: string | undefined;
  interval_ms: number;
  timeout_ms: number;
  /** Extra labels on every series of this target. */
  labels: Record<string, string>;
  /** Keep the exporter's own labels when they clash with the agent's (Prometheus's honor_labels). */
  honor_labels: boolean;
}

export interface TensorboardDirConfig {
  /** A log directory: every run below it (any depth) with events.out.tfevents.* files is imported. */
  path: string;
  /**
   * Fixed job_id for every run under this directory. Default: the writer process's job (its
   * TRAINWATCH_JOB_ID / Slurm / torchrun environment, when it runs on this node), else the run's directory name.
   */
  job_id: string | undefined;
  labels: Record<string, string>;
}

export interface AgentConfig {
  server: {
    /** Collector base URL (required): --server. */
    url: string | undefined;
    /** Ingest token: --token, or read from token_file (a Kubernetes secret mount). */
    token: string | undefined;
    token_file: string | undefined;
    request_timeout_ms: number;
    /**
     * For an https:// server: the CA bundle to trust instead of the system's, and a client certificate and key
     * (mutual TLS: with the server's `http.tls.client_ca_file` the certificate replaces the token).
     */
    tls: AgentTlsConfig;
  };
  /** Where the disk buffer and the agent's state live. */
  data_dir: string;
  /** The node's name: default $TRAINWATCH_NODE_NAME, $NODE_NAME (Kubernetes downward API), then the hostname. */
  node_id: string | undefined;
  /** Static labels on every series (cluster, region, ...). */
  labels: Record<string, string>;
  log: { level: LogLevel };
  ship: {
    /** A batch is closed at least this often (the "≤ 1 s"). */
    interval_ms: number;
    /** ...or when it holds this many samples. */
    max_batch_samples: number;
    compression: 'zlib' | 'none';
    base_delay_ms: number;
    max_delay_ms: number;
  };
  buffer: {
    /** Largest size of the on-disk buffer; beyond it the oldest segments are dropped (and counted). */
    max_bytes: number;
    /** Samples older than this are dropped (and counted) instead of sent. */
    ttl_ms: number;
    /** A new segment file starts beyond this size; dropping for size removes whole segments. */
    segment_bytes: number;
    /** always: a batch is on disk (fdatasync) before it counts as buffered; never: leave it to the OS. */
    fsync: 'always' | 'never';
  };
  gpu: {
    enabled: boolean;
    /** The nvidia-smi binary: a name looked up on PATH, or a path. */
    nvidia_smi: string;
    /** How often the GPUs are read (nvidia-smi -lms); when shorter than ship.interval_ms, _min/_max series are added. */
    interval_ms: number;
    /** How often the processes on each GPU are listed (attribution to jobs and ranks). */
    processes_interval_ms: number;
    /** The reading loop is restarted this often to pick up GPUs that appeared. */
    rediscover_interval_ms: number;
    /**
     * The command that prints the kernel log and follows it, split on spaces: each GPU's XID errors are counted
     * from its `NVRM: Xid` lines. '' turns XID counting off.
     */
    kernel_log: string;
  };
  host: {
    enabled: boolean;
    interval_ms: number;
    /** Where the host's /proc and /sys are (in a container: mount them and set /host). */
    root: string;
    /** Network devices not reported (regular expression, anchored). */
    network_exclude: string;
    /** Block devices not reported (partitions and virtual devices; anchored). */
    disk_exclude: string;
    /** Filesystems whose free space is reported. */
    filesystems: string[];
  };
  scrape: ScrapeTargetConfig[];
  tensorboard: {
    dirs: TensorboardDirConfig[];
    /** How often the directories are scanned for new files and new records. */
    interval_ms: number;
  };
  local: {
    /** The SDK's endpoint; null turns it off. */
    listen: string | null;
    /** Unix socket for the SDK; undefined: <data_dir>/agent.sock; null turns it off. */
    socket: string | null | undefined;
    max_body_bytes: number;
  };
  /** How often the agent's own metrics (trainwatch_agent_*) are recorded. */
  self_metrics_interval_ms: number;
}

export interface AgentTlsConfig {
  /** PEM bundle of the CAs that sign the server's certificate (default: the system's). */
  ca_file: string | undefined;
  /** PEM client certificate (mutual TLS); needs key_file. */
  cert_file: string | undefined;
  key_file: string | undefined;
  /** The name checked against the server certificate, when the URL's host is not on it (SNI too). */
  server_name: string | undefined;
}

/** A configuration the agent cannot run with; the message names every bad key. */
export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checks. Each turns the value found at `key` (undefined when absent) into the configuration's value, its
// default when absent, or records a problem and returns undefined. An absent section is checked as `{}`, so
// its keys get their defaults.

interface Problem {
  readonly key: readonly string[];
  readonly message: string;
  /** Problems about the key's own value show it; "unknown key" and cross-key problems do not. */
  readonly showValue: boolean;
}

type Check<T> = (value: unknown, key: readonly string[], problems: Problem[]) => T;

function problem<T>(problems: Problem[], key: readonly string[], message: string): T {
  problems.push({ key, message, showValue: true });
  return undefined as T;
}

function integer(min: number, max: number, dflt: number): Check<number> {
  const expected =
    max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
  return (v, key, problems) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      return problem(problems, key, `must be ${expected}`);
    return v;
  };
}

function boolean(dflt: boolean): Check<boolean> {
  return (v, key, problems) => {
    if (v === undefined) return dflt;
    return typeof v === 'boolean' ? v : problem(problems, key, 'must be true or false');
  };
}

interface StringRule {
  readonly maxLength?: number;
  readonly pattern?: RegExp;
  /** What the pattern means, for the error: "must be ...". */
  readonly patternMessage?: string;
}

/** A non-empty string; required (wrap it in {@link optional} or {@link nullable} to give a default). */
function text(rule: StringRule = {}): Check<string> {
  return (v, key, problems) => {
    if (v === undefined) return problem(problems, key, 'is required');
    if (typeof v !== 'string') return problem(problems, key, 'must be a string');
    if (v.length === 0) return problem(problems, key, 'must not be empty');
    if (rule.maxLength !== undefined && v.length > rule.maxLength)
      return problem(problems, key, `must be at most ${rule.maxLength} characters long`);
    if (rule.pattern && !rule.pattern.test(v)) return problem(problems, key, rule.patternMessage!);
    return v;
  };
}

/** Absent or null (`key:` with nothing after it) gives `dflt`. */
function optional<T, D extends T | undefined>(check: Check<T>, dflt: D): Check<T | D> {
  return (v, key, problems) => (v === undefined || v === null ? dflt : check(v, key, problems));
}

/** Any string, the empty one included (regular expressions: '' excludes nothing). */
function anyText(dflt: string): Check<string> {
  return (v, key, problems) => {
    if (v === undefined) return dflt;
    return typeof v === 'string' ? v : problem(problems, key, 'must be a string');
  };
}

function oneOf<const V extends string>(values: readonly V[], dflt: V): Check<V> {
  return (v, key, problems) => {
    if (v === undefined) return dflt;
    return values.includes(v as V) ? (v as V) : problem(problems, key, `must be one of ${values.join(', ')}`);
  };
}

/** `null` is a value of its own ("off"); absent gives `dflt`. */
function nullable<T, D extends T | null | undefined>(check: Check<T>, dflt: D): Check<T | null | D> {
  return (v, key, problems) => {
    if (v === undefined) return dflt;
    if (v === null) return null;
    return check(v, key, problems);
  };
}

function list<T>(item: Check<T>, dflt: readonly T[] = []): Check<T[]> {
  return (v, key, problems) => {
    if (v === undefined) return [...dflt];
    if (!Array.isArray(v)) return problem(problems, key, 'must be a list');
    return v.map((x, i) => item(x, [...key, String(i)], problems));
  };
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A mapping of label names to values (static labels). */
const labels: Check<Record<string, string>> = (v, key, problems) => {
  if (v === undefined) return {};
  if (!isMapping(v)) return problem(problems, key, 'must be a mapping of label names to values');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(v)) {
    if (!LABEL_NAME.test(name))
      problems.push({
        key: [...key, name],
        message: 'is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)',
        showValue: false,
      });
    else if (typeof value !== 'string') problem(problems, [...key, name], 'must be a string (quote numbers)');
    else if (value.length > 2048) problem(problems, [...key, name], 'must be at most 2048 characters long');
    else out[name] = value;
  }
  return out;
};

/** A mapping with exactly these keys (others are reported as unknown); absent is checked as `{}`. */
function section<T>(fields: { [K in keyof T]-?: Check<T[K]> }): Check<T> {
  return (v, key, problems) => {
    if (v === undefined || v === null) v = {};
    if (!isMapping(v)) return problem(problems, key, 'must be a mapping of keys to values');
    const out = {} as T;
    for (const name of Object.keys(fields) as (keyof T & string)[])
      out[name] = fields[name](v[name], [...key, name], problems);
    for (const name of Object.keys(v))
      if (!Object.hasOwn(fields, name))
        problems.push({ key: [...key, name], message: 'unknown key', showValue: false });
    return out;
  };
}

const httpUrl = text({
  pattern: /^https?:\/\/[^\s/]+/,
  patternMessage: 'must be an http:// or https:// URL',
});
const hostPort = text({
  pattern: /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
  patternMessage: 'must be host:port, e.g. 127.0.0.1:9471',
});

const checkAgentConfig: Check<AgentConfig> = section<AgentConfig>({
  server: section<AgentConfig['server']>({
    url: optional(httpUrl, undefined),
    token: optional(text(), undefined),
    token_file: optional(text(), undefined),
    request_timeout_ms: integer(100, 300_000, 10_000),
    tls: section<AgentTlsConfig>({
      ca_file: optional(text(), undefined),
      cert_file: optional(text(), undefined),
      key_file: optional(text(), undefined),
      server_name: optional(text({ maxLength: 253 }), undefined),
    }),
  }),
  data_dir: optional(text(), './agent-data'),
  node_id: optional(text({ maxLength: 200 }), undefined),
  labels,
  log: section<AgentConfig['log']>({
    level: oneOf(Object.keys(LOG_LEVELS) as LogLevel[], 'info'),
  }),
  ship: section<AgentConfig['ship']>({
    interval_ms: integer(50, 1000, 1000),
    max_batch_samples: integer(100, 1_000_000, 20_000),
    compression: oneOf(['zlib', 'none'], 'zlib'),
    base_delay_ms: integer(10, 60_000, 250),
    max_delay_ms: integer(100, 600_000, 10_000),
  }),
  buffer: section<AgentConfig['buffer']>({
    max_bytes: integer(16 << 10, Number.MAX_SAFE_INTEGER, 256 << 20),
    ttl_ms: integer(1000, 7 * 24 * 3_600_000, 10 * 60_000),
    segment_bytes: integer(4 << 10, Number.MAX_SAFE_INTEGER, 4 << 20),
    fsync: oneOf(['always', 'never'], 'always'),
  }),
  gpu: section<AgentConfig['gpu']>({
    enabled: boolean(true),
    nvidia_smi: optional(text(), 'nvidia-smi'),
    interval_ms: integer(100, 60_000, 1000),
    processes_interval_ms: integer(1000, 600_000, 5000),
    rediscover_interval_ms: integer(10_000, 86_400_000, 10 * 60_000),
    kernel_log: anyText('dmesg --follow'),
  }),
  host: section<AgentConfig['host']>({
    enabled: boolean(true),
    interval_ms: integer(100, 600_000, 1000),
    root: optional(text(), '/'),
    network_exclude: anyText('lo|veth.*|docker.*|br-.*|cali.*|flannel.*|cni.*|virbr.*'),
    disk_exclude: anyText(
      '(loop|ram|zram|sr|fd|dm-)\\d*|(sd[a-z]+|vd[a-z]+|xvd[a-z]+)\\d+|nvme\\d+n\\d+p\\d+',
    ),
    filesystems: list(text(), ['/']),
  }),
  scrape: list(
    section<ScrapeTargetConfig>({
      url: httpUrl,
      name: optional(text(), undefined),
      interval_ms: integer(100, 3_600_000, 15_000),
      timeout_ms: integer(100, 120_000, 5_000),
      labels,
      honor_labels: boolean(false),
    }),
  ),
  tensorboard: section<AgentConfig['tensorboard']>({
    dirs: list(
      section<TensorboardDirConfig>({
        path: text(),
        job_id: optional(text({ maxLength: 200 }), undefined),
        labels,
      }),
    ),
    interval_ms: integer(100, 600_000, 2000),
  }),
  local: section<AgentConfig['local']>({
    listen: nullable(hostPort, '127.0.0.1:9471'),
    socket: nullable(text(), undefined),
    max_body_bytes: integer(1024, Number.MAX_SAFE_INTEGER, 16 << 20),
  }),
  self_metrics_interval_ms: integer(1000, 600_000, 10_000),
});

/** Checks between keys, once each key is valid on its own. */
function crossChecks(c: AgentConfig, problems: Problem[]): void {
  const add = (key: string[], message: string) => problems.push({ key, message, showValue: false });
  if (c.buffer.segment_bytes * 4 > c.buffer.max_bytes)
    add(
      ['buffer', 'segment_bytes'],
      `must be at most a quarter of buffer.max_bytes (${c.buffer.max_bytes}), so that dropping a segment for space drops little (got ${c.buffer.segment_bytes})`,
    );
  const tls = c.server.tls;
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined))
    add(
      ['server', 'tls', tls.cert_file === undefined ? 'cert_file' : 'key_file'],
      'is required with server.tls.' + (tls.cert_file === undefined ? 'key_file' : 'cert_file'),
    );
  const usesTls = tls.ca_file ?? tls.cert_file ?? tls.server_name;
  if (usesTls !== undefined && c.server.url !== undefined && !c.server.url.startsWith('https://'))
    add(['server', 'tls'], `needs an https:// server.url (got ${JSON.stringify(c.server.url)})`);
  if (c.ship.base_delay_ms > c.ship.max_delay_ms)
    add(
      ['ship', 'base_delay_ms'],
      `must not exceed ship.max_delay_ms (${c.ship.max_delay_ms}) (got ${c.ship.base_delay_ms})`,
    );
}

// ---------------------------------------------------------------------------------------------------------
// Sources: defaults ← file ← TRAINWATCH_AGENT_* environment ← flags (src/model/config-layers.ts, shared with the
// server), each value remembering where it came from.

/** Where the agent's configuration comes from: a YAML file, `TRAINWATCH_AGENT_*` variables, flags. */
export type AgentConfigSources = ConfigLayerSources;

const TOP_KEYS = new Set<string>([
  'server',
  'data_dir',
  'node_id',
  'labels',
  'log',
  'ship',
  'buffer',
  'gpu',
  'host',
  'scrape',
  'tensorboard',
  'local',
  'self_metrics_interval_ms',
]);

/** One YAML document (an empty file is an empty mapping). */
function parseYaml(text: string): unknown {
  const docs = loadAll(text, { maxAliases: 100 });
  if (docs.length > 1) throw new Error(`expected one YAML document, found ${docs.length}`);
  return docs[0];
}

/** Builds the agent's configuration; throws an {@link AgentConfigError} naming every bad key. */
export function loadAgentConfig(sources: AgentConfigSources = {}): AgentConfig {
  const layered = layerConfig(sources, {
    parseYaml,
    envPrefix: AGENT_ENV_PREFIX,
    topKeys: TOP_KEYS,
    error: (message) => new AgentConfigError(message),
  });
  const problems: Problem[] = [];
  const config = checkAgentConfig(layered.tree, [], problems);
  if (problems.length === 0) crossChecks(config, problems);
  if (problems.length === 0) return config;
  const lines = problems.map((p) => problemLine(layered, p.key, p.message, p.showValue));
  throw new AgentConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
