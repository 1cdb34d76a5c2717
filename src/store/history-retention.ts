import type { SnapshotStore } from './types.js';

export interface HistoryRetentionOptions {
  /** Trackers that ended longer ago than this lose their history. */
  retentionMs: number;
  /** Time between two runs (default 1 s). */
  intervalMs?: number;
  /** History rows one run looks at, at most (default 5,000): the bound on each run's work. */
  maxRows?: number;
  now?: () => number;
  /** A run that failed (it is tried again at the next). */
  onError?: (error: unknown) => void;
}

/**
 * Prune, in the background, the history of trackers that ended more than `retentionMs` ago: one
 * bounded `pruneHistory` per interval, never two at once. Live trackers keep all of theirs.
 * Returns the function that stops it (and waits for a run in progress).
 *
 * @example
 * const stop = startHistoryRetention(store, { retentionMs: 30 * 86_400_000 });
 * await stop();
 */
export function startHistoryRetention(store: SnapshotStore, options: HistoryRetentionOptions): () => Promise<void> {
  const { retentionMs, intervalMs = 1000, maxRows = 5000, now = Date.now, onError } = options;
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = store
      .pruneHistory(now() - retentionMs, maxRows)
      .then(
        () => undefined,
        (error: unknown) => onError?.(error),
      )
      .finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
