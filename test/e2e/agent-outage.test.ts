/**
 * The agent's outage guarantees (DESIGN.md, "Agent outage tolerance"), with real processes: `trainwatch start`
 * as the collector, `trainwatch agent` reading the fake nvidia-smi (testdata/nvidia-smi, modelled output) and
 * taking SDK-style batches on its local endpoint.
 * - The collector stops for 60 s and comes back: every sample collected meanwhile is queryable once.
 * - The agent is killed with SIGKILL during an outage and restarted: what it had buffered survives.
 * - Past the TTL or the size limit, what is dropped is counted and reported (trainwatch_agent_dropped_*).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  type Child,
  freePort,
  getJson,
  REPO_ROOT,
  startCli,
  startServer,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';

const FAKE_BIN = path.join(REPO_ROOT, 'testdata/nvidia-smi/bin');
const children: Child[] = [];
/** How long the collector stays away in the outage test (and at least until 100 SDK batches were acknowledged). */
const OUTAGE_MS = 60_000;
/** The agent buffer's TTL in the drop test. */
const DROP_TTL_MS = 15_000;
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGKILL')));
});

function startOutageServer(port: number, dataDir: string): Promise<Child> {
  return startServer({
    port,
    dataDir,
    children,
    env: {
      TRAINWATCH_AUTH__ANONYMOUS_SCOPES: '[ingest, read]',
      TRAINWATCH_PROCESSOR__CHECKPOINT_INTERVAL_MS: '200',
    },
  });
}

function agentConfig(dir: string, localPort: number, extra = ''): string {
  const file = path.join(dir, 'agent.yaml');
  writeFileSync(
    file,
    `data_dir: ${path.join(dir, 'agent-data')}
node_id: outage-node
gpu:
  interval_ms: 1000
  processes_interval_ms: 5000
host:
  interval_ms: 1000
local:
  listen: 127.0.0.1:${localPort}
  socket: null
ship:
  max_delay_ms: 2000
self_metrics_interval_ms: 1000
${extra}`,
  );
  return file;
}

function startAgent(serverPort: number, config: string): Child {
  const child = startCli(['agent', '--server', `http://127.0.0.1:${serverPort}`, '--config', config], {
    PATH: `${FAKE_BIN}:${process.env.PATH}`,
    FAKE_NVIDIA_SMI_SCENARIO: 'h100-8x',
    FAKE_NVIDIA_SMI_LOOP: '1',
  });
  children.push(child);
  return child;
}

const encoder = new NativeEncoder();

/** An SDK-style batch: `sdk_seq{job_id="outage-job"}` = i at time t, plus `samples` filler samples. */
function sdkFrame(i: number, t: number, filler = 0): Uint8Array {
  const b = new SeriesBatchBuilder();
  b.addSample({ __name__: 'sdk_seq', job_id: 'outage-job', rank: '0' }, t, i);
  if (filler > 0) {
    b.addSeries({ __name__: 'sdk_filler', job_id: 'outage-job', rank: '0' });
    for (let k = 0; k < filler; k++) b.add(t - k, Math.random());
  }
  return encoder.encodeFrame(
    { sourceId: 'sdk-outage-test', sequence: i, batch: b.build(), events: [] },
    'zlib',
  );
}

async function postToAgent(localPort: number, frame: Uint8Array): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${localPort}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      body: frame,
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

interface SeriesBody {
  data: { series: { labels: Record<string, string>; t: number[]; v: number[] }[] };
}

async function series(port: number, query: string, start: number): Promise<SeriesBody['data']['series']> {
  const body = await getJson<SeriesBody>(
    `http://127.0.0.1:${port}/api/tw/v1/series?${query}&start=${start}&end=${Date.now() + 60_000}`,
  );
  return body.data.series;
}

