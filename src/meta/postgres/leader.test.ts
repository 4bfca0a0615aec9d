import net from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/helpers.js';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../../test/support/postgres.js';
import { LeaderElection } from './leader.js';

/** Long enough that a loaded shared machine does not miss checks (a missed check is a correct step-down). */
const INTERVAL_MS = 200;

/**
 * Watches several electors: samples `isLeader` of all of them every few ms and records every `onChange`,
 * so a test can assert that no two were leaders at any observed moment.
 */
class Observer {
  readonly overlaps: string[] = [];
  readonly changes: { who: string; leader: boolean; at: number }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly electors: Record<string, LeaderElection>) {
    for (const [who, e] of Object.entries(electors))
      e.onChange((leader) => {
        this.changes.push({ who, leader, at: performance.now() });
        this.check();
      });
    this.timer = setInterval(() => this.check(), 2);
  }

  leaders(): string[] {
    return Object.entries(this.electors)
      .filter(([, e]) => e.isLeader)
      .map(([who]) => who);
  }

  /** Leadership intervals from the callbacks must not overlap either. */
  callbackOverlaps(): number {
    const holders = new Set<string>();
    let overlaps = 0;
    for (const c of this.changes) {
      if (c.leader) holders.add(c.who);
      else holders.delete(c.who);
      if (holders.size > 1) overlaps++;
    }
    return overlaps;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = this.leaders();
    if (now.length > 1) this.overlaps.push(now.join('+'));
  }
}

/**
 * A TCP proxy to PostgreSQL that can simulate a network partition: once cut, it forwards nothing in either
 * direction and closes nothing, so neither side learns of it (as when a switch drops the packets).
 */
