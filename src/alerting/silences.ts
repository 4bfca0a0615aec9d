/**
 * Silences, as Alertmanager has them: label matchers, a start and an end, an author and a comment. A silenced
 * alert is still shown (with the silences that mute it) but no notification is sent for it. Each silence
 * belongs to one tenant and mutes only that tenant's alerts.
 */
import { randomUUID } from 'node:crypto';
import type { ApiSilence, SilenceState } from '../model/alerting-api.js';
import { Errors, twError } from '../model/errors.js';
import { isValidLabelName, LabelMatcher, type LabelSet } from '../model/labels.js';
import type { SilenceMatcher, StoredSilence } from './records.js';
import type { AlertRepository } from './repository.js';

// The API's silence shape is shared with the dashboard (model/alerting-api.ts).
export type { ApiSilence, SilenceState } from '../model/alerting-api.js';

export interface SilenceInput {
  readonly id?: string;
  readonly matchers: readonly SilenceMatcher[];
  readonly startsAt: string | number;
  readonly endsAt: string | number;
  readonly createdBy: string;
  readonly comment: string;
}

interface CompiledSilence extends StoredSilence {
  readonly compiled: readonly LabelMatcher[];
}

function compile(m: SilenceMatcher): LabelMatcher {
  const type = m.isRegex ? (m.isEqual ? '=~' : '!~') : m.isEqual ? '=' : '!=';
  return new LabelMatcher(type, m.name, m.value);
}

export function silenceState(s: StoredSilence, nowMs: number): SilenceState {
  if (s.endsAtMs <= nowMs) return 'expired';
  if (s.startsAtMs > nowMs) return 'pending';
  return 'active';
}

export function toApiSilence(s: StoredSilence, nowMs: number): ApiSilence {
  return {
    id: s.id,
    status: { state: silenceState(s, nowMs) },
    updatedAt: new Date(s.updatedAtMs).toISOString(),
    comment: s.comment,
    createdBy: s.createdBy,
    startsAt: new Date(s.startsAtMs).toISOString(),
    endsAt: new Date(s.endsAtMs).toISOString(),
    matchers: s.matchers,
  };
}

function parseTime(v: string | number, field: string): number {
  const t = typeof v === 'number' ? v : Date.parse(v);
  if (!Number.isFinite(t))
    throw twError(Errors.badRequest, `${field} must be an RFC 3339 time, got ${JSON.stringify(v)}`);
  return t;
}

/** Checks a silence as Alertmanager does; errors name the field. */
export function validateSilence(input: unknown): SilenceInput {
  if (typeof input !== 'object' || input === null)
    throw twError(Errors.badRequest, 'the body must be a JSON silence object');
  const s = input as Record<string, unknown>;
  if (!Array.isArray(s.matchers) || s.matchers.length === 0)
    throw twError(Errors.badRequest, 'matchers: at least one matcher is required');
  const matchers: SilenceMatcher[] = s.matchers.map((m, i) => {
    const mm = m as Record<string, unknown>;
    if (typeof mm.name !== 'string' || !isValidLabelName(mm.name))
      throw twError(
        Errors.badRequest,
        `matchers[${i}].name must be a label name, got ${JSON.stringify(mm.name)}`,
      );
    if (typeof mm.value !== 'string')
      throw twError(Errors.badRequest, `matchers[${i}].value must be a string`);
    const isRegex = mm.isRegex === true;
    const isEqual = mm.isEqual !== false;
    const matcher = { name: mm.name, value: mm.value, isRegex, isEqual };
    try {
      compile(matcher);
    } catch (err) {
      throw twError(Errors.badRequest, `matchers[${i}]: ${(err as Error).message}`);
    }
    return matcher;
  });
  if (matchers.every((m) => compile(m).matches(''))) {
    throw twError(
      Errors.badRequest,
      'matchers: at least one matcher must not match the empty string (it would silence everything)',
    );
  }
  for (const f of ['createdBy', 'comment'] as const)
    if (typeof s[f] !== 'string' || (s[f] as string).trim() === '')
      throw twError(Errors.badRequest, `${f} is required`);
  if (s.startsAt === undefined || s.endsAt === undefined)
    throw twError(Errors.badRequest, 'startsAt and endsAt are required');
  const start = parseTime(s.startsAt as string, 'startsAt');
  const end = parseTime(s.endsAt as string, 'endsAt');
  if (end <= start) throw twError(Errors.badRequest, 'endsAt must be after startsAt');
  if (s.id !== undefined && typeof s.id !== 'string') throw twError(Errors.badRequest, 'id must be a string');
  return {
    ...(typeof s.id === 'string' && s.id !== '' ? { id: s.id } : {}),
    matchers,
    startsAt: start,
    endsAt: end,
    createdBy: s.createdBy as string,
    comment: s.comment as string,
  };
}

/**
 * The silences, cached in memory for `mutedBy` (asked for every alert at every group flush: it must not wait
 * for the store). The cache is reloaded after each write here and by {@link Silences.reload}: in a cluster,
 * where other processes write silences too, the dispatcher leader reloads it on a short interval, and a query
 * process before it changes a silence.
 */
