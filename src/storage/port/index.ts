/**
 * Storage over a `MessagePort` (protocol.ts): how a worker thread reads (and a recording rule appends to) a
 * storage that lives in another thread. The embedded TSDB's shards live in processor workers; queries run in
 * query workers; both meet here.
 */

export {
  PortStorageReader,
  type ShardRouting,
  StoragePortClient,
  type StorageQueryEndpoints,
  shardOfSelection,
} from './reader.js';
export { type ServedStorage, serveStorageQueries } from './serve.js';

import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { StorageQueryEndpoints } from './reader.js';
import { type ServedStorage, serveStorageQueries } from './serve.js';

/** Endpoints to a storage in this thread: each `connect()` serves a new channel here and hands out its other end. */
export function localQueryEndpoints(storage: ServedStorage): StorageQueryEndpoints & { close(): void } {
  const stops = new Set<() => void>();
  return {
    connect(): MessagePort[] {
      const { port1, port2 } = new MessageChannel();
      const stop = serveStorageQueries(port1, storage);
      stops.add(stop);
      port1.once('close', () => stops.delete(stop));
      port1.unref();
      return [port2];
    },
    close() {
      for (const s of stops) s();
      stops.clear();
    },
  };
}
