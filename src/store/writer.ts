import type { Worker } from 'node:worker_threads';
import { closeSqliteWorker, startSqliteWorker } from './sqlite-worker.js';

/**
 * The worker: its own connection to the file; each message is one group commit (every row in one
 * transaction, `rowsPerUpsert` rows per statement), a PRAGMA, or `close`, answered in the order received.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { path, pragmas, upsertSql, rowsPerUpsert, columns } = workerData;
const db = new Database(path);
for (const pragma of pragmas) db.pragma(pragma);
const upserts = [];
const upsert = (rows) => (upserts[rows] ??= db.prepare(upsertSql.replace('$ROWS', Array.from({ length: rows }, () => '(' + Array(columns).fill('?').join(', ') + ')').join(', '))));
const width = rowsPerUpsert * columns;
const commit = db.transaction((values) => {
  for (let at = 0; at < values.length; at += width) {
    const chunk = values.length - at >= width ? values.slice(at, at + width) : values.slice(at);
    upsert(chunk.length / columns).run(chunk);
  }
});
parentPort.on('message', (message) => {
  if (message.type === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    if (message.type === 'commit') {
      commit(message.values);
      parentPort.postMessage({ ok: true });
    } else {
      parentPort.postMessage({ ok: true, result: db.pragma(message.pragma, { simple: message.simple }) });
    }
  } catch (error) {
    parentPort.postMessage({ ok: false, error: { message: String(error && error.message), code: error && error.code } });
  }
});
`;

export interface WriterOptions {
  /** The database file (already created and migrated by the caller). */
  path: string;
  /** PRAGMAs the writer's connection runs first (synchronous, busy_timeout, cache_size, …). */
  pragmas: string[];
  /** The upsert statement with `$ROWS` where its `VALUES` list goes. */
  upsertSql: string;
  rowsPerUpsert: number;
  columns: number;
  /** The worker stopped: requests in flight were rejected, the caller goes back to its own connection. */
  onFailure: (error: unknown) => void;
}

/** An error SQLite raised on the writer's connection, with its code (`SQLITE_FULL`, `SQLITE_READONLY`, …). */
export class WriterError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'WriterError';
  }
}

type Reply = { ok: true; result?: unknown } | { ok: false; error: { message: string; code?: string } };

/**
 * Group commits on a worker thread with its own connection, so that the event loop never waits for
 * a transaction or its fsync: it keeps serving reads (from its own connection, and from the writes
 * in flight it still holds) while the disk works. Requests are answered in order.
 *
 * @example
 * const writer = new Writer({ path, pragmas: ['synchronous = FULL'], upsertSql, rowsPerUpsert: 64, columns: 9, onFailure });
 * await writer.commit(['id', …]); // durable
 */
export class Writer {
  private readonly worker: Worker;
  private readonly queue: Array<{ resolve: (result: unknown) => void; reject: (error: unknown) => void }> = [];
  private failed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: WriterOptions) {
    const { path, pragmas, upsertSql, rowsPerUpsert, columns } = options;
    this.worker = startSqliteWorker(WORKER_SOURCE, { path, pragmas, upsertSql, rowsPerUpsert, columns });
    this.worker.on('message', (reply: Reply) => {
      const request = this.queue.shift();
      if (!request) return;
      if (reply.ok) request.resolve(reply.result);
      else request.reject(new WriterError(reply.error.message, reply.error.code));
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`the store's writer thread exited with ${code}`));
    });
  }

  /** Upsert these rows (their column values, row after row) in one transaction; resolves once durable. */
  commit(values: unknown[]): Promise<void> {
    return this.request({ type: 'commit', values }) as Promise<void>;
  }

  /** Run a PRAGMA on the writer's connection (`simple`: the first column of the first row). */
  pragma(pragma: string, simple = false): Promise<unknown> {
    return this.request({ type: 'pragma', pragma, simple });
  }

  /** Close the worker's connection (after every request sent before) and stop it. */
  close(): Promise<void> {
    this.closing ??= this.failed ? Promise.resolve() : closeSqliteWorker(this.worker, { type: 'close' });
    return this.closing;
  }

  private request(message: object): Promise<unknown> {
    if (this.failed || this.closing) return Promise.reject(new Error("the store's writer thread is not running"));
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      // Referenced while a request is out: a process waiting only for a commit must not exit.
      this.worker.ref();
      this.worker.postMessage(message);
    }).finally(() => {
      if (this.queue.length === 0 && !this.closing) this.worker.unref();
    });
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    for (const request of this.queue.splice(0)) request.reject(error);
    void this.worker.terminate();
    this.options.onFailure(error);
  }
}
