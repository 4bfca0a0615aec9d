/**
 * What the fuzz tests share (docs/security.md, "Fuzzing"): how many cases to run, byte-level mutations of
 * valid payloads, the one rule for what counts as a proper refusal, and a per-case clock.
 *
 * `FUZZ_RUNS` scales every test: the in-process runs per protocol (default 100,000, the CI share) and, in
 * proportion, the runs through the HTTP server (default 2,000). `FUZZ_RUNS=2000000 npx vitest run test/fuzz`
 * is the long run outside CI; `FUZZ_SEED` replays a failing run with the seed it printed.
 */
import fc from 'fast-check';
import { OtlpDecodeError } from '../../src/collector/otlp-decode.js';
import { SnappyError } from '../../src/collector/snappy.js';
import { TrainwatchError } from '../../src/model/errors.js';
import { DecodeError } from '../../src/protocol/bytes.js';
import { ProtoError } from '../../src/protocol/protobuf.js';
import { PromqlError, QueryTimeoutError } from '../../src/query/promql/index.js';

/** In-process cases per protocol (and PromQL strings). */
export const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 100_000));
/**
 * Cases per protocol built to hurt (label and attribute bombs, deep nesting, huge counts): each costs
 * milliseconds (that is the point), so fewer of them, on top of RUNS.
 */
export const HOSTILE_RUNS = Math.max(20, Math.round(RUNS / 500));
/** Requests through the real HTTP server (inject), scaled with RUNS. */
export const HTTP_RUNS = Math.max(1, Math.round((RUNS / 100_000) * 2000));
/** fast-check parameters: a fixed seed when FUZZ_SEED is set, and no verbose shrinking output. */
export function fcParams(numRuns: number): fc.Parameters<unknown> {
  const seed = process.env.FUZZ_SEED;
  return { numRuns, ...(seed ? { seed: Number(seed) } : {}), endOnFailure: false };
}

/**
 * A whole fuzz test's limit: the per-case deadline below is what catches hangs; this only stops a run that
 * a slow machine (or a large FUZZ_RUNS) makes long.
 */
export const TEST_TIMEOUT_MS = Math.max(600_000, (RUNS / 100_000) * 600_000);

/**
 * Longest one case may take. Generous (a shared CI machine is slow: the slowest cases took ~1 s on two cores
 * loaded twenty times over): it catches the hangs and the quadratic blow-ups issue 16 found (8.7 s, 86 s,
 * 170 s for one request), not ordinary variance.
 */
export const CASE_DEADLINE_MS = 5_000;

/**
 * True for the errors a route turns into a 4xx answer: a TrainwatchError below 500, or one of the decoders'
 * own error classes, which every ingest route maps to 400/413 (native-route.ts, remote-write.ts, otlp.ts; the
 * HTTP share of the fuzz checks that mapping end to end). Anything else (a RangeError, a TypeError, a stack
 * overflow) would be a 500 and is a bug.
 */
export function isClientRefusal(err: unknown): boolean {
  if (err instanceof TrainwatchError) return err.status >= 400 && err.status < 500;
  return (
    err instanceof DecodeError ||
    err instanceof ProtoError ||
    err instanceof OtlpDecodeError ||
    err instanceof SnappyError
  );
}

/** For PromQL: a 4xx PromqlError, or the query's own deadline (503 timeout, as Prometheus answers). */
export function isQueryRefusal(err: unknown): boolean {
  if (err instanceof QueryTimeoutError) return true;
  if (err instanceof PromqlError) return err.httpStatus >= 400 && err.httpStatus < 500;
  return isClientRefusal(err);
}

/** Counts per outcome and the slowest case, for the report line each test prints. */
export class FuzzStats {
  accepted = 0;
  refused = 0;
  slowestMs = 0;
  slowestInput = '';
  /** Time spent in the code under test (the rest of a test's time is generating inputs). */
  busyMs = 0;
  readonly refusalKinds = new Map<string, number>();

  constructor(readonly name: string) {}

  /** Runs one case: returns normally when it was accepted or properly refused; throws otherwise. */
  run(describeInput: () => string, body: () => void, refusal = isClientRefusal): void {
    const began = performance.now();
    try {
      body();
      this.accepted++;
    } catch (err) {
      if (!refusal(err)) throw unexpected(withStack(err, body), describeInput());
      this.refused++;
      this.countKind(err);
    } finally {
      this.time(began, describeInput);
    }
  }

  async runAsync(
    describeInput: () => string,
    body: () => Promise<void>,
    refusal = isClientRefusal,
  ): Promise<void> {
    const began = performance.now();
    try {
      await body();
      this.accepted++;
    } catch (err) {
      if (!refusal(err)) throw unexpected(err, describeInput());
      this.refused++;
      this.countKind(err);
    } finally {
      this.time(began, describeInput);
    }
  }

  private countKind(err: unknown): void {
    const kind = (err as Error).constructor.name;
    this.refusalKinds.set(kind, (this.refusalKinds.get(kind) ?? 0) + 1);
  }

  private time(began: number, describeInput: () => string): void {
    const ms = performance.now() - began;
    this.busyMs += ms;
    if (ms > this.slowestMs) {
      this.slowestMs = ms;
      this.slowestInput = describeInput().slice(0, 200);
    }
  }

  get total(): number {
    return this.accepted + this.refused;
  }

  summary(): string {
    const kinds = [...this.refusalKinds].map(([k, n]) => `${k} ${n}`).join(', ');
    return `${this.name}: ${this.total} cases, ${this.accepted} accepted, ${this.refused} refused (${kinds}); slowest ${this.slowestMs.toFixed(1)} ms, ${(this.busyMs / 1000).toFixed(1)} s in all`;
  }
}

