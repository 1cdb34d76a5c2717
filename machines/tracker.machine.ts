import { assign, setup } from 'xstate';

/**
 * Bumped whenever the shape of a persisted tracker snapshot changes (a state renamed,
 * a context field added or removed). Stores keep it beside every snapshot.
 */
export const TRACKER_MACHINE_VERSION = 3;

/** Ids a caller may choose; a tx hash (the default id) fits it too. */
export const TRACKER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
/** A 0x-prefixed 32-byte hash, any case. */
export const TX_HASH_PATTERN = /^0x[0-9a-fA-F]{64}$/;

export const MIN_CONFIRMATIONS = 1;
export const MAX_CONFIRMATIONS = 1000;

/**
 * Confirmation by the chain's own finality instead of a count: the JSON-RPC block tags. A tracker
 * with one is confirmed when the chain's `safe` (or `finalized`) block reaches its block.
 */
export type Finality = 'safe' | 'finalized';
export const FINALITY_TAGS: readonly Finality[] = ['safe', 'finalized'];

export type TrackerStateName = 'pending' | 'confirming' | 'confirmed' | 'failed' | 'stopped';
export const TRACKER_STATE_NAMES: readonly TrackerStateName[] = [
  'pending',
  'confirming',
  'confirmed',
  'failed',
  'stopped',
];
/** The terminal states: no transition leaves them (tagged `terminal` in the machine). */
export const FINAL_STATE_NAMES: readonly TrackerStateName[] = ['confirmed', 'failed', 'stopped'];

/** How a tx with the same sender and nonce took the tracked one's place (as ethers v6 classifies it). */
export type ReplacementReason = 'repriced' | 'cancelled' | 'replaced';

export type FailureReason = 'reverted' | 'cancelled' | 'replaced' | 'dropped' | 'crash_loop' | 'incompatible_snapshot';

/** Reasons the runtime (not the chain) can end a tracker with. */
export type SupervisionFailureReason = Extract<FailureReason, 'crash_loop' | 'incompatible_snapshot'>;

export interface TrackerFailure {
  reason: FailureReason;
  detail: string;
}

/**
 * Why a pending transaction the node holds is not being included: its max fee is below the latest
 * base fee, an earlier nonce of its sender is missing, or neither (the block builders pass it over).
 */
export type StuckReason = 'fee_below_base_fee' | 'nonce_gap' | 'not_included';
export const STUCK_REASONS: readonly StuckReason[] = ['fee_below_base_fee', 'nonce_gap', 'not_included'];

export interface TrackerStuck {
  reason: StuckReason;
  /** The block number (of the tracker's chain) at which it was found stuck; kept while the reason changes. */
  since: number;
  detail: string;
}

export interface TrackerContext {
  id: string;
  /** The hash the tracker was started for; lower-case. */
  txHash: string;
  /** The EIP-155 id of the chain the transaction is on. */
  chainId: number;
  /** Confirmations that confirm it; 0 when `finality` decides instead. */
  requiredConfirmations: number;
  /** Confirmed by the chain's safe or finalized block rather than by a count; null: by the count. */
  finality: Finality | null;
  blockNumber: number | null;
  blockHash: string | null;
  confirmations: number;
  reorgs: number;
  restarts: number;
  /** The hash that took this tx's place (sender + nonce), when one did. */
  replacedBy: string | null;
  failure: TrackerFailure | null;
  /** Set while the tracker is in `pending.stuck`, null in every other state. */
  stuck: TrackerStuck | null;
  /** Epoch milliseconds. */
  createdAt: number;
  updatedAt: number;
}

export interface TrackerInput {
  id: string;
  txHash: string;
  chainId: number;
  requiredConfirmations: number;
  /** Default null: confirmed by `requiredConfirmations`. */
  finality?: Finality | null;
  createdAt: number;
}

/**
 * Every event may carry `at` (epoch ms, stamped by the runtime when it routes the event) so that
 * the machine can keep `updatedAt` without reading a clock itself.
 */