export class Silences {
  private cache: CompiledSilence[] = [];
  /** Called when silences change, so that the dispatcher re-checks its groups. */
  onChange: (() => void) | undefined;
  private loadedAtMs = Number.NEGATIVE_INFINITY;

  /** Empty until {@link Silences.reload} (the service's start) loads what the store holds. */
  constructor(private readonly store: AlertRepository) {}

  /** Reads the silences again from the store; tells `onChange` when they differ. */
  async reload(): Promise<void> {
    const fresh = (await this.store.silences()).map((s) => ({ ...s, compiled: s.matchers.map(compile) }));
    const key = (l: readonly StoredSilence[]) =>
      l
        .map((s) => `${s.id}\u0000${s.updatedAtMs}`)
        .sort()
        .join('\u0001');
    const changed = this.loadedAtMs !== Number.NEGATIVE_INFINITY && key(fresh) !== key(this.cache);
    this.cache = fresh;
    this.loadedAtMs = Date.now();
    if (changed) this.onChange?.();
  }

  list(tenant: string, nowMs: number, filter: readonly LabelMatcher[] = []): ApiSilence[] {
    return this.cache
      .filter((s) => s.tenant === tenant)
      .filter((s) => filter.every((f) => s.matchers.some((m) => m.name === f.name && f.matches(m.value))))
      .sort((a, b) => b.updatedAtMs - a.updatedAtMs)
      .map((s) => toApiSilence(s, nowMs));
  }

  get(tenant: string, id: string, nowMs: number): ApiSilence {
    const s = this.cache.find((x) => x.id === id && x.tenant === tenant);
    if (!s) throw twError(Errors.notFound, `no silence ${JSON.stringify(id)}`);
    return toApiSilence(s, nowMs);
  }

  /** Creates a silence, or replaces one by id (Alertmanager: an update of an active silence). */
  async upsert(tenant: string, input: SilenceInput, nowMs: number): Promise<string> {
    let id = input.id;
    if (id !== undefined) {
      // Another process (of a cluster) may have changed it: decide on what is stored.
      await this.reload();
      const existing = this.cache.find((x) => x.id === id);
      if (!existing || existing.tenant !== tenant)
        throw twError(Errors.notFound, `no silence ${JSON.stringify(id)}`);
      if (silenceState(existing, nowMs) === 'expired')
        throw twError(Errors.badRequest, `silence ${id} has expired and cannot be changed; create a new one`);
    } else {
      id = randomUUID();
    }
    const saved = await this.store.saveSilence({
      id,
      tenant,
      matchers: [...input.matchers],
      startsAtMs: Number(input.startsAt),
      endsAtMs: Number(input.endsAt),
      createdBy: input.createdBy,
      comment: input.comment,
      updatedAtMs: nowMs,
    });
    if (!saved) throw twError(Errors.notFound, `no silence ${JSON.stringify(id)}`);
    await this.reloadAfterWrite();
    return id;
  }

  /** Expires a silence now (Alertmanager's DELETE). */
  async expire(tenant: string, id: string, nowMs: number): Promise<void> {
    await this.reload();
    const s = this.cache.find((x) => x.id === id && x.tenant === tenant);
    if (!s) throw twError(Errors.notFound, `no silence ${JSON.stringify(id)}`);
    if (silenceState(s, nowMs) === 'expired') return;
    await this.store.saveSilence({
      ...s,
      endsAtMs: nowMs,
      startsAtMs: Math.min(s.startsAtMs, nowMs),
      updatedAtMs: nowMs,
    });
    await this.reloadAfterWrite();
  }

  private async reloadAfterWrite(): Promise<void> {
    const onChange = this.onChange;
    this.onChange = undefined;
    try {
      await this.reload();
    } finally {
      this.onChange = onChange;
    }
    this.onChange?.();
  }

  /** Ids of the active silences that mute an alert with these labels. */
  mutedBy(labels: LabelSet, nowMs: number): string[] {
    const out: string[] = [];
    const tenant = labels.tenant ?? '';
    for (const s of this.cache) {
      if (s.tenant !== tenant || s.startsAtMs > nowMs || s.endsAtMs <= nowMs) continue;
      if (s.compiled.every((m) => m.matches(labels[m.name]))) out.push(s.id);
    }
    return out;
  }

  /** Forgets silences that expired long ago (Alertmanager keeps them 5 days). */
  async prune(nowMs: number, retentionMs: number): Promise<void> {
    if ((await this.store.pruneSilences(nowMs - retentionMs)) > 0) await this.reload();
  }

  /** When the next silence starts or ends, so the dispatcher can re-check its groups then. */
  nextChangeMs(nowMs: number): number | undefined {
    let next: number | undefined;
    for (const s of this.cache)
      for (const t of [s.startsAtMs, s.endsAtMs]) if (t > nowMs && (next === undefined || t < next)) next = t;
    return next;
  }
}
