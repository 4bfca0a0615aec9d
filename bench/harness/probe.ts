/**
 * Sends a few samples right now, in either protocol: the visibility and alert scenarios' probes. Encoded on
 * the spot (they are tiny), with the same encoders as the load generator.
 */
import { randomBytes } from 'node:crypto';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { LabelSet } from '../../src/model/labels.js';
import { ByteWriter } from '../../src/protocol/bytes.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { encodeLabels, REMOTE_WRITE_HEADERS, snappy, writeTimeSeries } from './remote-write.js';
import { INGEST_PATHS, type PayloadFormat } from './replay.js';

export interface ProbeSeries {
  readonly labels: LabelSet;
  readonly timestamps: readonly number[];
  readonly values: readonly number[];
}

const sourceId = `bench-probe-${randomBytes(4).toString('hex')}`;
let sequence = 0;
const nativeEncoder = new NativeEncoder();

export function encodeProbe(format: PayloadFormat, series: readonly ProbeSeries[]): Uint8Array {
  if (format === 'remote-write') {
    const w = new ByteWriter(1024);
    for (const s of series) {
      writeTimeSeries(
        w,
        encodeLabels(s.labels),
        Float64Array.from(s.timestamps),
        Float64Array.from(s.values),
        0,
        s.timestamps.length,
      );
    }
    return snappy.compress(w.view_());
  }
  const b = new SeriesBatchBuilder();
  for (const s of series) {
    b.addSeries(s.labels);
    s.timestamps.forEach((t, i) => {
      b.add(t, s.values[i]!);
    });
  }
  return nativeEncoder.encodeFrame({ sourceId, sequence: sequence++, batch: b.build(), events: [] }, 'none');
}

/** POSTs the probe; throws unless the server answers 2xx. */
export async function sendProbe(baseUrl: string, format: PayloadFormat, body: Uint8Array): Promise<void> {
  const headers =
    format === 'remote-write' ? { ...REMOTE_WRITE_HEADERS } : { 'content-type': NATIVE_CONTENT_TYPE };
  const res = await fetch(new URL(INGEST_PATHS[format], baseUrl), {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`probe refused: HTTP ${res.status} ${text.slice(0, 300)}`);
}
