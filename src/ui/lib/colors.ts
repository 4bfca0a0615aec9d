/**
 * Colour scales for canvas heatmaps, as 256-entry RGBA lookup tables (little-endian ABGR words for a
 * Uint32Array view of ImageData), so that painting a cell is one array read. Byte 255 (no data) is
 * transparent: the page background shows through.
 */

type Stop = readonly [number, number, number, number]; // position 0..1, r, g, b

/** Idle is red, busy is green: the fleet's wasted GPUs should jump out (with a yellow middle for 50%). */
const UTILIZATION: readonly Stop[] = [
  [0, 165, 0, 38],
  [0.15, 215, 48, 39],
  [0.35, 244, 109, 67],
  [0.5, 253, 174, 97],
  [0.65, 217, 239, 139],
  [0.8, 102, 189, 99],
  [1, 26, 152, 80],
];

/** Viridis (perceptually uniform, colour-blind safe) for memory, temperature, power and the rest. */
const VIRIDIS: readonly Stop[] = [
  [0, 68, 1, 84],
  [0.25, 59, 82, 139],
  [0.5, 33, 145, 140],
  [0.75, 94, 201, 98],
  [1, 253, 231, 37],
];

export type ScaleName = 'utilization' | 'viridis';

function interpolate(stops: readonly Stop[], x: number): [number, number, number] {
  for (let i = 1; i < stops.length; i++) {
    const [p1, r1, g1, b1] = stops[i]!;
    if (x <= p1) {
      const [p0, r0, g0, b0] = stops[i - 1]!;
      const f = (x - p0) / (p1 - p0 || 1);
      return [Math.round(r0 + f * (r1 - r0)), Math.round(g0 + f * (g1 - g0)), Math.round(b0 + f * (b1 - b0))];
    }
  }
  const [, r, g, b] = stops[stops.length - 1]!;
  return [r, g, b];
}

function pack(r: number, g: number, b: number, a = 255): number {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

const tables = new Map<ScaleName, Uint32Array>();

/** RGBA words for bytes 0..254 along the scale, 255 transparent. */
export function colorTable(scale: ScaleName): Uint32Array {
  let t = tables.get(scale);
  if (!t) {
    const stops = scale === 'utilization' ? UTILIZATION : VIRIDIS;
    t = new Uint32Array(256);
    for (let i = 0; i < 255; i++) {
      const [r, g, b] = interpolate(stops, i / 254);
      t[i] = pack(r, g, b);
    }
    t[255] = 0;
    tables.set(scale, t);
  }
  return t;
}

/** CSS colour of a scale position 0..1 (legends). */
export function scaleCss(scale: ScaleName, x: number): string {
  const [r, g, b] = interpolate(scale === 'utilization' ? UTILIZATION : VIRIDIS, Math.max(0, Math.min(1, x)));
  return `rgb(${r}, ${g}, ${b})`;
}

/** Health levels 0 (healthy) .. 3 (critical) as RGBA words; no data stays transparent. */
export const HEALTH_COLORS: readonly string[] = ['#2f9e62', '#4e9af1', '#e0a030', '#e05a5a'];

export function healthTable(): Uint32Array {
  const t = new Uint32Array(256);
  HEALTH_COLORS.forEach((hex, i) => {
    t[i] = pack(
      Number.parseInt(hex.slice(1, 3), 16),
      Number.parseInt(hex.slice(3, 5), 16),
      Number.parseInt(hex.slice(5, 7), 16),
    );
  });
  return t;
}

export const SEVERITY_COLORS: Readonly<Record<string, string>> = {
  critical: '#e05a5a',
  warning: '#e0a030',
  info: '#4e9af1',
};
