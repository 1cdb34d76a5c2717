import type { Finality, TrackerEvent } from '../../machines/tracker.machine.js';
import type { Logger } from '../runtime/logger.js';
import type { CanonicalChain } from './canonical.js';
import type { StuckSchedule } from './stuck.js';
import type { TrackedSet } from './tracked.js';
import type { Transport } from './transport.js';

/** The part of the tracker system the watcher drives (the system itself fits). */
export interface TrackerSink {
  deliver(id: string, event: TrackerEvent): boolean;
  /**
   * A new head of the watcher's chain: the sink derives confirming trackers' confirmations from it
   * and wakes only the ones it brings to their required confirmations (no event per tracker per block).
   */
  newHead(blockNumber: number, chainId: number): void;
  /** The chain's safe or finalized block is now `blockNumber` (still on the chain the watcher follows). */
  newFinality?(chainId: number, tag: Finality, blockNumber: number): void;
  /** Whether trackers wait for the chain's `tag` block: then the watcher reads it on every head. */
  awaitsFinality?(chainId: number, tag: Finality): boolean;
}

export interface ChainWatcherOptions {
  /** The node's JSON-RPC URL (http(s) or ws(s)); or pass `transport`. */
  url?: string;
  transport?: Transport;
  /** A second node of the same chain, used while the first fails (http(s) or ws(s)). */
  fallbackUrl?: string | undefined;
  /**
   * The chain's EIP-155 id: each node is checked against it (`eth_chainId`) before its first
   * request, and one on another chain is not used. Not given: the first node's id.
   */
  chainId?: number | undefined;
  /** The chain's name, for logs. */
  name?: string | undefined;
  system: TrackerSink;
  /** Head polling interval for http(s) URLs (default 1000). */
  pollIntervalMs?: number;
  /** A pending tx the node does not know for this long is dropped (default 600,000). */
  droppedAfterMs?: number;
  /**
   * A pending tx the node holds and no block includes is stuck after this many new blocks (default
   * 10); stuck trackers are judged again every this many blocks.
   */
  stuckAfterBlocks?: number;
  /** How often each pending tracker is looked up for the dropped check (default droppedAfterMs / 10, 1 s–60 s). */
  dropCheckIntervalMs?: number;
  /** Blocks of history kept for finding fork points (default 2048 ≥ the largest requiredConfirmations). */
  historyDepth?: number;
  /** Hashes per lookup batch (default 100, i.e. up to 300 calls). */
  lookupBatchSize?: number;
  /**
   * New trackers gather this long (or until a batch is full) before their first lookup, so that
   * a burst of starts shares round trips (default 20 ms).
   */
  lookupGatherMs?: number;
  /**
   * The safe and finalized blocks are read on every head while trackers wait for them, and
   * otherwise every this many heads (default 32), for `health()`.
   */
  finalityRefreshHeads?: number;
  /** Retry backoff: first delay and cap (default 250 ms, 30 s). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Per request (default 10,000 ms). */
  timeoutMs?: number;
  logger?: Logger;
  now?: () => number;
}

export interface ChainWatcherHealth {
  status: 'starting' | 'ok' | 'degraded' | 'stopped';
  /** The node answering now (origin only). */
  url: string;
  /** The chain's id (null until a node told it, when it was not configured). */
  chainId: number | null;
  /** Requests go to the fallback node (the primary failed). */
  usingFallback: boolean;
  headNumber: number | null;
  headHash: string | null;
  /** The chain's safe and finalized block numbers, as last read (null: not yet, or the node has none). */
  safe: number | null;
  finalized: number | null;
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
  /** Reorgs the node reported below the finalized block it had given (impossible by protocol). */
  reorgsBelowFinalized: number;
  /** Whether the node offers eth_getBlockReceipts. */
  blockReceipts: boolean;
}

/** Mutable state shared by the watcher and its replay helpers. */
export interface WatcherState {
  transport: Transport;
  sink: TrackerSink;
  /** The chain's id, known once a node has been checked (before any block is replayed). */
  chainId: number | null;
  /** The newest safe and finalized block numbers the node gave (still canonical when read). */
  final: Record<Finality, bigint | null>;
  logger: Logger;
  now: () => number;
  tracked: TrackedSet;
  chain: CanonicalChain;
  support: { blockReceipts: boolean };
  droppedAfterMs: number;
  /** When each pending tracker is to be judged stuck or not. */
  stuck: StuckSchedule;
  /** The base fee of the newest head replayed (null: none yet, or a chain without one). */
  baseFee: bigint | null;
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
  metrics: {
    blocksProcessed: number;
    reorgs: number;
    deepestReorg: number;
    reorgsAfterConfirmation: number;
    reorgsBelowFinalized: number;
  };
}
