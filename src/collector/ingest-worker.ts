/**
 * Entry of an ingest worker thread (ingest-workers.ts): decodes the requests of the tenants it owns with its
 * own {@link IngestDecoder} and answers with their bus payloads, transferred back (not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toWireError } from '../model/errors.js';
import { IngestDecoder } from './ingest-decoder.js';
import type { IngestWorkerData, ToIngestWorker } from './ingest-workers.js';
import { TenantLimits } from './tenant-limits.js';

const data = workerData as IngestWorkerData;
const decoder = new IngestDecoder(data.limits, new TenantLimits(data.tenants));
const port = parentPort!;

port.on('message', (m: ToIngestWorker) => {
  if (m.type === 'undo') {
    decoder.undo(m.tenant, m.undo);
    return;
  }
  if (m.type === 'hold') {
    // Tests only: busy until released, so that a request is certainly in flight when the worker dies.
    Atomics.wait(m.flag, 0, 0);
    return;
  }
  let result: ReturnType<IngestDecoder['decode']>;
  try {
    result = decoder.decode(m.job);
  } catch (err) {
    port.postMessage({ id: m.id, error: toWireError(err) });
    return;
  }
  // Each payload goes back in its own buffer. A payload that is a view of a larger one (the native fast
  // path forwards a view of the request frame) is copied first: transferring a buffer twice, or one that
  // other views still use, is not possible.
  const transfer: ArrayBuffer[] = [];
  const parts = result.parts.map((part) => {
    let payload = part.payload;
    const buffer = payload.buffer as ArrayBuffer;
    if (payload.byteOffset !== 0 || payload.byteLength !== buffer.byteLength || transfer.includes(buffer)) {
      payload = payload.slice();
    }
    transfer.push(payload.buffer as ArrayBuffer);
    return { key: part.key, payload };
  });
  port.postMessage({ id: m.id, result: { ...result, parts } }, transfer);
});
