import type { StuckReason, TrackerEvent } from '../../machines/tracker.machine.js';
import { quantity, toBlockNumber } from './format.js';
import type { Tracked } from './tracked.js';
import { unwrap } from './transport.js';
import type { WatcherState } from './watcher-state.js';

/** Calls per JSON-RPC batch of nonce reads. */
const NONCE_BATCH = 300;

/**
 * When each pending tracker is to be judged: the head at which it has waited `afterBlocks` blocks,
 * and again every `afterBlocks` blocks while it is pending. Only trackers whose block has come
 * are looked at, so a head that brings none costs nothing.
 */
export class StuckSchedule {
  private readonly byBlock = new Map<bigint, Set<string>>();

  constructor(readonly afterBlocks: number) {}

  /** Judge tracker `id` once the head reaches `from + afterBlocks`. */
  after(id: string, from: bigint): void {
    this.at(id, from + BigInt(this.afterBlocks));
  }

  /** Judge tracker `id` once the head reaches `at`. */
  at(id: string, at: bigint): void {
    let ids = this.byBlock.get(at);
    if (!ids) this.byBlock.set(at, (ids = new Set()));
    ids.add(id);
  }

  /** The ids due at `head` or before, taken off the schedule. */
  takeDue(head: bigint): string[] {
    const due: string[] = [];
    for (const [at, ids] of this.byBlock) {
      if (at > head) continue;
      this.byBlock.delete(at);
      for (const id of ids) due.push(id);
    }
    return due;
  }
}

/**
 * The node holds the followed tx unmined at `head`: stuck counts from the first head this was seen
 * at (for this hash, in this process).
 */
export function heldByNode(state: WatcherState, entry: Tracked, head: bigint): void {
  if (entry.state !== 'pending' || entry.pendingSince !== null) return;
  entry.pendingSince = head;
  state.stuck.after(entry.id, head);
}

/** The followed tx left the mempool for a block, or another hash is followed: stuck counts anew. */
export function leftPending(entry: Tracked): void {
  entry.pendingSince = null;
  entry.stuck = null;
}

function send(state: WatcherState, entry: Tracked, event: TrackerEvent): void {
  if (!state.sink.deliver(entry.id, event)) state.tracked.delete(entry.id);
}

/**
 * At a new head: judge the pending trackers whose turn it is (see `StuckSchedule`). A tx the node
 * holds gets a reason: `nonce_gap` when its nonce is above the sender's next one on chain (one
 * `eth_getTransactionCount` per sender, batched), `fee_below_base_fee` when its max fee is below
 * the head's base fee, else `not_included`. A tracker is told only when its reason changes; one
 * stuck for its fee or a nonce gap whose cause is gone is unstuck, and counts again from here.
 */
export async function judgeStuck(state: WatcherState, head: bigint, baseFee: bigint | null): Promise<void> {
  const due: Array<Tracked & { tx: NonNullable<Tracked['tx']> }> = [];
  for (const id of state.stuck.takeDue(head)) {
    const entry = state.tracked.get(id);
    // Mined, repriced or gone since it was scheduled: it is scheduled anew when the node holds it again.
    if (!entry || entry.state !== 'pending' || entry.pendingSince === null) continue;
    // Not held by the node right now: the dropped check decides; judged again later.
    if (!entry.tx || entry.unknownSince !== null) {
      state.stuck.after(id, head);
      continue;
    }
    due.push(entry as Tracked & { tx: NonNullable<Tracked['tx']> });
  }
  if (due.length === 0) return;
  let nonces: Map<string, bigint>;
  try {
    nonces = await nextNonces(state, [...new Set(due.map((e) => e.tx.from))]);
  } catch (error) {
    // Judged at the next head instead.
    for (const entry of due) state.stuck.at(entry.id, head + 1n);
    throw error;
  }
  const blockNumber = toBlockNumber(head);
  for (const entry of due) {
    if (state.tracked.get(entry.id) !== entry || entry.state !== 'pending') continue;
    state.stuck.after(entry.id, head);
    const next = nonces.get(entry.tx.from)!;
    const { nonce, maxFeePerGas } = entry.tx;
    let reason: StuckReason;
    let detail: string;
    if (nonce > next) {
      reason = 'nonce_gap';
      detail = `nonce ${nonce} waits for nonce ${next} of ${entry.tx.from}, which no block has included`;
    } else if (maxFeePerGas !== null && baseFee !== null && maxFeePerGas < baseFee) {
      reason = 'fee_below_base_fee';
      detail = `its max fee of ${maxFeePerGas} wei per gas is below the base fee of ${baseFee} wei of block ${head}`;
    } else {
      reason = 'not_included';
      detail = `the node has held it since block ${entry.pendingSince} and no block included it`;
    }
    if (reason === entry.stuck) continue;
    if (reason === 'not_included' && entry.stuck !== null) {
      // What kept it out is gone: it waits like any pending tx, and is judged afresh later.
      entry.stuck = null;
      entry.pendingSince = head;
      send(state, entry, { type: 'TX_UNSTUCK' });
      continue;
    }
    entry.stuck = reason;
    state.logger.info({ id: entry.id, hash: entry.hash, reason }, 'tracked transaction is stuck');
    send(state, entry, { type: 'TX_STUCK', reason, detail, blockNumber });
  }
}

/** Each sender's next nonce on chain (`eth_getTransactionCount(sender, 'latest')`). */
async function nextNonces(state: WatcherState, senders: readonly string[]): Promise<Map<string, bigint>> {
  const nonces = new Map<string, bigint>();
  for (let i = 0; i < senders.length; i += NONCE_BATCH) {
    const chunk = senders.slice(i, i + NONCE_BATCH);
    const outcomes = await state.transport.batch(
      chunk.map((address) => ({ method: 'eth_getTransactionCount', params: [address, 'latest'] })),
    );
    chunk.forEach((sender, j) => nonces.set(sender, quantity(unwrap(outcomes[j]!), 'nonce')));
  }
  return nonces;
}