/** Posts one SDK batch every `everyMs` until `stop()`; remembers which were acknowledged (200). */
function sdkWriter(localPort: number, everyMs: number, filler = 0, firstSequence = 0) {
  const acked = new Map<number, number>();
  let i = firstSequence;
  let running = true;
  const loop = (async () => {
    while (running) {
      const n = i++;
      const t = Date.now();
      if (await postToAgent(localPort, sdkFrame(n, t, filler))) acked.set(n, t);
      // Pacing of the writer (one batch per everyMs), not a wait for an event: tests wait with waitForAcks.
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    acked,
    sent: () => i,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Waits until the writer has `count` acknowledged batches in all. */
async function waitForAcks(writer: ReturnType<typeof sdkWriter>, count: number, what: string): Promise<void> {
  await waitFor(what, () => (writer.acked.size >= count ? true : undefined), 60_000, 100);
}

/** Checks that every acknowledged SDK sample is stored exactly once with its value. */
async function expectAllOnce(port: number, acked: Map<number, number>, from: number): Promise<void> {
  const got = await waitFor(
    'every acknowledged SDK sample at the collector',
    async () => {
      const s = (await series(port, 'metric=sdk_seq&job_id=outage-job', from))[0];
      if (!s) return undefined;
      const have = new Set(s.v);
      for (const n of acked.keys()) if (!have.has(n)) return undefined;
      return s;
    },
    60_000,
    500,
  );
  const byValue = new Map<number, number[]>();
  for (let k = 0; k < got.t.length; k++)
    byValue.set(got.v[k]!, [...(byValue.get(got.v[k]!) ?? []), got.t[k]!]);
  for (const [n, t] of acked) expect(byValue.get(n), `SDK sample ${n}`).toEqual([t]);
  expect(new Set(got.t).size).toBe(got.t.length);
}

/** GPU readings every second with no hole longer than `maxGapMs` over [from, to], none twice. */
async function expectGpuContinuity(port: number, from: number, to: number, maxGapMs: number): Promise<void> {
  const s = await waitFor(
    'GPU samples covering the outage',
    async () => {
      const list = await series(
        port,
        'metric=gpu_utilization_ratio&node_id=outage-node&gpu=0',
        from - 10_000,
      );
      const t = list.flatMap((x) => x.t).sort((a, b) => a - b);
      return t.length > 0 && t[t.length - 1]! >= to ? t : undefined;
    },
    60_000,
    500,
  );
  const inside = s.filter((t) => t >= from - 3000 && t <= to + 3000);
  expect(new Set(inside).size).toBe(inside.length);
  let maxGap = 0;
  for (let k = 1; k < inside.length; k++) maxGap = Math.max(maxGap, inside[k]! - inside[k - 1]!);
  expect(
    maxGap,
    `largest gap between GPU readings over the outage (${inside.length} readings)`,
  ).toBeLessThanOrEqual(maxGapMs);
  expect(inside[0]!).toBeLessThanOrEqual(from);
}

async function latest(port: number, query: string): Promise<number | undefined> {
  const list = await series(port, query, Date.now() - 600_000);
  let best: [number, number] | undefined;
  for (const s of list)
    s.t.forEach((t, k) => {
      if (!best || t > best[0]) best = [t, s.v[k]!];
    });
  return best?.[1];
}

describe('agent outage tolerance', () => {
  it('keeps collecting through a 60 s collector outage and delivers every sample exactly once', async () => {
    const dir = tempDir('tw-agent-outage-');
    const port = await freePort();
    const localPort = await freePort();
    let server = await startOutageServer(port, path.join(dir, 'server'));
    const agent = startAgent(port, agentConfig(dir, localPort));
    await waitFor(
      'GPU series at the collector',
      async () =>
        (await series(port, 'metric=gpu_utilization_ratio&node_id=outage-node&gpu=0', Date.now() - 60_000))
          .length > 0
          ? true
          : undefined,
      30_000,
      300,
    );
    const writer = sdkWriter(localPort, 500);
    await waitForAcks(writer, 3, 'SDK batches acknowledged before the outage');

    await stopChild(server);
    const outageStart = Date.now();
    const ackedBefore = writer.acked.size;
    // The outage lasts OUTAGE_MS, and at least until the agent acknowledged 100 SDK batches while the
    // collector was away (about two a second): whatever the machine's load, the agent is shown to keep
    // accepting through a long outage.
    await waitFor(
      `an outage of ${OUTAGE_MS} ms with 100 SDK batches acknowledged by the agent`,
      () =>
        Date.now() - outageStart >= OUTAGE_MS && writer.acked.size - ackedBefore >= 100 ? true : undefined,
      OUTAGE_MS + 60_000,
      250,
    );
    server = await startOutageServer(port, path.join(dir, 'server'));
    const outageEnd = Date.now();
    await waitForAcks(writer, writer.acked.size + 3, 'SDK batches acknowledged after the outage');
    await writer.stop();

    // Every batch the SDK sent was acknowledged by the agent, through the outage and after it.
    expect(writer.acked.size).toBe(writer.sent());
    await expectAllOnce(port, writer.acked, outageStart - 120_000);
    await expectGpuContinuity(port, outageStart, outageEnd, 2500);
    // Nothing was dropped, and the agent says it retried.
    for (const reason of ['ttl', 'size', 'rejected'])
      expect(
        await latest(
          port,
          `metric=trainwatch_agent_dropped_samples_total&reason=${reason}&node_id=outage-node`,
        ),
      ).toBe(0);
    expect(
      await latest(port, 'metric=trainwatch_agent_send_retries_total&node_id=outage-node'),
    ).toBeGreaterThan(0);
    expect(agent.output()).toContain('cannot deliver to the collector; buffering and retrying');
  }, 180_000);

  it('keeps what it buffered when killed with SIGKILL during an outage', async () => {
    const dir = tempDir('tw-agent-kill-');
    const port = await freePort();
    const localPort = await freePort();
    let server = await startOutageServer(port, path.join(dir, 'server'));
    const config = agentConfig(dir, localPort);
    let agent = startAgent(port, config);
    await waitFor(
      'GPU series at the collector',
      async () =>
        (await series(port, 'metric=gpu_utilization_ratio&node_id=outage-node&gpu=0', Date.now() - 60_000))
          .length > 0
          ? true
          : undefined,
      30_000,
      300,
    );
    await stopChild(server);
    const outageStart = Date.now();
    let writer = sdkWriter(localPort, 200);
    await waitForAcks(writer, 20, 'SDK batches buffered by the agent during the outage');
    await writer.stop();
    const beforeKill = writer.acked;
    const killedAt = Date.now();
    process.kill(agent.proc.pid!, 'SIGKILL');
    await agent.exited;

    agent = startAgent(port, config);
    await waitFor(
      'the restarted agent',
      async () => ((await fetch(`http://127.0.0.1:${localPort}/healthz`)).ok ? true : undefined),
      20_000,
    );
    writer = sdkWriter(localPort, 200);
    await waitForAcks(writer, 5, 'SDK batches acknowledged by the restarted agent');
    await writer.stop();
    server = await startOutageServer(port, path.join(dir, 'server'));
    expect(beforeKill.size).toBeGreaterThan(10);
    // SDK sequence numbers restart at 0 in the second writer: same source, same keys would be duplicates, so
    // the second writer's values are checked separately by their timestamps.
    await expectAllOnce(port, beforeKill, outageStart - 60_000);
    // GPU readings buffered before the kill (up to the last closed batch) survived it.
    await expectGpuContinuity(port, outageStart, killedAt - 1500, 2500);
    expect(agent.output()).toContain('resuming with batches buffered by a previous run');
  }, 120_000);

  it('counts what it drops past the TTL and the size limit, and reports it once the link is back', async () => {
    const dir = tempDir('tw-agent-drop-');
    const port = await freePort();
    const localPort = await freePort();
    let server = await startOutageServer(port, path.join(dir, 'server'));
    const agent = startAgent(
      port,
      agentConfig(
        dir,
        localPort,
        `buffer:\n  ttl_ms: ${DROP_TTL_MS}\n  max_bytes: 131072\n  segment_bytes: 16384\n`,
      ),
    );
    await waitFor(
      'the agent endpoint',
      async () => ((await fetch(`http://127.0.0.1:${localPort}/healthz`)).ok ? true : undefined),
      20_000,
    );
    await stopChild(server);
    // Phase 1: batches of about 8 KB, ten a second, until the 128 KB buffer overflows (size drops). How long
    // that takes depends on the machine's load; segments past the TTL would be dropped first, so the TTL is long
    // enough for 16 batches to arrive on a loaded machine.
    const bulk = sdkWriter(localPort, 100, 800);
    await waitFor(
      'the agent buffer to overflow',
      () => (/buffer full \(buffer\.max_bytes\)/.test(agent.output()) ? true : undefined),
      60_000,
      200,
    );
    await bulk.stop();
    const bulkEnded = Date.now();
    // Phase 2: small batches, four a second, from after phase 1's sequence numbers (the same source, so the
    // idempotency keys must not repeat), while phase 1's batches grow older than the TTL (TTL drops).
    const writer = sdkWriter(localPort, 250, 0, bulk.sent());
    await waitFor(
      "phase 1's batches older than the TTL",
      () => (Date.now() - bulkEnded > DROP_TTL_MS + 1000 ? true : undefined),
      DROP_TTL_MS + 30_000,
      200,
    );
    server = await startOutageServer(port, path.join(dir, 'server'));
    // Phase 2 goes on until the agent delivers again: its newest batches are within the TTL.
    await waitForAcks(writer, writer.acked.size + 4, 'SDK batches acknowledged once the link is back');
    await writer.stop();
    const ttl = await waitFor(
      'TTL drops reported',
      async () => {
        const v = await latest(
          port,
          'metric=trainwatch_agent_dropped_samples_total&reason=ttl&node_id=outage-node',
        );
        return v !== undefined && v > 0 ? v : undefined;
      },
      30_000,
      500,
    );
    const size = await latest(
      port,
      'metric=trainwatch_agent_dropped_samples_total&reason=size&node_id=outage-node',
    );
    expect(ttl).toBeGreaterThan(0);
    expect(size).toBeGreaterThan(0);
    expect(agent.output()).toMatch(/agent buffer full \(buffer.max_bytes\)|older than buffer.ttl_ms/);
    // The newest batches were within the TTL and the size limit: delivered.
    const last = Math.max(...writer.acked.keys());
    await waitFor(
      'the newest SDK batch',
      async () => {
        const s = (await series(port, 'metric=sdk_seq&job_id=outage-job', Date.now() - 120_000))[0];
        return s?.v.includes(last) ? true : undefined;
      },
      30_000,
      500,
    );
  }, 120_000);
});
