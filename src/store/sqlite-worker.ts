import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * A worker thread running `source` (plain CommonJS, given as source with `eval`, so that it runs the
 * same under tsx, vitest and node), with `workerData.driver` set to better-sqlite3's entry point.
 * Unreferenced: an idle worker does not keep the process alive.
 *
 * @example
 * const worker = startSqliteWorker(`const Database = require(workerData.driver); …`, { path });
 */
export function startSqliteWorker(source: string, data: Record<string, unknown>): Worker {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(source, { eval: true, workerData: { ...data, driver } });
  worker.unref();
  return worker;
}

/**
 * Ask the worker to close its connection (`message`), wait for it to exit (at most 5 s), stop it.
 *
 * @example
 * await closeSqliteWorker(worker, 'close');
 */
export async function closeSqliteWorker(worker: Worker, message: unknown): Promise<void> {
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  // Referenced again while it closes: otherwise a process with nothing else to do would exit
  // (with an unsettled promise) before the worker has closed its connection.
  worker.ref();
  worker.postMessage(message);
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
  await Promise.race([exited, timeout]);
  await worker.terminate();
}