async function partitionableProxy(targetPort: number) {
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
    }
    client.on('data', (d) => {
      if (!cut) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!cut) client.write(d);
    });
    client.on('end', () => {
      if (!cut) upstream.end();
    });
    upstream.on('end', () => {
      if (!cut) client.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      cut = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describeWithPostgres('leader election on a PostgreSQL advisory lock', () => {
  let server: TestPostgres;
  let admin: pg.Client;
  const started: LeaderElection[] = [];
  const errors: string[] = [];
  let key = 1000;

  const elector = (name: string, lockKey: number) => {
    const e = new LeaderElection({
      connection: { url: server.url, applicationName: name },
      key: lockKey,
      intervalMs: INTERVAL_MS,
      onError: (err) => errors.push(`${name}: ${err.message}`),
    });
    started.push(e);
    return e;
  };
  const backendPid = async (applicationName: string) => {
    const r = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return r.rows.length === 1 ? r.rows[0]!.pid : undefined;
  };

  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((e) => e.stop()));
  });
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  it('elects exactly one of two; when the leader’s backend is killed the other takes over', async () => {
    key++;
    const a = elector('elector-a', key);
    const b = elector('elector-b', key);
    const obs = new Observer({ a, b });
    a.start();
    b.start();
    const first = (await waitFor('a leader', () =>
      obs.leaders().length === 1 ? obs.leaders()[0] : undefined,
    ))!;
    const [leader, other] = first === 'a' ? [a, b] : [b, a];
    const leaderName = first === 'a' ? 'elector-a' : 'elector-b';

    const pid = (await waitFor('the leader’s backend', () => backendPid(leaderName)))!;
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor('the old leader to step down', () => !leader.isLeader);
    await waitFor('the other to take over', () => other.isLeader);
    // The old leader reconnected and contends again, but does not lead while the other holds the lock.
    await waitFor('the old leader’s new session', async () => (await backendPid(leaderName)) !== pid);
    expect(leader.isLeader).toBe(false);
    obs.stop();
    expect(obs.overlaps).toEqual([]);
    expect(obs.callbackOverlaps()).toBe(0);
    expect(obs.changes.at(-1)).toMatchObject({ who: first === 'a' ? 'b' : 'a', leader: true });
  });

  it('hands over when the leader stops, and the stopped one is told at once', async () => {
    key++;
    const a = elector('stop-a', key);
    const b = elector('stop-b', key);
    const obs = new Observer({ a, b });
    a.start();
    await waitFor('a to lead', () => a.isLeader);
    b.start();
    await waitFor('b to try the lock', async () => (await backendPid('stop-b')) !== undefined);
    expect(b.isLeader).toBe(false);
    const stopping = a.stop();
    expect(a.isLeader).toBe(false);
    expect(obs.changes.at(-1)).toMatchObject({ who: 'a', leader: false });
    await stopping;
    await waitFor('b to take over', () => b.isLeader);
    obs.stop();
    expect(obs.overlaps).toEqual([]);
    expect(obs.callbackOverlaps()).toBe(0);
  });

  it('steps down when its checks hang (lease expiry), before anyone else can lead', async () => {
    key++;
    const a = elector('hang-a', key);
    const b = elector('hang-b', key);
    const obs = new Observer({ a, b });
    a.start();
    await waitFor('a to lead', () => a.isLeader);
    b.start();
    const pid = (await waitFor('a’s backend', () => backendPid('hang-a')))!;
    // Freeze a's backend: its session (and lock) stay alive on the server, but a's checks get no answer.
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor('a to step down on its own', () => !a.isLeader);
      expect(b.isLeader).toBe(false); // the lock is still held by a's frozen session
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Thawed, the backend sees that a closed the connection, ends the session and frees the lock; then one
    // of them (b, or a on its new session) leads.
    await waitFor('a new leader', () => obs.leaders().length === 1);
    obs.stop();
    expect(obs.overlaps).toEqual([]);
    expect(obs.callbackOverlaps()).toBe(0);
    // Whichever noticed first: the check's own timeout, or the lapsed lease.
    const hangErrors = errors.filter((e) => e.startsWith('hang-a: '));
    expect(hangErrors.some((e) => /longer than \d+ ms|no successful check/.test(e))).toBe(true);
  });

  it('a partitioned leader steps down by its lease before a new leader starts, though it hears nothing', async () => {
    key++;
    const proxy = await partitionableProxy(server.port);
    try {
      const a = new LeaderElection({
        connection: {
          url: server.url.replace(`:${server.port}/`, `:${proxy.port}/`),
          applicationName: 'part-a',
        },
        key,
        intervalMs: INTERVAL_MS,
        onError: (err) => errors.push(`part-a: ${err.message}`),
      });
      started.push(a);
      const b = elector('part-b', key);
      const obs = new Observer({ a, b });
      a.start();
      await waitFor('a to lead', () => a.isLeader);
      b.start();
      const pid = (await waitFor('a’s backend', () => backendPid('part-a')))!;
      // The network between a and the server fails, and the server ends a's session (as its keepalive
      // would): the lock is free at once, but a cannot know. b acquires it at its next try.
      proxy.cut();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor('b to take over', () => b.isLeader);
      expect(a.isLeader).toBe(false);
      // The step-down callback may come a turn after isLeader turned false (on a loaded machine, later still).
      await waitFor('a to report stepping down', () =>
        obs.changes.some((c) => c.who === 'a' && !c.leader) ? true : undefined,
      );
      obs.stop();
      expect(obs.overlaps).toEqual([]);
      expect(obs.callbackOverlaps()).toBe(0);
      // a stepped down (by its lease) before b started (after its takeover delay).
      const aDown = obs.changes.find((c) => c.who === 'a' && !c.leader)!;
      const bUp = obs.changes.find((c) => c.who === 'b' && c.leader)!;
      expect(aDown.at).toBeLessThan(bUp.at);
    } finally {
      await Promise.all(started.splice(0).map((e) => e.stop()));
      await proxy.close();
    }
  });

  it('reports an unreachable server by host and port, and does not lead', async () => {
    const e = new LeaderElection({
      connection: { url: 'postgres://x@127.0.0.1:1/db', connectTimeoutMs: 500 },
      key: 1,
      intervalMs: INTERVAL_MS,
      onError: (err) => errors.push(`unreachable: ${err.message}`),
    });
    started.push(e);
    e.start();
    await waitFor('a connection error', () => errors.find((m) => m.startsWith('unreachable: ')));
    expect(errors.find((m) => m.startsWith('unreachable: '))).toMatch(
      /PostgreSQL at x@127\.0\.0\.1:1\/db: .*connection refused/,
    );
    expect(e.isLeader).toBe(false);
  });
});
