/**
 * A scaled-out trainwatch on 127.0.0.1 for tests: real Kafka, PostgreSQL and VictoriaMetrics (each started by
 * its own test support file), and trainwatch processes started from the built CLI with `--roles`, each with
 * its own port and data directory, all sharing one configuration file. Processes are stopped or killed by PID.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Child, freePort, startCli, stopChild, tempDir, waitFor } from './helpers.js';
import { type KafkaBroker, kafkaUnavailable, startKafka } from './kafka.js';
import { POSTGRES_BIN_DIR, startPostgres, type TestPostgres } from './postgres.js';
import { startVictoriaMetrics, type VictoriaMetrics, victoriaMetricsAvailable } from './victoria-metrics.js';

export type ClusterRole = 'collector' | 'processor' | 'query';

/** Why the cluster cannot run here (a service is missing), or undefined. Under CI=true, missing is an error. */
export function clusterUnavailable(): string | undefined {
  const missing: string[] = [];
  const kafka = kafkaUnavailable();
  if (kafka) missing.push(kafka);
  if (!victoriaMetricsAvailable) missing.push('VictoriaMetrics: apt-get install victoria-metrics');
  if (!POSTGRES_BIN_DIR) missing.push('PostgreSQL: apt-get install postgresql');
  if (missing.length === 0) return undefined;
  const why = `the cluster test needs ${missing.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(why);
  return why;
}

export interface ClusterProcess {
  readonly role: ClusterRole;
  readonly name: string;
  readonly url: string;
  readonly dataDir: string;
  child: Child;
  /** Kills and starts it again. */
  kills: number;
}

export interface ClusterOptions {
  readonly partitions: number;
  /** Extra configuration merged into the generated file (YAML written from this object). */
  readonly extra?: Record<string, unknown>;
}

export class TestCluster {
  readonly processes: ClusterProcess[] = [];
  private configFile = '';

  private constructor(
    readonly kafka: KafkaBroker,
    readonly postgres: TestPostgres,
    readonly vm: VictoriaMetrics,
    readonly dir: string,
  ) {}

  /** Starts the three services and writes the shared configuration. */
  static async start(opts: ClusterOptions): Promise<TestCluster> {
    const dir = tempDir('tw-cluster-');
    const [kafka, postgres, vm] = await Promise.all([startKafka(), startPostgres(), startVictoriaMetrics()]);
    const cluster = new TestCluster(kafka, postgres, vm, dir);
    const config = {
      log: { level: 'info' },
      // Loopback only: anonymous callers may send and read, as the demo allows.
      auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
      bus: {
        kind: 'kafka',
        partitions: opts.partitions,
        kafka: {
          brokers: [kafka.brokers],
          topic: 'tw-cluster',
          // Short, so that a killed processor's partitions move within seconds in the test.
          session_timeout: '6s',
          rebalance_timeout: '10s',
        },
      },
      storage: {
        kind: 'remote',
        remote: { write_url: vm.writeUrl, query_url: vm.url, flavor: 'victoriametrics' },
      },
      meta: { kind: 'postgres', postgres: { url: postgres.url } },
      processor: { checkpoint_interval_ms: 500, state_interval_ms: 0 },
      ...opts.extra,
    };
    cluster.configFile = path.join(dir, 'trainwatch.json');
    // JSON is YAML: the configuration loader reads it as is.
    writeFileSync(cluster.configFile, JSON.stringify(config, null, 2));
    return cluster;
  }

  /** Starts one trainwatch process with the given role and waits until `/readyz` says ready. */
  async add(role: ClusterRole, name = `${role}-${this.processes.filter((p) => p.role === role).length}`) {
    const port = await freePort();
    const dataDir = path.join(this.dir, name);
    const proc: ClusterProcess = {
      role,
      name,
      url: `http://127.0.0.1:${port}`,
      dataDir,
      child: this.spawn(role, port, dataDir),
      kills: 0,
    };
    this.processes.push(proc);
    await this.ready(proc);
    return proc;
  }

  private spawn(role: ClusterRole, port: number, dataDir: string): Child {
    return startCli([
      'start',
      '--config',
      this.configFile,
      '--roles',
      role,
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      dataDir,
    ]);
  }

  async ready(p: ClusterProcess, timeoutMs = 90_000): Promise<void> {
    const state = await waitFor(
      `${p.name} ready`,
      async () => {
        if (p.child.proc.exitCode !== null) return 'exited';
        const res = await fetch(`${p.url}/readyz`);
        await res.arrayBuffer();
        return res.ok ? 'ready' : undefined;
      },
      timeoutMs,
      100,
    );
    if (state === 'exited')
      throw new Error(`${p.name} exited (${p.child.proc.exitCode}): ${p.child.output().slice(-3000)}`);
  }

  /** SIGKILL, then the same process again (same port and data directory) once the old one is gone. */
  async killAndRestart(p: ClusterProcess): Promise<void> {
    p.child.proc.kill('SIGKILL');
    await p.child.exited;
    p.kills++;
    const port = Number(new URL(p.url).port);
    p.child = this.spawn(p.role, port, p.dataDir);
  }

  /** One `/metrics` sample value per label set of `name`, for a process. */
  async metric(p: ClusterProcess, name: string): Promise<Map<string, number>> {
    const res = await fetch(`${p.url}/metrics`);
    const text = await res.text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      out.set(m[2] ?? '', Number(m[3]));
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => stopChild(p.child, 'SIGTERM', 20_000)));
    await Promise.all([this.kafka.stop(), this.postgres.stop(), this.vm.stop()]);
  }
}