interface Stamped {
  at?: number;
}

export type TrackerEvent = Stamped &
  (
    | { type: 'TX_SEEN' }
    | {
        type: 'TX_MINED';
        blockNumber: number;
        blockHash: string;
        status: 'success' | 'reverted';
        /** The chain head when the receipt was read (≥ blockNumber). */
        head: number;
      }
    | { type: 'NEW_HEAD'; blockNumber: number }
    /**
     * The chain's safe or finalized block (the one the tracker waits for) is now `blockNumber`;
     * `head` is the chain head at that moment.
     */
    | { type: 'FINALITY'; blockNumber: number; head: number }
    | { type: 'BLOCK_REORGED'; blockHash: string }
    | { type: 'TX_REPLACED'; reason: ReplacementReason; replacementHash: string }
    | { type: 'TX_DROPPED'; detail?: string }
    /**
     * The node holds the tx but no block included it for the watcher's threshold of blocks (or, when
     * stuck already, the reason changed); `blockNumber` is the head it was judged at.
     */
    | { type: 'TX_STUCK'; reason: StuckReason; detail: string; blockNumber: number }
    /** What kept it out (its fee, a nonce gap) is gone: it waits again, as any pending tx. */
    | { type: 'TX_UNSTUCK' }
    | { type: 'RECHECK' }
    | { type: 'REBROADCAST' }
    | { type: 'CRASH' }
    | { type: 'STOP' }
    | { type: 'GIVE_UP'; reason: SupervisionFailureReason; detail: string }
  );

export type TrackerEventType = TrackerEvent['type'];

/** The events a tracker defines, for validating what clients send. */
export const TRACKER_EVENT_TYPES: readonly TrackerEventType[] = [
  'TX_SEEN',
  'TX_MINED',
  'NEW_HEAD',
  'FINALITY',
  'BLOCK_REORGED',
  'TX_REPLACED',
  'TX_DROPPED',
  'TX_STUCK',
  'TX_UNSTUCK',
  'RECHECK',
  'REBROADCAST',
  'CRASH',
  'STOP',
  'GIVE_UP',
];

/** Thrown by the default `crash` action: fault injection for showing the supervision path. */
export class TrackerCrashError extends Error {
  override name = 'TrackerCrashError';
}

// Accepted in every state that is not final (pending and confirming). Kept off the root so that
// `snapshot.can()` answers false in a final state.
const whileLive = {
  RECHECK: { actions: 'requestRecheck' },
  CRASH: { actions: 'crash' },
  STOP: { target: '#tracker.stopped', actions: 'touch' },
  GIVE_UP: { target: '#tracker.failed', actions: ['recordGiveUp', 'touch'] },
} as const;

const failed = (reason: FailureReason, detail: string): TrackerFailure => ({ reason, detail });

/**
 * One transaction, followed from the mempool to its final state. Chain facts arrive as events; the
 * only effects (`requestRecheck`, `crash`) are named actions the runtime provides.
 *
 * @example
 * const actor = createActor(trackerMachine, {
 *   input: { id: 'txn_1', txHash: '0x…', chainId: 1, requiredConfirmations: 12, createdAt: Date.now() },
 * }).start();
 * actor.send({ type: 'TX_MINED', blockNumber: 100, blockHash: '0x…', status: 'success', head: 100 });
 */
