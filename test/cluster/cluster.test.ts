/**
 * trainwatch scaled out, as a platform team runs it: one Kafka broker, PostgreSQL, VictoriaMetrics, 2
 * collectors, 3 processors and 1 query process, each a separate OS process on 127.0.0.1 (`npm run
 * test:cluster`).
 *
 * The fleet simulator, with its incidents, sends through both collectors while a processor is SIGKILLed twice
 * and a collector once (each restarted at once), and a 4th processor joins mid-run (a rebalance: partitions and
 * their detector state move to it). Afterwards every sample that got a 2xx must be queryable
 * exactly once through the query process, and every injected incident must have raised its alert exactly once:
 * no alert identity has a second episode (a straggler's alert that reset after its partition moved would).
 * The last line printed says what happened:
 * `cluster: <acked> acked, <found> queryable, <lost> lost, <dup> duplicated, <a>/<i> incidents alerted after <k> kills`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  defaultFleetOptions,
  EXPECTED_ALERTS,
  FleetSimulator,
  type IncidentRecord,
  NodeBatcher,
} from '../../src/simulator/index.js';
import { type ClusterProcess, clusterUnavailable, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/helpers.js';

const PARTITIONS = 12;
/** Simulated history sent, ending now: long enough for every incident to start and be detected. */
const HISTORY_MS = 20 * 60_000;
const TICKS_PER_BATCH = 30;
/** Requests in flight at once (agents of many nodes). */
const CONCURRENCY = 6;

const unavailable = clusterUnavailable();
if (unavailable) console.warn(`skipping the cluster test: ${unavailable}`);

/**
 * Every acknowledged sample, by series (its name and sorted label pairs). NaN values are counted apart:
 * VictoriaMetrics drops NaN samples at ingestion (only staleness markers are kept; docs/remote-storage.md), so
 * a diverged job's NaN losses are acknowledged and alerted on, but never queryable from it.
 */
class Ledger {
  readonly bySeries = new Map<string, number>();
  acked = 0;
  nan = 0;

  note(batch: ReturnType<SeriesBatchBuilder['build']>): void {
    for (let s = 0; s < batch.series.length; s++) {
      let n = 0;
      for (let i = batch.offsets[s]!; i < batch.offsets[s + 1]!; i++) {
        if (Number.isNaN(batch.values[i]!)) this.nan++;
        else n++;
      }
      const key = seriesKey(batch.series[s]!);
      this.bySeries.set(key, (this.bySeries.get(key) ?? 0) + n);
      this.acked += n;
    }
  }
}

function seriesKey(labels: Readonly<Record<string, string>>): string {
  const name = labels.__name__ ?? '';
  const rest = Object.keys(labels)
    .filter((k) => k !== '__name__' && k !== 'tenant')
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return `${name}{${rest}}`;
}

