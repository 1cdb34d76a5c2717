import type { FlushObserver } from './types.js';

/**
 * The observers of one store's `flush()` calls: a store times its own flushes, so that nothing has
 * to wrap it (a wrapper would have to forward every optional capability the store has).
 *
 * @example
 * private readonly flushes = new FlushTiming();
 * flush(): Promise<void> { return this.flushes.time(() => this.commitAll()); }
 * observeFlush(observer: FlushObserver): () => void { return this.flushes.observe(observer); }
 */
export class FlushTiming {
  private readonly observers = new Set<FlushObserver>();

  observe(observer: FlushObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** `flush()` as it is when nobody observes; else the same outcome, told to the observers first. */
  time(flush: () => Promise<void>): Promise<void> {
    if (this.observers.size === 0) return flush();
    const t0 = performance.now();
    return flush().then(
      () => this.tell(t0, true),
      (error: unknown) => {
        this.tell(t0, false);
        throw error;
      },
    );
  }

  private tell(t0: number, ok: boolean): void {
    const seconds = (performance.now() - t0) / 1000;
    // An observer that throws must not turn a durable flush into a failed one.
    for (const observer of this.observers) {
      try {
        observer(seconds, ok);
      } catch {
        // ignored: metrics only
      }
    }
  }
}
