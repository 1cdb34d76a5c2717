import { statSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { closeSqliteWorker, startSqliteWorker } from './sqlite-worker.js';

/**
 * The worker: its own connection to the file, one `PRAGMA wal_checkpoint(PASSIVE)` per request.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, result });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: String(error) });
  }
});
`;

export interface CheckpointerOptions {
  /** The database file (its WAL is `<path>-wal`). */
  path: string;
  /** Ask the worker for a checkpoint after this many rows were committed since the last request. */
  rowsPerCheckpoint?: number;
  /**
   * A WAL file this big is checkpointed on the caller's connection, between two of its commits:
   * under sustained writes the worker's checkpoints never catch up with the writer, and SQLite only
   * starts the WAL over once every frame in it has been copied back. That checkpoint copies only
   * the frames the worker has not (less than a TRUNCATE checkpoint would; docs/durability.md);
   * the caller's `journal_size_limit` then shrinks the file at the restart.
   */
  maxWalBytes?: number;
  /** Checkpoint on the caller's connection (`PRAGMA wal_checkpoint(PASSIVE)`). */
  checkpointHere: () => void;
  /** Called when the worker cannot run: the caller goes back to checkpointing on its own connection. */
  onFailure: (error: unknown) => void;
}

/**
 * WAL checkpoints on a worker thread with its own connection, so that the event loop never pays
 * for one. With SQLite's automatic checkpoints, the commit that crosses 1,000 WAL pages copies
 * them into the database file and fsyncs it before it returns, about half of such a commit
 * (docs/durability.md). A PASSIVE checkpoint runs beside the
 * writer. The worker is started when first needed (after 1,000 committed rows).
 *
 * @example
 * db.pragma('wal_autocheckpoint = 0');
 * const checkpointer = new Checkpointer({
 *   path,
 *   checkpointHere: () => db.pragma('wal_checkpoint(PASSIVE)'),
 *   onFailure: () => db.pragma('wal_autocheckpoint = 1000'),
 * });
 * // after every commit of n rows:
 * checkpointer.afterCommit(n);
 */
export class Checkpointer {
  private worker: Worker | undefined;
  private inFlight = false;
  private failed = false;
  private done = 0;
  private foreground = 0;
  private rows = 0;
  private complete = false;
  private readonly walPath: string;
  private readonly rowsPerCheckpoint: number;
  /** The bound the WAL file is checked against. */
  readonly maxWalBytes: number;

  constructor(private readonly options: CheckpointerOptions) {
    this.walPath = `${options.path}-wal`;
    this.rowsPerCheckpoint = options.rowsPerCheckpoint ?? 1000;
    this.maxWalBytes = options.maxWalBytes ?? 64 * 1024 * 1024;
  }

  /** Not stopped: neither failed nor closed (the worker itself starts when first needed). */
  get running(): boolean {
    return !this.failed;
  }

  /** Checkpoints the worker has completed. */
  get count(): number {
    return this.done;
  }

  /** No checkpoint running, no commit since the last one, and it copied every frame back. */
  get caughtUp(): boolean {
    return !this.inFlight && this.rows === 0 && this.complete;
  }

  /** Times the WAL reached `maxWalBytes` and was checkpointed on the caller's connection. */
  get foregroundCount(): number {
    return this.foreground;
  }

  /** After a commit of `rows` rows: ask the worker for a checkpoint when enough were written. */
  afterCommit(rows: number): void {
    if (this.failed) return;
    this.rows += rows;
    if (this.inFlight || this.rows < this.rowsPerCheckpoint) return;
    this.next();
  }

  /** The worker is free: checkpoint here if the WAL reached its bound, otherwise ask the worker. */
  private next(): void {
    this.rows = 0;
    if (this.walBytes() >= this.maxWalBytes) {
      // No worker checkpoint is running: this one does not wait for it, and completes.
      this.options.checkpointHere();
      this.foreground++;
      this.complete = true;
      return;
    }
    this.inFlight = true;
    this.start().postMessage('checkpoint');
  }

  private walBytes(): number {
    try {
      return statSync(this.walPath).size;
    } catch {
      return 0;
    }
  }

  /** Stop the worker (its connection closed) before the caller closes its own. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failed = true;
    if (!worker) return;
    await closeSqliteWorker(worker, 'close');
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = startSqliteWorker(WORKER_SOURCE, { path: this.options.path });
    worker.on('message', (reply: { ok: boolean; result?: { log: number; checkpointed: number }; error?: string }) => {
      this.inFlight = false;
      if (!reply.ok) return this.fail(new Error(reply.error));
      this.done++;
      this.complete = reply.result !== undefined && reply.result.log === reply.result.checkpointed;
      // Commits made meanwhile: catch up at once, so that the WAL is all copied back soon after the
      // writes pause and SQLite starts it over with the next one.
      if (this.rows > 0 && !this.failed) this.next();
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => {
      if (this.worker === worker && code !== 0) this.fail(new Error(`checkpoint worker exited with ${code}`));
    });
    this.worker = worker;
    return worker;
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.inFlight = false;
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
    this.options.onFailure(error);
  }
}