describe.skipIf(unavailable !== undefined)('trainwatch on Kafka, PostgreSQL and VictoriaMetrics', () => {
  let cluster: TestCluster;
  const collectors: ClusterProcess[] = [];
  const processors: ClusterProcess[] = [];
  let query: ClusterProcess;

  beforeAll(async () => {
    cluster = await TestCluster.start({ partitions: PARTITIONS });
    // Sinks first: the query role and the processors, then the collectors.
    query = await cluster.add('query');
    for (let i = 0; i < 3; i++) processors.push(await cluster.add('processor'));
    for (let i = 0; i < 2; i++) collectors.push(await cluster.add('collector'));
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it('keeps every acknowledged sample exactly once and alerts every incident once, through kills', async () => {
    const endMs = Date.now();
    const fleet = new FleetSimulator({
      ...defaultFleetOptions,
      jobs: 10,
      seed: 7,
      startMs: endMs - HISTORY_MS,
    });
    const ledger = new Ledger();
    const encoder = new NativeEncoder();
    const batchers = new Map<string, NodeBatcher>();
    const sequences = new Map<string, number>();
    let sent = 0;
    let retries = 0;
    const kills: string[] = [];

    /** Sends one batch, to the collectors in turn; retries on the other one until a 2xx. */
    const send = async (
      nodeId: string,
      batch: ReturnType<SeriesBatchBuilder['build']>,
      events: JobEvent[],
    ) => {
      const sequence = sequences.get(nodeId) ?? 0;
      sequences.set(nodeId, sequence + 1);
      const frame = encoder.encodeFrame({ sourceId: `cluster-${nodeId}`, sequence, batch, events });
      let attempt = sent++;
      for (;;) {
        const target = collectors[attempt++ % collectors.length]!;
        try {
          const res = await fetch(`${target.url}/api/v1/ingest`, {
            method: 'POST',
            headers: { 'content-type': NATIVE_CONTENT_TYPE },
            body: Buffer.from(frame),
            signal: AbortSignal.timeout(20_000),
          });
          await res.arrayBuffer();
          if (res.ok) {
            ledger.note(batch);
            return;
          }
          if (res.status < 500 && res.status !== 429)
            throw new Error(`collector ${target.name} refused a batch: ${res.status}`);
        } catch (err) {
          if ((err as Error).message.startsWith('collector ')) throw err;
        }
        retries++;
        // Retry back-off after a refused or failed send, not a wait for an event.
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    // Simulate the whole history first (cheap), then send it paced, killing processes as it goes.
    const pending: { nodeId: string; batch: ReturnType<SeriesBatchBuilder['build']>; events: JobEvent[] }[] =
      [];
    const flush = (onlyFull: boolean) => {
      for (const [nodeId, b] of batchers) {
        if (!b.hasData() || (onlyFull && !b.full)) continue;
        const { batch, events } = b.take();
        pending.push({ nodeId, batch, events });
      }
    };
    while (fleet.nowMs + fleet.opts.intervalMs <= endMs) {
      fleet.tick();
      for (const node of fleet.activeNodes()) {
        let b = batchers.get(node.nodeId);
        if (!b) {
          b = new NodeBatcher(node, TICKS_PER_BATCH);
          batchers.set(node.nodeId, b);
        }
        b.capture(fleet.nowMs);
      }
      flush(true);
    }
    flush(false);
    const incidents: IncidentRecord[] = [...fleet.incidents];
    expect(incidents.length).toBeGreaterThanOrEqual(5);

    const total = pending.length;
    const moves: number[] = [];
    const killAt = new Map<number, () => Promise<void>>([
      [Math.floor(total * 0.25), () => kill(processors[0]!)],
      [Math.floor(total * 0.5), () => kill(collectors[0]!)],
      // Rebalance: a 4th processor joins; partitions (and their detector state) move to it.
      [Math.floor(total * 0.6), async () => void processors.push(await cluster.add('processor'))],
      [Math.floor(total * 0.75), () => kill(processors[1]!)],
    ]);
    const kill = async (p: ClusterProcess) => {
      kills.push(p.name);
      const at = performance.now();
      await cluster.killAndRestart(p);
      // How long until every partition is owned (and being read) again by a live processor.
      if (p.role === 'processor')
        void waitFor('every partition owned again', () => allOwned(p), 120_000, 100).then(() =>
          moves.push(performance.now() - at),
        );
    };
    /** Whether the live processors (the killed one's restart included, once it is up) own every partition. */
    const allOwned = async (killed: ClusterProcess) => {
      const owned = new Set<string>();
      for (const q of processors) {
        if (q === killed && q.child.proc.exitCode !== null) continue;
        const lag = await cluster.metric(q, 'trainwatch_processor_lag_records').catch(() => new Map());
        for (const labels of lag.keys()) owned.add(labels);
      }
      return owned.size === PARTITIONS || undefined;
    };
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const k = killAt.get(i);
        if (k) await k();
        const { nodeId, batch, events } = pending[i]!;
        await send(nodeId, batch, events);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    for (const p of cluster.processes) await cluster.ready(p);

    // Everything acknowledged reaches the TSDB once the processors have caught up and checkpointed.
    const names = [...new Set([...ledger.bySeries.keys()].map((k) => k.slice(0, k.indexOf('{'))))];
    let found = 0;
    const lossExamples: string[] = [];
    let lost = 0;
    let dup = 0;
    const count = async () => {
      await fetch(`${cluster.vm.url}/internal/force_flush`).then((r) => r.arrayBuffer());
      const seen = new Map<string, number>();
      for (const name of names) {
        const res = await fetch(`${query.url}/api/v1/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            query: `count_over_time(${name}[${Math.ceil(HISTORY_MS / 60_000) + 5}m])`,
            time: String((endMs + 60_000) / 1000),
          }).toString(),
        });
        const body = (await res.json()) as {
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
        expect(res.status, JSON.stringify(body)).toBe(200);
        for (const r of body.data.result)
          seen.set(seriesKey({ ...r.metric, __name__: name }), Number(r.value[1]));
      }
      found = 0;
      lost = 0;
      dup = 0;
      lossExamples.length = 0;
      for (const [key, acked] of ledger.bySeries) {
        const got = seen.get(key) ?? 0;
        found += Math.min(got, acked);
        if (got < acked) {
          lost += acked - got;
          if (lossExamples.length < 10) lossExamples.push(`${key}: ${acked} acked, ${got} found`);
        }
        if (got > acked) dup += got - acked;
      }
      return lost === 0 ? true : undefined;
    };
    await waitFor('every acknowledged sample queryable', count, 180_000, 1000).catch(() => undefined);

    // Every incident alerted, once: one episode of an expected alert on the incident's job.
    let alerted = 0;
    const episodes = new Map<string, number[]>();
    const countAlerts = async () => {
      const res = await fetch(`${query.url}/api/tw/v1/alerts?state=firing,resolved&limit=10000`);
      const body = (await res.json()) as {
        data: { alerts: { name: string; labels: Record<string, string>; activeAtMs: number }[] };
      };
      // Episodes per alert identity (name and labels, as its fingerprint): an alert that reset, or fired again
      // because a processor died or a partition moved, shows as a second episode of the same identity.
      episodes.clear();
      for (const a of body.data.alerts ?? []) {
        const key = `${a.name}${seriesKey(a.labels)}`;
        const list = episodes.get(key) ?? [];
        list.push(a.activeAtMs);
        episodes.set(key, list);
      }
      const fired = (inc: IncidentRecord) =>
        [...episodes].filter(
          ([key]) =>
            EXPECTED_ALERTS[inc.type].some((name) => key.startsWith(`${name}{`)) &&
            key.includes(`job_id=${inc.jobId}`),
        );
      alerted = incidents.filter((inc) => fired(inc).length > 0).length;
      return alerted === incidents.length || undefined;
    };
    await waitFor('every incident alerted', countAlerts, 60_000, 1000).catch(() => undefined);
    const twice = incidents.filter((inc) =>
      [...episodes].some(([key, starts]) => key.includes(`job_id=${inc.jobId}`) && new Set(starts).size > 1),
    );
    if (twice.length > 0)
      console.log(
        `alerts with more than one episode: ${[...episodes]
          .filter(([, starts]) => new Set(starts).size > 1)
          .map(([k, starts]) => `${k} at ${starts.join(', ')}`)
          .join('; ')}`,
      );

    console.log(
      `partitions owned again after a processor was killed: ${moves.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')}`,
    );
    console.log(
      `cluster: ${ledger.acked} acked, ${found} queryable, ${lost} lost, ${dup} duplicated, ` +
        `${alerted}/${incidents.length} incidents alerted after ${kills.length} kills ` +
        `(${retries} requests retried; ${ledger.nan} NaN samples acknowledged, which VictoriaMetrics does not store)`,
    );
    if (lost > 0) console.log(`series that lost samples:\n${lossExamples.join('\n')}`);
    if (lost > 0 || twice.length > 0) {
      // What the processes said: warnings and errors, and where each processor took up its partitions.
      for (const p of cluster.processes)
        console.log(
          `--- ${p.name} (errors and warnings) ---\n${p.child
            .output()
            .split('\n')
            .filter((l) => /"level":(40|50|60)/.test(l) || /partitions|state of partition/.test(l))
            .slice(-60)
            .join('\n')}`,
        );
    }
    expect(lost).toBe(0);
    expect(dup).toBe(0);
    expect(found).toBe(ledger.acked);
    expect(kills).toEqual(['processor-0', 'collector-0', 'processor-1']);
    expect(processors).toHaveLength(4);
    expect(twice.map((i) => i.type)).toEqual([]);
    expect(alerted).toBe(incidents.length);
  }, 600_000);

  it('tells autoscalers and load balancers what they need', async () => {
    // Processors: lag per owned partition (together: every partition) and the remote-write queue's depth.
    const owned = new Set<string>();
    for (const p of processors) {
      for (const labels of (await cluster.metric(p, 'trainwatch_processor_lag_records')).keys())
        owned.add(labels);
      expect((await cluster.metric(p, 'trainwatch_remote_write_samples_pending')).size).toBeGreaterThan(0);
    }
    expect(owned.size).toBe(PARTITIONS);
    for (const c of collectors)
      expect((await cluster.metric(c, 'trainwatch_collector_inflight_requests')).size).toBe(1);
    // Readiness names each dependency; a query process checks the TSDB and PostgreSQL.
    const ready = (await (await fetch(`${query.url}/readyz`)).json()) as { checks: Record<string, string> };
    expect(ready.checks).toMatchObject({ storage: 'ok', meta: 'ok' });
    // With VictoriaMetrics gone, the query process says so, naming it.
    await cluster.vm.stop();
    const res = await fetch(`${query.url}/readyz`);
    const body = (await res.json()) as { reason: string };
    expect(res.status).toBe(503);
    expect(body.reason).toMatch(/^storage: remote TSDB unreachable/);
  });
});