/**
 * Most cases end in a thrown refusal, and capturing a stack trace is a large share of a throw's cost: the
 * fuzz loops run with `Error.stackTraceLimit = 0` (call this before, `restoreStackTraces` after). A case that
 * fails is run again with stack traces for its report ({@link withStack}).
 */
export function withoutStackTraces(): void {
  savedStackTraceLimit ??= Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
}

export function restoreStackTraces(): void {
  if (savedStackTraceLimit !== undefined) Error.stackTraceLimit = savedStackTraceLimit;
  savedStackTraceLimit = undefined;
}

let savedStackTraceLimit: number | undefined;

/** The error of a synchronous case run again with stack traces on (the case is deterministic). */
function withStack(err: unknown, body: () => void): unknown {
  if (Error.stackTraceLimit !== 0) return err;
  Error.stackTraceLimit = 50;
  try {
    body();
    return err;
  } catch (again) {
    return again;
  } finally {
    Error.stackTraceLimit = 0;
  }
}

function unexpected(err: unknown, input: string): Error {
  const e = err as Error;
  return new Error(
    `not a 4xx refusal: ${e?.constructor?.name}: ${e?.message}\ninput: ${input.slice(0, 500)}\n${e?.stack ?? ''}`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Byte mutations of valid payloads.

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; length: number }
  /** A varint that lies about a length or a count: huge, negative as int64, or just past the end. */
  | { kind: 'lie'; at: number; varint: bigint; replace: boolean }
  /** One stretch repeated: many fields, many labels, many samples. */
  | { kind: 'repeat'; at: number; length: number; times: number };

const LIES = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0x3fffn,
  0xffffn,
  0x7fffffffn,
  0xffffffffn,
  0x1_0000_0000n,
  2n ** 63n,
  2n ** 64n - 1n,
];
const SET_BYTES = [0, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x22, 0x5b, 0x7b, 0x22, 0x30];

/**
 * A small deterministic generator (mulberry32). fast-check draws one 32-bit seed per case and the
 * mutations are derived from it: far cheaper per case than composing fast-check arbitraries (the CI share
 * runs 10⁵ cases per protocol), and a failure still names its case (seed + the mutations it made).
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 1–4 mutations drawn from `random`. */
export function randomMutations(random: () => number): Mutation[] {
  const int = (n: number) => Math.floor(random() * n);
  const at = () => int(0x7fffffff);
  const out: Mutation[] = [];
  for (let i = 1 + int(4); i > 0; i--) {
    const k = int(13);
    if (k < 4) out.push({ kind: 'flip', at: at(), bit: int(8) });
    else if (k < 6) out.push({ kind: 'set', at: at(), byte: SET_BYTES[int(SET_BYTES.length)]! });
    else if (k < 8) out.push({ kind: 'truncate', at: at() });
    else if (k < 9)
      out.push({ kind: 'insert', at: at(), bytes: Array.from({ length: 1 + int(8) }, () => int(256)) });
    else if (k < 10) out.push({ kind: 'delete', at: at(), length: 1 + int(16) });
    else if (k < 12) {
      const varint =
        random() < 0.6
          ? LIES[int(LIES.length)]!
          : BigInt(int(0x100000)) * BigInt(int(0x100000)) + BigInt(int(4096));
      out.push({ kind: 'lie', at: at(), varint, replace: random() < 0.5 });
    } else out.push({ kind: 'repeat', at: at(), length: 1 + int(32), times: 2 + int(300) });
  }
  return out;
}

export function varintBytes(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

/** Applies the mutations in order (positions are taken modulo the current length). */
export function mutate(valid: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b: Uint8Array = valid.slice();
  for (const m of mutations) {
    const n = b.length;
    const at = n === 0 ? 0 : m.at % (n + (m.kind === 'insert' || m.kind === 'lie' ? 1 : 0));
    switch (m.kind) {
      case 'flip':
        if (n > 0) b[at % n] = b[at % n]! ^ (1 << m.bit);
        break;
      case 'set':
        if (n > 0) b[at % n] = m.byte;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = concat(b.subarray(0, at), new Uint8Array(m.bytes), b.subarray(at));
        break;
      case 'delete':
        b = concat(b.subarray(0, at), b.subarray(Math.min(n, at + m.length)));
        break;
      case 'lie': {
        const v = new Uint8Array(varintBytes(m.varint));
        const rest = m.replace ? skipVarint(b, at) : at;
        b = concat(b.subarray(0, at), v, b.subarray(rest));
        break;
      }
      case 'repeat': {
        const piece = b.subarray(at, Math.min(n, at + m.length));
        if (piece.length === 0) break;
        const parts: Uint8Array[] = [b.subarray(0, at)];
        for (let i = 0; i < m.times; i++) parts.push(piece);
        parts.push(b.subarray(at));
        b = concat(...parts);
        break;
      }
    }
  }
  return b;
}

/** The position after the varint starting at `at` (at most 10 bytes), to overwrite a length in place. */
function skipVarint(b: Uint8Array, at: number): number {
  let p = at;
  while (p < b.length && p - at < 10 && b[p]! & 0x80) p++;
  return Math.min(b.length, p + 1);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A valid payload (one of `seeds`) with 1–4 mutations; `describe` shows what was done, for a failure. */
export function mutatedArb(
  seeds: readonly Uint8Array[],
): fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> {
  return fc.tuple(fc.nat(seeds.length - 1), fc.integer()).map(([i, seed]) => {
    const ms = randomMutations(prng(seed));
    return {
      bytes: mutate(seeds[i]!, ms),
      describe: () =>
        `seed payload ${i}, mutation seed ${seed}: ${JSON.stringify(ms, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
    };
  });
}
