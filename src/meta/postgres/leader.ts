/**
 * Leader election on PostgreSQL with a session advisory lock. In the scaled-out deployment the alert
 * dispatcher and the notification sender run in one process at a time, the leader: whoever holds
 * `pg_try_advisory_lock(key)` on its own dedicated connection (never a pooled one: a session lock belongs to
 * the session, and a pooled connection is shared and recycled). PostgreSQL releases the lock when that
 * session ends for any reason — the process exits or crashes, the connection breaks, an administrator runs
 * `pg_terminate_backend` — so another process takes over without anyone cleaning up.
 *
 * While not leader, an elector tries the lock every `intervalMs`. While holding it, it runs a cheap query
 * every `intervalMs` on the same connection; a failed or slow check, or the connection ending, makes it step
 * down at once (the `onChange` callbacks run), close the connection, and contend again.
 *
 * ## Why there are never two leaders at once
 *
 * Holding the lock is not enough, because the holder learns only later that it lost it: the server
 * releases the lock the moment the session ends, while the old holder notices at its next check or when the
 * broken socket reports an error — and in a network partition that may be much later. So leadership is
 * bounded in time on both sides, with durations measured on each process's monotonic clock:
 *
 * - Lease (old leader). Each successful query on the lock's session — the acquisition, then each check —
 *   proves that the session, hence the lock, was alive at some instant after the query was *sent*
 *   (at time `s`). The elector is leader only while `now < s_last + leaseMs`, where `s_last` is the send
 *   time of the last successful one. So if the lock is released at `R`, the last success was processed
 *   before `R`, hence `s_last < R`, and the old leader is no longer leader from `R + leaseMs` on, whether or
 *   not it has noticed anything, and even if its timers run late: `isLeader` compares the clock when read.
 * - Takeover delay (new leader). A process that acquires the lock becomes leader only `takeoverDelayMs`
 *   after it *received* the grant (at `g`). The grant came after the release, so `R <= g`, and the new
 *   leader starts at `g + takeoverDelayMs >= R + takeoverDelayMs`.
 *
 * With `takeoverDelayMs > leaseMs` the old leader's time is over before the new leader's begins. The margin
 * between them (10 % of the lease, at least 50 ms) covers the two machines' clocks running at slightly
 * different rates. Checks are sent every `intervalMs` and time out after `intervalMs`, and the lease is two
 * intervals, so a healthy leader renews its lease long before it ends. Cost: a hand-over takes up to one
 * interval (the next try) plus the takeover delay, about 3.2 intervals (3.2 s with the default 1 s).
 *
 * What remains for the caller: `isLeader` is true at the instant it is read. Work started as leader may
 * finish after leadership ended (a notification already on the wire), so a leader checks `isLeader` before
 * each unit of work, and the outbox stays at-least-once.
 */
import pg from 'pg';
import { pgError } from './errors.js';
import { clientConfig, type PgMetaOptions } from './pg-meta.js';

export interface LeaderElectionOptions {
  /** How to reach PostgreSQL (the same settings as the metadata store's pool; `poolSize` is not used). */
  readonly connection: PgMetaOptions;
  /**
   * The advisory lock's key: one per role that needs a single leader (a 64-bit integer, as a number or a
   * decimal string). Every process contending for the same role uses the same key.
   */
  readonly key: number | string;
  /** Period of tries and checks (default 1000 ms); see the file comment for what depends on it. */
  readonly intervalMs?: number;
  /** Connection and query failures (they also make the elector step down); for logs. */
  readonly onError?: (err: Error) => void;
}

type Listener = (isLeader: boolean) => void;

const now = () => performance.now();

export class LeaderElection {
  readonly intervalMs: number;
  /** How long after its last successful check (send time) a leader remains leader. */
  readonly leaseMs: number;
  /** How long after acquiring the lock a process waits before acting as leader. */
  readonly takeoverDelayMs: number;

  private readonly opts: LeaderElectionOptions;
  private readonly listeners = new Set<Listener>();
  private client: pg.Client | undefined;
  /** This elector's session holds the lock (not yet necessarily leader: see `leaderFromMs`). */
  private holding = false;
  private leaderFromMs = Number.POSITIVE_INFINITY;
  private leaseUntilMs = Number.NEGATIVE_INFINITY;
  /** The value last announced to listeners. */
  private announced = false;
  private running = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private boundaryTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /**
   * Fails the current session's pending connect. Needed because node-postgres never settles `connect()`
   * when `end()` is called while connecting, which would leave a tick waiting forever.
   */
  private abandonConnect: ((err: Error) => void) | undefined;

  constructor(opts: LeaderElectionOptions) {
    this.opts = opts;
    this.intervalMs = opts.intervalMs ?? 1000;
    if (!(this.intervalMs > 0)) throw new Error(`leader election interval ${this.intervalMs} ms is invalid`);
    this.leaseMs = 2 * this.intervalMs;
    this.takeoverDelayMs = this.leaseMs + Math.max(50, this.leaseMs / 10);
  }

  /** Whether this process is the leader now (computed from the clock when read, never stale-true). */
  get isLeader(): boolean {
    const t = now();
    return this.holding && t >= this.leaderFromMs && t < this.leaseUntilMs;
  }

