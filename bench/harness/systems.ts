/**
 * The systems under test, each started on 127.0.0.1 with a free port and a temporary data directory, and
 * stopped by its PID: trainwatch (the built `bin/trainwatch.js start`), VictoriaMetrics and Prometheus from
 * Debian's packages, plus Alertmanager and the node exporter for the alert and agent scenarios.
 *
 * Every system records the exact flags and configuration it ran with (`settings`), and they go into the
 * results.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { REPO_ROOT } from './generator.js';
import { encodeProbe, sendProbe } from './probe.js';
import {
  dirBreakdown,
  dirBytes,
  freePort,
  type ManagedProcess,
  startProcess,
  waitFor,
  waitHttpOk,
} from './proc.js';
import { PromApi } from './prom-api.js';
import { snappy } from './remote-write.js';
import { INGEST_PATHS, type PayloadFormat } from './replay.js';

export type SystemName = 'trainwatch' | 'victoriametrics' | 'prometheus';
export const SYSTEM_NAMES: readonly SystemName[] = ['trainwatch', 'victoriametrics', 'prometheus'];
export const SYSTEM_TITLES: Readonly<Record<SystemName, string>> = {
  trainwatch: 'trainwatch',
  victoriametrics: 'VictoriaMetrics',
  prometheus: 'Prometheus',
};

export const BINARIES = {
  victoriametrics: { bin: '/usr/bin/victoria-metrics', pkg: 'victoria-metrics' },
  prometheus: { bin: '/usr/bin/prometheus', pkg: 'prometheus' },
  alertmanager: { bin: '/usr/bin/prometheus-alertmanager', pkg: 'prometheus-alertmanager' },
  nodeExporter: { bin: '/usr/bin/prometheus-node-exporter', pkg: 'prometheus-node-exporter' },
} as const;

export const INSTALL_HINT =
  'apt-get install -y victoria-metrics prometheus prometheus-alertmanager prometheus-node-exporter';

export function packageVersion(pkg: string): string {
  try {
    // dpkg-query's format string, not a template literal.
    const format = '-f=$' + '{Version}';
    return execFileSync('dpkg-query', ['-W', format, pkg], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Why a reference binary cannot run, or undefined when it can. */
export function missingBinary(which: keyof typeof BINARIES): string | undefined {
  const b = BINARIES[which];
  return existsSync(b.bin) ? undefined : `${b.bin} not installed (${INSTALL_HINT})`;
}

export interface DiskUsage {
  /** Everything in the data directory. */
  readonly totalBytes: number;
  /** The compacted/persisted time-series storage, without write-ahead logs (see `how`). */
  readonly storageBytes: number;
  readonly how: string;
  readonly breakdown: Record<string, number>;
}

export interface System {
  readonly name: SystemName;
  readonly version: string;
  readonly baseUrl: string;
  readonly process: ManagedProcess;
  readonly dataDir: string;
  /** Flags and configuration, as run. */
  readonly settings: string[];
  readonly query: PromApi;
  /** For each payload format, true if the system takes it, else why not. */
  ingestSupport(): Promise<Record<PayloadFormat, true | string>>;
  /**
   * Persists what the system holds in memory (flush, compaction, snapshot — see `how`) and measures the data
   * directory. May stop the system (trainwatch persists on a graceful stop).
   */
  persistAndMeasureDisk(format: PayloadFormat): Promise<DiskUsage>;
  stop(): Promise<void>;
}

