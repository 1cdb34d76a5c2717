import type { TrackerEvent } from '../../machines/tracker.machine.js';
import type { Logger } from '../runtime/logger.js';
import type { CanonicalChain } from './canonical.js';
import type { TrackedSet } from './tracked.js';
import type { Transport } from './transport.js';

/** The part of the tracker system the watcher drives. */
export interface TrackerSink {
  deliver(id: string, event: TrackerEvent): boolean;
  /**
   * A new head: the sink derives confirming trackers' confirmations from it and wakes only the
   * ones it brings to their required confirmations (no event per tracker per block).
   */
  newHead(blockNumber: number): void;
}

export interface ChainWatcherOptions {
  /** The node's JSON-RPC URL (http(s) or ws(s)); or pass `transport`. */
  url?: string;
  transport?: Transport;
  system: TrackerSink;
  /** Head polling interval for http(s) URLs (default 1000). */
  pollIntervalMs?: number;
  /** A pending tx the node does not know for this long is dropped (default 600,000). */
  droppedAfterMs?: number;
  /** How often each pending tracker is looked up for the dropped check (default droppedAfterMs / 10, 1 s–60 s). */
  dropCheckIntervalMs?: number;
  /** Blocks of history kept for finding fork points (default 2048 ≥ the largest requiredConfirmations). */
  historyDepth?: number;
  /** Hashes per lookup batch (default 100, i.e. up to 300 calls). */
  lookupBatchSize?: number;
  /** Retry backoff: first delay and cap (default 250 ms, 30 s). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Per request (default 10,000 ms). */
  timeoutMs?: number;
  logger?: Logger;
  now?: () => number;
}

export interface ChainWatcherHealth {
  status: 'starting' | 'ok' | 'degraded' | 'stopped';
  url: string;
  headNumber: number | null;
  headHash: string | null;
  /** Epoch ms of the last new head. */
  lastHeadAt: number | null;
  consecutiveFailures: number;
  lastError: string | null;
  tracked: number;
  pendingLookups: number;
  blocksProcessed: number;
  reorgs: number;
  deepestReorg: number;
  /** Blocks that left the chain after trackers were confirmed on them (reorg deeper than requiredConfirmations). */
  reorgsAfterConfirmation: number;
  /** Whether the node offers eth_getBlockReceipts. */
  blockReceipts: boolean;
}

/** Mutable state shared by the watcher and its replay helpers. */
export interface WatcherState {
  transport: Transport;
  sink: TrackerSink;
  logger: Logger;
  now: () => number;
  tracked: TrackedSet;
  chain: CanonicalChain;
  support: { blockReceipts: boolean };
  droppedAfterMs: number;
  /** Tracker ids waiting for a lookup. */
  lookups: Set<string>;
  /** A tracker whose own lookup failed this many times in a row is crashed (its supervisor restarts it). */
  maxLookupFailures: number;
  /** Epoch ms when the node last came back after failures: an outage does not count as time unknown. */
  recoveredAt: number;
  /** Epoch ms of the last new head replayed. */
  lastHeadAt: number | null;
  /** Blocks on which trackers were confirmed: their ids and block number. */
  confirmedOn: Map<string, { ids: string[]; number: bigint }>;
  metrics: { blocksProcessed: number; reorgs: number; deepestReorg: number; reorgsAfterConfirmation: number };
}