  /** Calls `cb(isLeader)` on every change of leadership; returns a function that unsubscribes. */
  onChange(cb: Listener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Starts contending. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.scheduleTick(0);
  }

  /** Steps down (listeners are told at once), ends the session (which releases the lock) and stops. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.tickTimer);
    clearTimeout(this.boundaryTimer);
    this.holding = false;
    this.evaluate();
    const client = this.client;
    this.client = undefined;
    this.abandonConnect?.(new Error('leader election stopped'));
    // Ending the session first also fails whatever a tick in flight awaits (a connect, a query), so stop
    // does not wait for a connect timeout; that tick then sees `running` false and changes nothing.
    if (client) await endSession(client, this.intervalMs);
    await this.ticking;
  }

  private scheduleTick(delayMs: number): void {
    if (!this.running) return;
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick();
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const started = now();
    let client = this.client;
    try {
      client ??= await this.connect();
      const sentAt = now();
      if (!this.holding) {
        const r = await this.timed(
          client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [this.key]),
        );
        // Only if this session is still the current one: a lock won on a dropped session dies with it.
        if (this.running && client === this.client && r.rows[0]?.ok) {
          this.holding = true;
          this.leaderFromMs = now() + this.takeoverDelayMs;
          this.leaseUntilMs = sentAt + this.leaseMs;
        }
      } else {
        await this.timed(client.query('SELECT 1'));
        if (this.running && client === this.client) this.leaseUntilMs = sentAt + this.leaseMs;
      }
    } catch (err) {
      this.report(err, 'leader election');
      this.drop(client);
    } finally {
      this.evaluate();
      // Fixed rate: checks are sent every interval, whatever each one took (the lease assumes it).
      this.scheduleTick(Math.max(0, started + this.intervalMs - now()));
    }
  }

  private get key(): string {
    return String(this.opts.key);
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(clientConfig(this.opts.connection));
    // A broken session means a lost lock: step down at once, without waiting for the next check.
    client.on('error', (err) => {
      this.report(err, 'leader election session');
      this.drop(client);
    });
    client.on('end', () => this.drop(client));
    this.client = client;
    const abandoned = new Promise<never>((_, reject) => {
      this.abandonConnect = reject;
    });
    abandoned.catch(() => {}); // only ever observed through the race below
    try {
      await Promise.race([client.connect(), abandoned]);
    } catch (err) {
      this.drop(client);
      throw err;
    }
    // Let the server end a session that stops talking (a partitioned leader) instead of keeping the lock
    // until TCP gives up: checks come every interval, so only a dead peer is idle this long. Not needed
    // for safety (the lease is), only for a faster hand-over. PostgreSQL < 14 lacks the setting.
    await this.timed(
      client.query("SELECT set_config('idle_session_timeout', $1, false)", [String(4 * this.leaseMs)]),
    ).catch(() => {});
    return client;
  }

  /** Forgets a session (if it is still the current one): steps down, and closes it in the background. */
  private drop(client: pg.Client | undefined): void {
    if (!client || client !== this.client) return;
    this.client = undefined;
    this.abandonConnect?.(new Error('session dropped'));
    this.holding = false;
    this.leaderFromMs = Number.POSITIVE_INFINITY;
    this.leaseUntilMs = Number.NEGATIVE_INFINITY;
    this.evaluate();
    void endSession(client, this.intervalMs);
  }

  /** A query that takes longer than an interval counts as failed (the lease would not be renewed in time). */
  private timed<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`query took longer than ${this.intervalMs} ms`)),
        this.intervalMs,
      );
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  /** Announces a change of `isLeader`, and arranges to re-evaluate at the next moment it could change. */
  private evaluate(): void {
    clearTimeout(this.boundaryTimer);
    if (this.holding && now() >= this.leaseUntilMs) {
      // The lease ran out without a successful check: give the session up rather than resume leading if a
      // late answer arrives (no flapping; and the lock is freed for the others sooner).
      this.report(new Error(`no successful check for ${this.leaseMs} ms`), 'leader election');
      this.drop(this.client); // evaluates again, no longer holding
      return;
    }
    const leader = this.isLeader;
    if (leader !== this.announced) {
      this.announced = leader;
      for (const cb of this.listeners) {
        try {
          cb(leader);
        } catch (err) {
          this.opts.onError?.(err as Error);
        }
      }
    }
    if (!this.holding || !this.running) return;
    const t = now();
    const next = t < this.leaderFromMs ? this.leaderFromMs : this.leaseUntilMs;
    // +1: timers may fire a little early relative to performance.now().
    if (next > t) this.boundaryTimer = setTimeout(() => this.evaluate(), next - t + 1);
  }

  private report(err: unknown, doing: string): void {
    if (!this.running) return;
    this.opts.onError?.(pgError(err, this.opts.connection.url, doing));
  }
}

/**
 * Ends a session: politely (a Terminate message, so the server frees the lock at once), and if the server
 * does not answer within `graceMs` (a dead network), by closing the socket.
 */
async function endSession(client: pg.Client, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    client.end().then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    }),
  ]);
  clearTimeout(timer);
  // node-postgres has no public way to drop a connection without the server's goodbye.
  if (!ended)
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
