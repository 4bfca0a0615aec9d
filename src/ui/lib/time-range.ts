/**
 * The time range of a page, as it lives in the URL (so that any view is a shareable link):
 * `range=1h` (the last hour, following now), `range=run` (the whole job), `from=…&to=…` (absolute, ms or
 * RFC 3339), and `t=<ms>` (centre the view on that moment — the link an alert carries).
 * DOM-free, so unit tests run it in Node.
 */

export const RANGE_PRESETS: readonly { readonly key: string; readonly ms: number; readonly label: string }[] =
  [
    { key: '5m', ms: 5 * 60_000, label: 'Last 5 minutes' },
    { key: '15m', ms: 15 * 60_000, label: 'Last 15 minutes' },
    { key: '1h', ms: 60 * 60_000, label: 'Last hour' },
    { key: '6h', ms: 6 * 60 * 60_000, label: 'Last 6 hours' },
    { key: '24h', ms: 24 * 60 * 60_000, label: 'Last 24 hours' },
    { key: '7d', ms: 7 * 24 * 60 * 60_000, label: 'Last 7 days' },
    { key: '30d', ms: 30 * 24 * 60 * 60_000, label: 'Last 30 days' },
  ];

export type RangeSpec =
  /** The last `ms` before now, moving with it. */
  | { readonly kind: 'relative'; readonly key: string; readonly ms: number }
  /** From the job's start to its end (or now, while it runs). */
  | { readonly kind: 'run' }
  | { readonly kind: 'absolute'; readonly from: number; readonly to: number };

/** Milliseconds since the epoch, or a date `Date.parse` understands; null if neither. */
export function parseTimeParam(raw: string | null | undefined): number | null {
  if (raw === null || raw === undefined || raw === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Math.round(Number(raw));
  const t = Date.parse(raw);
  return Number.isNaN(t) ? null : t;
}

export function presetByKey(key: string): { key: string; ms: number } | undefined {
  return RANGE_PRESETS.find((p) => p.key === key);
}

/**
 * Reads the range from URL parameters. `t` wins: the view is centred on it, as wide as the `range` preset
 * (or `defaultCentredMs`), and fixed (absolute) so that the moment stays in view.
 */
export function parseRange(
  params: URLSearchParams,
  fallback: RangeSpec,
  defaultCentredMs = 60 * 60_000,
): RangeSpec {
  const t = parseTimeParam(params.get('t'));
  const preset = presetByKey(params.get('range') ?? '');
  if (t !== null) {
    const width = preset?.ms ?? defaultCentredMs;
    return { kind: 'absolute', from: t - width / 2, to: t + width / 2 };
  }
  const from = parseTimeParam(params.get('from'));
  const to = parseTimeParam(params.get('to'));
  if (from !== null && to !== null && from < to) return { kind: 'absolute', from, to };
  if (params.get('range') === 'run') return { kind: 'run' };
  if (preset) return { kind: 'relative', key: preset.key, ms: preset.ms };
  return fallback;
}

/** URL parameters for a range; null removes a parameter. `t` is always cleared: it was a starting point. */
export function rangeParams(spec: RangeSpec): Record<string, string | null> {
  switch (spec.kind) {
    case 'relative':
      return { range: spec.key, from: null, to: null, t: null };
    case 'run':
      return { range: 'run', from: null, to: null, t: null };
    case 'absolute':
      return { range: null, from: String(Math.round(spec.from)), to: String(Math.round(spec.to)), t: null };
  }
}

/** Whether the range follows now (and so updates live). */
export function isLive(spec: RangeSpec, jobRunning = true): boolean {
  return spec.kind === 'relative' || (spec.kind === 'run' && jobRunning);
}

/**
 * The concrete [start, end] of a range at `now`. `run` needs the job's start and end (null end: running);
 * without a start it falls back to the last hour.
 */
export function resolveRange(
  spec: RangeSpec,
  now: number,
  job?: { startMs: number | null; endMs: number | null; lastSampleMs: number | null },
): { start: number; end: number } {
  switch (spec.kind) {
    case 'relative':
      return { start: now - spec.ms, end: now };
    case 'absolute':
      return { start: spec.from, end: spec.to };
    case 'run': {
      // A minute of margin before the start and after the end, so that no sample sits on the frame.
      const end = job?.endMs != null ? job.endMs + 60_000 : now;
      const start = (job?.startMs ?? now - 60 * 60_000) - 60_000;
      return { start, end: Math.max(end, start + 60_000) };
    }
  }
}

export function describeRange(spec: RangeSpec): string {
  switch (spec.kind) {
    case 'relative':
      return RANGE_PRESETS.find((p) => p.key === spec.key)?.label ?? `Last ${spec.key}`;
    case 'run':
      return 'Whole run';
    case 'absolute':
      return `${new Date(spec.from).toLocaleString()} – ${new Date(spec.to).toLocaleString()}`;
  }
}

/** `datetime-local` input value (local time, minutes) for ms, and back. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value: string): number | null {
  if (!value) return null;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? null : t;
}
