/**
 * A real single-node Kafka broker for a test, from the jars `scripts/kafka/kafka.sh fetch` caches. The broker
 * runs on free ports in a temporary folder and is stopped by its PID.
 *
 * Without the jars: under CI=true they are fetched (a failure fails the test run loudly); elsewhere
 * {@link kafkaUnavailable} says why the Kafka tests skip, so that a developer without Java or Maven still runs
 * the rest of the suite.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, REPO_ROOT, tempDir } from './helpers.js';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'kafka', 'kafka.sh');
const KAFKA_HOME =
  process.env.TRAINWATCH_KAFKA_HOME ?? path.join(os.homedir(), '.cache', 'trainwatch', 'kafka');
const MARKER = path.join(KAFKA_HOME, 'libs', '.complete');

/**
 * Why Kafka tests cannot run here, or undefined when they can. Under CI the jars are fetched first, and a
 * failed fetch throws: CI must not skip them silently.
 */
export function kafkaUnavailable(): string | undefined {
  if (existsSync(MARKER)) return undefined;
  if (process.env.CI === 'true') {
    execFileSync('bash', [SCRIPT, 'fetch'], { stdio: 'inherit' });
    if (!existsSync(MARKER))
      throw new Error(`bash scripts/kafka/kafka.sh fetch left no jars in ${KAFKA_HOME}`);
    return undefined;
  }
  return `no Kafka broker jars in ${KAFKA_HOME}/libs: run 'bash scripts/kafka/kafka.sh fetch' (needs maven and java 17) to run the Kafka bus tests`;
}

export interface KafkaBroker {
  /** `127.0.0.1:port`, for `brokers: [...]`. */
  readonly brokers: string;
  readonly pid: number;
  readonly dir: string;
  /** Stops the broker (SIGTERM, then SIGKILL) and removes its folder. Idempotent. */
  stop(): Promise<void>;
  /** Stops the broker at once (SIGKILL) but keeps its folder: a broker that went away. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data (after `kill`), and waits until it answers. */
  restart(): Promise<void>;
}

/** Starts a broker and resolves once it answers a metadata request. */
export async function startKafka(timeoutMs = 60_000): Promise<KafkaBroker> {
  const dir = tempDir('tw-kafka-');
  const port = await freePort();
  const controllerPort = await freePort();
  let pid = 0;
  // kafka.sh formats <dir> once; a second start on it is a restart with the same data.
  const launch = async (): Promise<void> => {
    const out = execFileSync('bash', [SCRIPT, 'start', dir, String(port), String(controllerPort)], {
      encoding: 'utf8',
    });
    pid = Number(out.trim().split('\n').pop());
    if (!Number.isInteger(pid) || pid <= 0)
      throw new Error(`kafka.sh start printed no PID: ${JSON.stringify(out)}`);
    try {
      await waitForMetadata(port, pid, timeoutMs);
    } catch (err) {
      const log =
        readTail(path.join(dir, 'logs', 'stdout.log')) + readTail(path.join(dir, 'logs', 'server.log'));
      await broker.stop();
      throw new Error(`${(err as Error).message}\n--- broker output ---\n${log}`);
    }
  };
  const broker: KafkaBroker = {
    brokers: `127.0.0.1:${port}`,
    get pid() {
      return pid;
    },
    dir,
    async stop() {
      if (pid) await stopPid(pid);
      await fsp.rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await stopPid(pid, 0);
    },
    restart: launch,
  };
  await launch();
  return broker;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM (unless graceMs is 0), SIGKILL after graceMs; resolves once the process is gone. */
async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  const deadline = Date.now() + graceMs;
  let killed = graceMs === 0;
  // The broker is not our child (kafka.sh started it with setsid), so there is no exit event to wait for:
  // poll its PID, briefly.
  while (alive(pid)) {
    if (!killed && Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      killed = true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '';
  }
}

/**
 * Sends Kafka Metadata requests (v1: no topics, the broker list) until one is answered with this broker in it.
 * Each attempt waits for the socket's own events (connect, data, error); attempts are spaced by 100 ms.
 */
async function waitForMetadata(port: number, pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new Error(`the Kafka broker (PID ${pid}) exited while starting`);
    try {
      if (await metadataAnswered(port, Math.min(5_000, deadline - Date.now()))) return;
      last = 'metadata without brokers';
    } catch (err) {
      last = (err as Error).message;
    }
    // Spacing between metadata attempts (retry back-off); each attempt itself waits for socket events.
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `the Kafka broker on 127.0.0.1:${port} answered no metadata request in ${timeoutMs} ms (${last})`,
  );
}

function metadataAnswered(port: number, timeoutMs: number): Promise<boolean> {
  // MetadataRequest v1: api key 3, version 1, correlation id 1, client id "tw", topics: -1 (null = all).
  const clientId = Buffer.from('tw');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4);
  let o = body.writeInt16BE(3, 0);
  o = body.writeInt16BE(1, o);
  o = body.writeInt32BE(1, o);
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  body.writeInt32BE(-1, o);
  const frame = Buffer.alloc(4 + body.length);
  frame.writeInt32BE(body.length, 0);
  body.copy(frame, 4);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('metadata request timed out'));
    }, timeoutMs);
    const done = (err: Error | undefined, ok = false) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(ok);
    };
    sock.on('connect', () => sock.write(frame));
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error('connection closed before a metadata response')));
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 4 || got.length < 4 + got.readInt32BE(0)) return;
      // Response: size, correlation id, brokers array (count first): at least one broker registered.
      const brokers = got.length >= 12 ? got.readInt32BE(8) : 0;
      done(undefined, brokers > 0);
    });
  });
}
