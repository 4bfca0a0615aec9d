/**
 * Where a worker thread's module is, for `new Worker(...)`: the compiled `.js` beside the caller when trainwatch
 * runs from `dist/` (production, `npm start`), or the `.ts` source loaded through tsx when it runs from
 * `src/` (tests under vitest, `tsx` scripts). One rule, so that every worker pool starts the same way.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts the worker module `name` (no extension) beside the module at `callerUrl` (its `import.meta.url`).
 * From source, the worker first registers tsx's loader in its own thread (loader flags on a worker's
 * `execArgv` do not reach it on Node 20), then imports the module.
 */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const moduleUrl = new URL(`./${name}.ts`, callerUrl).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); }).catch((err) => { process.nextTick(() => { throw err; }); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
