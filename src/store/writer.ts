import type { Worker } from 'node:worker_threads';
import { closeSqliteWorker, startSqliteWorker } from './sqlite-worker.js';

/**
 * The worker: its own connection to the file. A group commit of up to `ROWS_PER_MESSAGE` rows and
 * history rows is one `commit` message carrying them all (history, rows, statements), answered. A
 * larger one arrives as `history` messages (the change log's rows, in order, `rowsPerUpsert` per
 * statement inside one open transaction), then `rows` messages (a slice of the batch each, upserted
 * the same way in the same transaction), then `statements` (other writes of the same transaction:
 * the webhook tables'), then `commit`. A PRAGMA, a `prune` (its own transaction) or `close` is one
 * message. Answers go out in the order the requests came. After a failed `rows`, the transaction is
 * rolled back and the rest of that commit is skipped; its `commit` answers with the error.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { path, pragmas, upsertSql, rowsPerUpsert, columns, historySql, historyRow, historyColumns, pruneSql } = workerData;
const db = new Database(path);
for (const pragma of pragmas) db.pragma(pragma);
const statements = (sql, row) => {
  const made = [];
  return (rows) => (made[rows] ??= db.prepare(sql.replace('$ROWS', Array.from({ length: rows }, () => row).join(', '))));
};
const tables = {
  rows: { statement: statements(upsertSql, '(' + Array(columns).fill('?').join(', ') + ')'), columns },
  history: { statement: statements(historySql, historyRow), columns: historyColumns },
};
const prune = db.prepare(pruneSql);
const pruneAll = db.transaction((seqs) => {
  let dropped = 0;
  for (const seq of seqs) dropped += prune.run(seq, 0).changes;
  return dropped;
});
const prepared = new Map();
const statement = (sql) => {
  let made = prepared.get(sql);
  if (!made) prepared.set(sql, (made = db.prepare(sql)));
  return made;
};
let failure = null;
const fail = (error) => {
  failure = { message: String(error && error.message), code: error && error.code };
  if (db.inTransaction) db.exec('ROLLBACK');
};
const insert = (table, values) => {
  if (!db.inTransaction) db.exec('BEGIN');
  const width = rowsPerUpsert * table.columns;
  for (let at = 0; at < values.length; at += width) {
    const chunk = values.length - at >= width ? values.slice(at, at + width) : values.slice(at);
    table.statement(chunk.length / table.columns).run(chunk);
  }
};
const run = (list) => {
  if (!db.inTransaction) db.exec('BEGIN');
  for (const [sql, params] of list) statement(sql).run(params);
};
parentPort.on('message', (message) => {
  if (message.type === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  const table = tables[message.type];
  if (table) {
    if (failure) return;
    try {
      insert(table, message.values);
    } catch (error) {
      fail(error);
    }
    return;
  }
  if (message.type === 'statements') {
    if (failure) return;
    try {
      run(message.statements);
    } catch (error) {
      fail(error);
    }
    return;
  }
  if (message.type === 'commit') {
    if (!failure) {
      try {
        // A small commit comes whole in this one message; a large one's slices came before it.
        if (message.history) insert(tables.history, message.history);
        if (message.rows) insert(tables.rows, message.rows);
        if (message.statements) run(message.statements);
        if (db.inTransaction) db.exec('COMMIT');
      } catch (error) {
        fail(error);
      }
    }
    parentPort.postMessage(failure ? { ok: false, error: failure } : { ok: true });
    failure = null;
    return;
  }
  try {
    const result = message.type === 'prune' ? pruneAll(message.seqs) : db.pragma(message.pragma, { simple: message.simple });
    parentPort.postMessage({ ok: true, result });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: { message: String(error && error.message), code: error && error.code } });
  }
});
`;

/**
 * Rows per `rows` message: a large batch (a head that moves 100,000 trackers) goes over in slices, so
 * that neither thread holds a copy of all of it at once: one whole message leaves the process
 * much larger after the work is done (docs/performance.md).
 */
const ROWS_PER_MESSAGE = 1024;

/**
 * Rows' values, flat, a slice of up to `ROWS_PER_MESSAGE` rows at a time: `next()` gives the next
 * slice (empty when none is left), `done` whether every row has been taken.
 */
class Slices {
  private readonly rows: Iterator<readonly unknown[]>;
  private ahead: IteratorResult<readonly unknown[]>;

