/**
 * Entry point of the load-generator process. It builds data sets and replays them on request from the
 * harness over IPC, so that its CPU is its own (measured from /proc) and not the harness's.
 *
 * Messages in: {id, cmd: 'build', name, options: DatasetOptions} | {id, cmd: 'replay', name, options}.
 * Messages out: {id, ok: true, result} | {id, ok: false, error} | {id, progress}.
 */
import { buildDataset, type Dataset, type DatasetOptions } from './dataset.js';
import { type ReplayOptions, replay } from './replay.js';

type Command =
  | { id: number; cmd: 'build'; name: string; options: DatasetOptions }
  | { id: number; cmd: 'replay'; name: string; options: Omit<ReplayOptions, 'onProgress'> }
  | { id: number; cmd: 'drop'; name: string };

const datasets = new Map<string, Dataset>();
const send = (m: unknown) => process.send?.(m);

process.on('message', async (m: Command) => {
  try {
    if (m.cmd === 'build') {
      datasets.delete(m.name);
      const ds = buildDataset(m.options);
      datasets.set(m.name, ds);
      send({ id: m.id, ok: true, result: ds.summary });
    } else if (m.cmd === 'replay') {
      const ds = datasets.get(m.name);
      if (!ds) throw new Error(`no data set named ${m.name}`);
      const result = await replay(ds.requests, {
        ...m.options,
        onProgress: (progress) => send({ id: m.id, progress }),
      });
      send({ id: m.id, ok: true, result });
    } else if (m.cmd === 'drop') {
      datasets.delete(m.name);
      send({ id: m.id, ok: true, result: null });
    }
  } catch (err) {
    send({ id: m.id, ok: false, error: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