export const trackerMachine = setup({
  types: {
    context: {} as TrackerContext,
    events: {} as TrackerEvent,
    input: {} as TrackerInput,
  },
  actions: {
    touch: assign({
      updatedAt: ({ context, event }) => event.at ?? context.updatedAt,
    }),
    recordMined: assign(({ event }) => {
      if (event.type !== 'TX_MINED') return {};
      return {
        blockNumber: event.blockNumber,
        blockHash: event.blockHash,
        confirmations: Math.max(1, event.head - event.blockNumber + 1),
      };
    }),
    recordHead: assign({
      confirmations: ({ context, event }) =>
        event.type === 'NEW_HEAD' && context.blockNumber !== null
          ? event.blockNumber - context.blockNumber + 1
          : context.confirmations,
    }),
    recordFinality: assign({
      confirmations: ({ context, event }) =>
        event.type === 'FINALITY' && context.blockNumber !== null
          ? Math.max(context.confirmations, event.head - context.blockNumber + 1)
          : context.confirmations,
    }),
    recordReorg: assign({
      blockNumber: null,
      blockHash: null,
      confirmations: 0,
      reorgs: ({ context }) => context.reorgs + 1,
    }),
    recordReplacement: assign({
      replacedBy: ({ context, event }) => (event.type === 'TX_REPLACED' ? event.replacementHash : context.replacedBy),
    }),
    recordReverted: assign({
      failure: ({ event }) =>
        failed('reverted', event.type === 'TX_MINED' ? `reverted in block ${event.blockNumber}` : 'reverted'),
    }),
    recordReplacedFailure: assign({
      failure: ({ event }) =>
        event.type === 'TX_REPLACED'
          ? failed(
              event.reason === 'cancelled' ? 'cancelled' : 'replaced',
              `${event.reason} by ${event.replacementHash}`,
            )
          : null,
    }),
    recordNeverSeenDrop: assign({
      failure: ({ event }) =>
        failed('dropped', (event.type === 'TX_DROPPED' && event.detail) || 'the node never knew this transaction'),
    }),
    recordDrop: assign({
      failure: ({ event }) =>
        failed(
          'dropped',
          (event.type === 'TX_DROPPED' && event.detail) || 'the transaction left the mempool without being mined',
        ),
    }),
    recordStuck: assign({
      stuck: ({ context, event }) =>
        event.type === 'TX_STUCK'
          ? { reason: event.reason, since: context.stuck?.since ?? event.blockNumber, detail: event.detail }
          : context.stuck,
    }),
    // The exit of `pending.stuck`: `stuck` is set exactly while the tracker is there.
    clearStuck: assign({ stuck: null }),
    recordGiveUp: assign({
      failure: ({ event }) => (event.type === 'GIVE_UP' ? failed(event.reason, event.detail) : null),
    }),
    // Provided by the runtime: ask the chain watcher to look this tx up now.
    requestRecheck: () => {},
    // Provided by the runtime: send the tx's signed form (kept by the watcher) to the node again,
    // e.g. after a reorg dropped it.
    requestRebroadcast: () => {},
    // Fault injection: the runtime only lets CRASH through when it is enabled.
    crash: () => {
      throw new TrackerCrashError('tracker crashed on purpose (CRASH event)');
    },
  },
  guards: {
    isReverted: ({ event }) => event.type === 'TX_MINED' && event.status === 'reverted',
    isReorgOfOwnBlock: ({ context, event }) => event.type === 'BLOCK_REORGED' && event.blockHash === context.blockHash,
    // A head that changes its count (either way: a shallower chain counts fewer); the same count again
    // (a head it was mined at, a repeated head) is no change, so no write and no history row.
    isHeadChangingOwnCount: ({ context, event }) =>
      event.type === 'NEW_HEAD' &&
      context.blockNumber !== null &&
      event.blockNumber >= context.blockNumber &&
      event.blockNumber - context.blockNumber + 1 !== context.confirmations,
    // Only trackers confirmed by a count: with finality, the FINALITY event decides.
    hasEnoughConfirmations: ({ context }) =>
      context.finality === null && context.confirmations >= context.requiredConfirmations,
    isFinalityOnOrAfterOwnBlock: ({ context, event }) =>
      event.type === 'FINALITY' &&
      context.finality !== null &&
      context.blockNumber !== null &&
      event.blockNumber >= context.blockNumber,
    isRepriced: ({ event }) => event.type === 'TX_REPLACED' && event.reason === 'repriced',
    // A repeated verdict is no change: nothing to persist or announce.
    isNewStuckReason: ({ context, event }) => event.type === 'TX_STUCK' && event.reason !== context.stuck?.reason,
  },
}).createMachine({
  id: 'tracker',
  context: ({ input }) => ({
    id: input.id,
    txHash: input.txHash,
    chainId: input.chainId,
    requiredConfirmations: input.requiredConfirmations,
    finality: input.finality ?? null,
    blockNumber: null,
    blockHash: null,
    confirmations: 0,
    reorgs: 0,
    restarts: 0,
    replacedBy: null,
    failure: null,
    stuck: null,
    createdAt: input.createdAt,
    updatedAt: input.createdAt,
  }),
  initial: 'pending',
  states: {
    pending: {
      initial: 'unseen',
      states: {
        // Not yet known to the node (just submitted elsewhere, or a hash that never existed).
        unseen: {
          on: {
            TX_SEEN: { target: 'seen', actions: 'touch' },
            TX_DROPPED: { target: '#tracker.failed', actions: ['recordNeverSeenDrop', 'touch'] },
          },
        },
        // In the node's mempool (or back there after a reorg).
        seen: {
          on: {
            TX_DROPPED: { target: '#tracker.failed', actions: ['recordDrop', 'touch'] },
            TX_STUCK: { target: 'stuck', actions: ['recordStuck', 'touch'] },
          },
        },
        // In the node's mempool, and left out of the blocks for too long; still pending. Mined,
        // replaced, dropped, stopped or given up, it leaves like `seen` (its exit clears `stuck`).
        stuck: {
          exit: 'clearStuck',
          on: {
            TX_DROPPED: { target: '#tracker.failed', actions: ['recordDrop', 'touch'] },
            TX_STUCK: { guard: 'isNewStuckReason', actions: ['recordStuck', 'touch'] },
            TX_UNSTUCK: { target: 'seen', actions: 'touch' },
          },
        },
      },
      on: {
        TX_MINED: [
          { guard: 'isReverted', target: 'failed', actions: ['recordMined', 'recordReverted', 'touch'] },
          { target: 'confirming', actions: ['recordMined', 'touch'] },
        ],
        // Only while pending: a mined tx has nothing to re-send.
        REBROADCAST: { actions: 'requestRebroadcast' },
        TX_REPLACED: [
          // Same call at a higher fee: follow the new hash; the id stays.
          { guard: 'isRepriced', target: '.seen', actions: ['recordReplacement', 'touch'] },
          { target: 'failed', actions: ['recordReplacement', 'recordReplacedFailure', 'touch'] },
        ],
        ...whileLive,
      },
    },
    confirming: {
      always: { guard: 'hasEnoughConfirmations', target: 'confirmed' },
      on: {
        NEW_HEAD: { guard: 'isHeadChangingOwnCount', actions: ['recordHead', 'touch'] },
        // Its block is at or below the chain's safe/finalized block, and still its block: a reorg
        // before that reaches it as BLOCK_REORGED, as for a count.
        FINALITY: { guard: 'isFinalityOnOrAfterOwnBlock', target: 'confirmed', actions: ['recordFinality', 'touch'] },
        BLOCK_REORGED: {
          guard: 'isReorgOfOwnBlock',
          target: 'pending.seen',
          actions: ['recordReorg', 'touch'],
        },
        ...whileLive,
      },
    },
    // Terminal: no transition leaves them. Deliberately not XState `type: 'final'`: a final child
    // makes XState send its parent `xstate.done.actor.<id>`, a new event type per tracker, and
    // XState caches transitions per event type on the parent's state nodes for good, so memory
    // grew with every finished tracker (see machines/xstate-adaptations.ts). The runtime sees the terminal state and tells the shard
    // with one fixed event type (TRACKER_ENDED).
    confirmed: { tags: 'terminal' },
    failed: { tags: 'terminal' },
    stopped: { tags: 'terminal' },
  },
});

export type TrackerMachine = typeof trackerMachine;
