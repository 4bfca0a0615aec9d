/**
 * Starting a worker thread on a module of this program, the same call whether the program runs compiled or
 * as TypeScript source. Production runs the compiled JavaScript in `dist/` (tsc), where the module is the
 * `.js` file next to its caller. Tests and `tsx` runs execute the sources, where it is the `.ts` file: the
 * worker then starts on a two-line bootstrap that registers tsx's loader in the worker and imports the module.
 * (`execArgv: ['--import', 'tsx']` does not work for a worker's entry on Node 20: the loader registers
 * after the entry has been resolved, and the worker fails with "Unknown file extension .ts".)
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export interface WorkerEntry {
  /** The module the worker runs. */
  readonly url: URL;
  /** Whether it is TypeScript source (started through tsx's loader) rather than compiled JavaScript. */
  readonly source: boolean;
}

/**
 * The worker module `moduleName` (without extension, e.g. `'./query-worker'`) next to the caller whose
 * `import.meta.url` is `callerUrl`: `.js` when the caller was compiled, `.ts` when it runs as source.
 */
export function workerEntry(callerUrl: string, moduleName: string): WorkerEntry {
  const source = /\.[cm]?ts$/.test(new URL(callerUrl).pathname);
  return { url: new URL(`${moduleName}${source ? '.ts' : '.js'}`, callerUrl), source };
}

/** Starts a worker on `entry` (see {@link workerEntry}) with `options` (workerData, transferList, limits). */
export function startWorker(entry: WorkerEntry, options: WorkerOptions = {}): Worker {
  if (!entry.source) return new Worker(entry.url, options);
  // tsx's ESM API, resolved from here (tsx is a devDependency: present wherever sources run).
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  const api = pathToFileURL(cjs.replace(/\.cjs$/, '.mjs')).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.url.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