  constructor(
    rows: Iterable<readonly unknown[]>,
    private readonly columns: number,
  ) {
    this.rows = rows[Symbol.iterator]();
    this.ahead = this.rows.next();
  }

  get done(): boolean {
    return this.ahead.done === true;
  }

  next(): unknown[] {
    const values: unknown[] = [];
    while (!this.ahead.done && values.length < ROWS_PER_MESSAGE * this.columns) {
      for (const value of this.ahead.value) values.push(value);
      this.ahead = this.rows.next();
    }
    return values;
  }
}

export interface WriterOptions {
  /** The database file (already created and migrated by the caller). */
  path: string;
  /** PRAGMAs the writer's connection runs first (synchronous, busy_timeout, cache_size, …). */
  pragmas: string[];
  /** The upsert statement with `$ROWS` where its `VALUES` list goes. */
  upsertSql: string;
  rowsPerUpsert: number;
  columns: number;
  /** The change log's insert, with `$ROWS` where its `VALUES` list goes, and one row of that list. */
  historySql: string;
  historyRow: string;
  /** Bound values per history row. */
  historyColumns: number;
  /** Deletes one tracker's chain of history rows from a seq back (bound: seq, 0). */
  pruneSql: string;
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

/** A write to run inside a group commit, after its rows: SQL and its bound parameters. */
export type Statement = readonly [sql: string, params: readonly unknown[]];

type Reply = { ok: true; result?: unknown } | { ok: false; error: { message: string; code?: string } };

/**
 * Group commits on a worker thread with its own connection, so that the event loop never waits for
 * a transaction or its fsync: it keeps serving reads (from its own connection, and from the writes
 * in flight it still holds) while the disk works. Requests are answered in order.
 *
 * @example
 * const writer = new Writer({ path, pragmas: ['synchronous = FULL'], upsertSql, rowsPerUpsert: 64, columns: 9, onFailure });
 * await writer.commit([['id', …], …]); // durable
 */
export class Writer {
  private readonly worker: Worker;
  private readonly queue: Array<{ resolve: (result: unknown) => void; reject: (error: unknown) => void }> = [];
  private failed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: WriterOptions) {
    const { path, pragmas, upsertSql, rowsPerUpsert, columns, historySql, historyRow, historyColumns, pruneSql } =
      options;
    this.worker = startSqliteWorker(WORKER_SOURCE, {
      path,
      pragmas,
      upsertSql,
      rowsPerUpsert,
      columns,
      historySql,
      historyRow,
      historyColumns,
      pruneSql,
    });
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

  /**
   * Append these history rows in order, upsert these rows (each its column values), then run these
   * statements, in one transaction; resolves once durable.
   */
  commit(
    rows: Iterable<readonly unknown[]>,
    history: Iterable<readonly unknown[]> = [],
    statements: readonly Statement[] = [],
  ): Promise<void> {
    if (this.failed || this.closing) return Promise.reject(new Error("the store's writer thread is not running"));
    // The history first: a change chains to its tracker row's history_seq before the upsert moves it.
    const historySlices = new Slices(history, this.options.historyColumns);
    const rowSlices = new Slices(rows, this.options.columns);
    const firstHistory = historySlices.next();
    const firstRows = rowSlices.next();
    if (historySlices.done && rowSlices.done) {
      // The usual commit, a few requests' rows: one message (each costs more than a row to clone).
      const message = { type: 'commit', history: firstHistory, rows: firstRows };
      return this.request(statements.length > 0 ? { ...message, statements } : message) as Promise<void>;
    }
    // A large batch goes over in slices, each sent once made.
    if (firstHistory.length > 0) this.worker.postMessage({ type: 'history', values: firstHistory });
    while (!historySlices.done) this.worker.postMessage({ type: 'history', values: historySlices.next() });
    if (firstRows.length > 0) this.worker.postMessage({ type: 'rows', values: firstRows });
    while (!rowSlices.done) this.worker.postMessage({ type: 'rows', values: rowSlices.next() });
    if (statements.length > 0) this.worker.postMessage({ type: 'statements', statements });
    return this.request({ type: 'commit' }) as Promise<void>;
  }

  /** Delete the chain of history rows from each seq back, in one transaction; resolves to how many. */
  prune(seqs: readonly number[]): Promise<number> {
    return this.request({ type: 'prune', seqs }) as Promise<number>;
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