async function probeWrite(baseUrl: string, format: PayloadFormat): Promise<true | string> {
  const path = INGEST_PATHS[format];
  // An empty but valid request: an empty WriteRequest, or a native frame would need a sequence — for native
  // a malformed body is enough: 400 means the route exists.
  const body = format === 'remote-write' ? snappy.compress(new Uint8Array(0)) : new Uint8Array([0]);
  const headers: Record<string, string> =
    format === 'remote-write'
      ? { 'content-type': 'application/x-protobuf', 'content-encoding': 'snappy' }
      : { 'content-type': 'application/x-trainwatch-batch' };
  try {
    const res = await fetch(new URL(path, baseUrl), {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status === 404) return `endpoint POST ${path} missing (404)`;
    if (res.status === 401 || res.status === 403)
      return `POST ${path} refused the benchmark's credentials: ${text.slice(0, 200)}`;
    return true;
  } catch (err) {
    return `POST ${path} failed: ${(err as Error).message}`;
  }
}

export interface StartOptions {
  /** Where data directories and logs go. */
  readonly workDir: string;
  /** Names the data directory, configuration and log (default: the system's name). */
  readonly dirName?: string;
}

// ---------------------------------------------------------------------------------------------------------
// VictoriaMetrics

export async function startVictoriaMetrics(opts: StartOptions): Promise<System> {
  const port = await freePort();
  const dirName = opts.dirName ?? 'victoriametrics';
  const dataDir = path.join(opts.workDir, `${dirName}-data`);
  mkdirSync(dataDir, { recursive: true });
  const flags = [
    `-httpListenAddr=127.0.0.1:${port}`,
    `-storageDataPath=${dataDir}`,
    // The data set is backfilled up to a few minutes old; keep everything.
    '-retentionPeriod=100y',
    // Make fresh samples visible to queries at once (default 30s hides the newest 30 s).
    '-search.latencyOffset=0',
    // No rollup result cache: every repeated query is computed, as in Prometheus.
    '-search.disableCache',
    // Fleet-wide queries over a million series.
    '-search.maxUniqueTimeseries=100000000',
    '-loggerLevel=WARN',
  ];
  const proc = startProcess('victoria-metrics', BINARIES.victoriametrics.bin, flags, {
    logFile: path.join(opts.workDir, `${dirName}.log`),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitHttpOk(proc, `${baseUrl}/health`);
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop());
    return sum;
  };
  return {
    name: 'victoriametrics',
    version: packageVersion(BINARIES.victoriametrics.pkg),
    baseUrl,
    process: proc,
    dataDir,
    settings: flags,
    query: new PromApi(baseUrl, { nocache: '1' }),
    ingestSupport: async () => ({
      'remote-write': true,
      native: 'VictoriaMetrics does not speak trainwatch’s native protocol',
    }),
    async persistAndMeasureDisk() {
      await (await fetch(`${baseUrl}/internal/force_flush`)).text();
      const dataParts = path.join(dataDir, 'data', 'small');
      const partitions = existsSync(dataParts) ? readdirSync(dataParts) : [];
      for (const p of partitions) {
        await (
          await fetch(`${baseUrl}/internal/force_merge?partition_prefix=${encodeURIComponent(p)}`)
        ).text();
      }
      // Merges run in the background: wait until none is active and the size stops changing.
      let last = -1;
      await waitFor(
        'VictoriaMetrics merges to finish',
        async () => {
          const active = await metric('vm_active_merges');
          const size = dirBytes(dataDir);
          const settled = active === 0 && size === last;
          last = size;
          return settled;
        },
        120_000,
        1000,
      );
      await proc.stop();
      const breakdown = { ...dirBreakdown(dataDir) };
      return {
        totalBytes: dirBytes(dataDir),
        storageBytes: (breakdown.data ?? 0) + (breakdown.indexdb ?? 0),
        how: 'force_flush + force_merge of every partition, merges settled, graceful stop; storage = data/ + indexdb/',
        breakdown,
      };
    },
    stop: () => proc.stop(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Prometheus

export interface PrometheusOptions extends StartOptions {
  /** Alertmanager to send alerts to, and rules files (the alert scenario reloads with them). */
  readonly alertmanagerUrl?: string;
}

export function prometheusConfig(opts: { alertmanagerUrl?: string; ruleFiles?: string[] }): string {
  const cfg: Record<string, unknown> = { global: { evaluation_interval: '1s', scrape_interval: '1m' } };
  if (opts.ruleFiles?.length) cfg.rule_files = opts.ruleFiles;
  if (opts.alertmanagerUrl) {
    cfg.alerting = {
      alertmanagers: [{ static_configs: [{ targets: [new URL(opts.alertmanagerUrl).host] }] }],
    };
  }
  return toYaml(cfg);
}

export interface PrometheusSystem extends System {
  readonly configFile: string;
  /** Rewrites the configuration and reloads it (POST /-/reload). */
  reload(config: string): Promise<void>;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusSystem> {
  const port = await freePort();
  const dirName = opts.dirName ?? 'prometheus';
  const dataDir = path.join(opts.workDir, `${dirName}-data`);
  mkdirSync(dataDir, { recursive: true });
  const configFile = path.join(opts.workDir, `${dirName}.yml`);
  const config = prometheusConfig({
    ...(opts.alertmanagerUrl ? { alertmanagerUrl: opts.alertmanagerUrl } : {}),
  });
  writeFileSync(configFile, config);
  const flags = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-remote-write-receiver',
    // Snapshots (to measure compacted bytes) and config reloads (rules for the alert scenario).
    '--web.enable-admin-api',
    '--web.enable-lifecycle',
    '--storage.tsdb.retention.time=100y',
    '--log.level=warn',
  ];
  const proc = startProcess('prometheus', BINARIES.prometheus.bin, flags, {
    logFile: path.join(opts.workDir, `${dirName}.log`),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitHttpOk(proc, `${baseUrl}/-/ready`);
  const settings = [...flags, `prometheus.yml: ${config.trim().replace(/\n/g, ' ⏎ ')}`];
  return {
    name: 'prometheus',
    version: packageVersion(BINARIES.prometheus.pkg),
    baseUrl,
    process: proc,
    dataDir,
    settings,
    configFile,
    query: new PromApi(baseUrl),
    ingestSupport: async () => ({
      'remote-write': true,
      native: 'Prometheus does not speak trainwatch’s native protocol',
    }),
    async reload(text: string) {
      writeFileSync(configFile, text);
      const res = await fetch(`${baseUrl}/-/reload`, { method: 'POST' });
      const body = await res.text();
      if (!res.ok) throw new Error(`Prometheus reload failed: HTTP ${res.status} ${body}`);
      settings.push(`reloaded prometheus.yml: ${text.trim().replace(/\n/g, ' ⏎ ')}`);
    },
    async persistAndMeasureDisk() {
      // A snapshot writes the head (in-memory chunks + WAL) as a compacted TSDB block: Prometheus's on-disk
      // format for data once it is older than the head (2 h by default).
      const res = await fetch(`${baseUrl}/api/v1/admin/tsdb/snapshot?skip_head=false`, { method: 'POST' });
      const body = (await res.json()) as { data?: { name?: string } };
      if (!res.ok || !body.data?.name) throw new Error(`Prometheus snapshot failed: ${JSON.stringify(body)}`);
      const snapshotDir = path.join(dataDir, 'snapshots', body.data.name);
      const storageBytes = dirBytes(snapshotDir);
      await proc.stop();
      return {
        totalBytes: dirBytes(dataDir, (rel) => rel.startsWith('snapshots')),
        storageBytes,
        how: 'storage = a TSDB snapshot with the head (the head written as a compacted block: chunks + index); total = data dir without snapshots (WAL, head chunks)',
        breakdown: { ...dirBreakdown(dataDir), snapshot: storageBytes },
      };
    },
    stop: () => proc.stop(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// trainwatch

export const TRAINWATCH_TENANT = 'bench';

/**
 * Keeps only the keys the built trainwatch's configuration schema knows (keys of features not landed yet
 * would stop it at start), and says which were dropped.
 */
export async function fitTrainwatchConfig(
  desired: Record<string, unknown>,
  /** Top-level sections that may be left out whole when the build refuses their values. */
  optionalSections: readonly string[] = [],
): Promise<{ config: Record<string, unknown>; dropped: string[] }> {
  const schemaFile = path.join(REPO_ROOT, 'dist', 'config', 'schema.js');
  if (!existsSync(schemaFile)) throw new Error(`${schemaFile} missing: run npm run build:server first`);
  const { configSchema } = (await import(pathToFileURL(schemaFile).href)) as {
    configSchema: {
      safeParse(v: unknown): {
        success: boolean;
        error?: { issues: { code: string; path: (string | number)[]; keys?: string[]; message: string }[] };
      };
    };
  };
  const config = structuredClone(desired);
  const dropped: string[] = [];
  for (let round = 0; round < 20; round++) {
    const r = configSchema.safeParse(config);
    if (r.success) return { config, dropped };
    const unknown = r.error!.issues.filter((i) => i.code === 'unrecognized_keys');
    const refused = r.error!.issues.filter((i) => i.code !== 'unrecognized_keys');
    const optional = refused.filter((i) => optionalSections.includes(String(i.path[0])));
    for (const issue of optional) {
      const section = String(issue.path[0]);
      if (!(section in config)) continue;
      delete (config as Record<string, unknown>)[section];
      dropped.push(`${section} (refused: ${issue.path.join('.')}: ${issue.message})`);
    }
    if (optional.length) continue;
    if (unknown.length === 0) {
      throw new Error(
        `trainwatch configuration refused: ${r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    for (const issue of unknown) {
      let obj = config as Record<string, unknown>;
      for (const p of issue.path) obj = obj[p] as Record<string, unknown>;
      for (const k of issue.keys ?? []) {
        delete obj[k];
        dropped.push([...issue.path, k].join('.'));
      }
    }
  }
  throw new Error('could not fit the trainwatch configuration to its schema');
}

/** trainwatch's data directory by part: storage = everything but the bus log, SQLite and the lock. */
function storageBreakdown(dataDir: string): {
  entries: Record<string, number>;
  storage: number;
  rollupBytes: number;
} {
  const entries = dirBreakdown(dataDir);
  const notStorage = (k: string) => k === 'bus' || k === 'LOCK' || /\.(sqlite|db)(-wal|-shm)?$/.test(k);
  const storage = Object.entries(entries)
    .filter(([k]) => !notStorage(k))
    .reduce((a, [, v]) => a + v, 0);
  const blocksDir = path.join(dataDir, 'tsdb', 'blocks');
  const rollupBytes = existsSync(blocksDir)
    ? readdirSync(blocksDir)
        .filter((f) => !f.startsWith('raw-') && f.endsWith('.twb'))
        .reduce((a, f) => a + statSync(path.join(blocksDir, f)).size, 0)
    : 0;
  return { entries, storage, rollupBytes };
}

export interface TrainwatchOptions extends StartOptions {
  /** Extra configuration merged over the benchmark's (e.g. alerting); keys the build lacks are dropped. */
  readonly extraConfig?: Record<string, unknown>;
}

export interface TrainwatchSystem extends System {
  /** Configuration keys the build did not know and that were left out. */
  readonly droppedConfig: readonly string[];
}

export function trainwatchBaseConfig(): Record<string, unknown> {
  return {
    log: { level: 'warn' },
    auth: {
      anonymous_tenant: TRAINWATCH_TENANT,
      anonymous_scopes: ['ingest', 'read', 'admin'],
      anonymous_from: 'loopback',
    },
    // The benchmark measures capacity: no per-tenant limit may throttle it.
    limits: {
      max_active_series: 50_000_000,
      samples_per_second: 1e12,
      samples_burst: 1_000_000_000_000,
    },
  };
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export async function startTrainwatch(opts: TrainwatchOptions): Promise<TrainwatchSystem> {
  const port = await freePort();
  const name = opts.dirName ?? 'trainwatch';
  const dataDir = path.join(opts.workDir, `${name}-data`);
  mkdirSync(dataDir, { recursive: true });
  const { config, dropped } = await fitTrainwatchConfig(
    merge(trainwatchBaseConfig(), opts.extraConfig ?? {}),
    Object.keys(opts.extraConfig ?? {}),
  );
  const configFile = path.join(opts.workDir, `${name}.yaml`);
  const configText = toYaml(config);
  writeFileSync(configFile, configText);
  const cli = path.join(REPO_ROOT, 'bin', 'trainwatch.js');
  const args = [cli, 'start', '--config', configFile, '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`];
  const proc = startProcess(name, process.execPath, args, {
    logFile: path.join(opts.workDir, `${name}.log`),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitHttpOk(proc, `${baseUrl}/readyz`, 120_000);
  const settings = [
    `node bin/trainwatch.js start --config ${name}.yaml --data-dir <tmp> --listen 127.0.0.1:<port>`,
    `${name}.yaml: ${configText.trim().replace(/\n/g, ' ⏎ ')}`,
    ...(dropped.length ? [`left out (not in this build's configuration schema): ${dropped.join(', ')}`] : []),
  ];
  let version = 'unknown';
  try {
    version = execFileSync(process.execPath, [cli, 'version'], { encoding: 'utf8' })
      .trim()
      .replace(/^trainwatch /, '');
  } catch {}
  return {
    name: 'trainwatch',
    version,
    baseUrl,
    process: proc,
    dataDir,
    settings,
    droppedConfig: dropped,
    query: new PromApi(baseUrl),
    ingestSupport: async () => ({
      'remote-write': await probeWrite(baseUrl, 'remote-write'),
      native: await probeWrite(baseUrl, 'native'),
    }),
    async persistAndMeasureDisk(format: PayloadFormat) {
      // trainwatch keeps recent data in its head (Gorilla chunks + head log) and writes immutable blocks
      // (per-chunk codec choice, an index per block) once the head's newest sample is half a block duration
      // past a block boundary (docs/storage.md). Prometheus's figure is its block format (a snapshot), so
      // trainwatch's is too: one sample 3 minutes ahead moves the head's newest sample past the boundary, and
      // a restart with `storage.block_duration: 1m` cuts everything older into raw blocks at its first
      // checkpoint. The head-format figure (after a plain graceful stop) is kept in the breakdown.
      const cutMarker = encodeProbe(format, [
        {
          labels: { __name__: 'bench_storage_cut_marker', tenant: TRAINWATCH_TENANT },
          timestamps: [Date.now() + 3 * 60_000],
          values: [1],
        },
      ]);
      await sendProbe(baseUrl, format, cutMarker);
      await proc.stop(120_000);
      const headFormat = storageBreakdown(dataDir);
      const { config: cutConfig, dropped: cutDropped } = await fitTrainwatchConfig(
        merge(config, { storage: { block_duration: '1m' } }),
        ['storage'],
      );
      const fallback = (why: string): DiskUsage => ({
        totalBytes: dirBytes(dataDir),
        storageBytes: headFormat.storage,
        how: `graceful stop (storage checkpoint, head format: ${why}); storage = data dir without the bus log (the WAL) and the SQLite metadata`,
        breakdown: headFormat.entries,
      });
      if (cutDropped.length) return fallback(`this build has no ${cutDropped.join(', ')}`);
      const cutFile = path.join(opts.workDir, `${name}-cut.yaml`);
      writeFileSync(cutFile, toYaml(cutConfig));
      const cutArgs = [
        cli,
        'start',
        '--config',
        cutFile,
        '--data-dir',
        dataDir,
        '--listen',
        `127.0.0.1:${port}`,
      ];
      const cut = startProcess(`${name}-cut`, process.execPath, cutArgs, {
        logFile: path.join(opts.workDir, `${name}.log`),
      });
      const blocksDir = path.join(dataDir, 'tsdb', 'blocks');
      const rawBlockBytes = () =>
        existsSync(blocksDir)
          ? readdirSync(blocksDir)
              .filter((f) => f.startsWith('raw-') && f.endsWith('.twb'))
              .reduce((a, f) => a + statSync(path.join(blocksDir, f)).size, 0)
          : 0;
      try {
        await waitHttpOk(cut, `${baseUrl}/readyz`, 120_000);
        let last = -1;
        await waitFor(
          'trainwatch to cut its head into raw blocks',
          () => {
            const size = dirBytes(path.join(dataDir, 'tsdb'));
            const settled = rawBlockBytes() > 0 && size === last;
            last = size;
            return settled;
          },
          120_000,
          1000,
        );
      } catch (err) {
        await cut.stop(60_000);
        return fallback(`no raw block was cut: ${(err as Error).message.split('\n')[0]}`);
      }
      await cut.stop(120_000);
      const after = storageBreakdown(dataDir);
      return {
        totalBytes: dirBytes(dataDir),
        storageBytes: rawBlockBytes(),
        how: 'a sample 3 min ahead, graceful stop, restart with storage.block_duration: 1m, the head cut into raw blocks at the first checkpoint, graceful stop; storage = the raw blocks (tsdb/blocks/raw-*.twb: chunks + index), as Prometheus’s block',
        breakdown: {
          ...after.entries,
          'tsdb/blocks raw': rawBlockBytes(),
          'tsdb/blocks rollups (10s, 1m, 1h)': after.rollupBytes,
          'storage before the cut (head format, whole tsdb)': headFormat.storage,
        },
      };
    },
    stop: () => proc.stop(60_000),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Alertmanager and the node exporter

export async function startAlertmanager(
  opts: StartOptions & { webhookUrl: string },
): Promise<{ process: ManagedProcess; url: string; settings: string[]; version: string }> {
  const port = await freePort();
  const dataDir = path.join(opts.workDir, 'alertmanager-data');
  mkdirSync(dataDir, { recursive: true });
  const config = toYaml({
    route: {
      receiver: 'bench',
      group_by: ['alertname', 'job_id'],
      group_wait: '0s',
      group_interval: '1s',
      repeat_interval: '1h',
    },
    receivers: [{ name: 'bench', webhook_configs: [{ url: opts.webhookUrl, send_resolved: false }] }],
  });
  const configFile = path.join(opts.workDir, 'alertmanager.yml');
  writeFileSync(configFile, config);
  const flags = [
    `--config.file=${configFile}`,
    `--storage.path=${dataDir}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // No cluster gossip: a single local instance.
    '--cluster.listen-address=',
    '--log.level=warn',
  ];
  const proc = startProcess('alertmanager', BINARIES.alertmanager.bin, flags, {
    logFile: path.join(opts.workDir, 'alertmanager.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttpOk(proc, `${url}/-/ready`);
  return {
    process: proc,
    url,
    settings: [...flags, `alertmanager.yml: ${config.trim().replace(/\n/g, ' ⏎ ')}`],
    version: packageVersion(BINARIES.alertmanager.pkg),
  };
}

export async function startNodeExporter(
  opts: StartOptions,
): Promise<{ process: ManagedProcess; url: string; settings: string[]; version: string }> {
  const port = await freePort();
  const flags = [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'];
  const proc = startProcess('node-exporter', BINARIES.nodeExporter.bin, flags, {
    logFile: path.join(opts.workDir, 'node-exporter.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttpOk(proc, `${url}/metrics`);
  return { process: proc, url, settings: flags, version: packageVersion(BINARIES.nodeExporter.pkg) };
}
