import type { TrackerEvent } from '../../machines/tracker.machine.js';
import { classifyReplacement } from './classifyReplacement.js';
import { InvalidRpcResponseError, errorMessage } from './errors.js';
import {
  type ChainBlock,
  type ChainReceipt,
  type ChainTransaction,
  parseNullable,
  parseReceipt,
  quantity,
  toBlockNumber,
} from './format.js';
import { findReplacement } from './findReplacement.js';
import { getBlock } from './getBlock.js';
import { getBlockReceipts } from './getBlockReceipts.js';
import type { TransactionLookup } from './lookupTransactions.js';
import { heldByNode, leftPending } from './stuck.js';
import type { Tracked } from './tracked.js';
import { unwrap } from './transport.js';
import type { WatcherState } from './watcher-state.js';

function send(state: WatcherState, entry: Tracked, event: TrackerEvent): void {
  if (!state.sink.deliver(entry.id, event)) state.tracked.delete(entry.id);
}

function facts(tx: ChainTransaction): NonNullable<Tracked['tx']> {
  return { from: tx.from, nonce: tx.nonce, to: tx.to, value: tx.value, input: tx.input, maxFeePerGas: tx.maxFeePerGas };
}

function mined(state: WatcherState, entry: Tracked, receipt: ChainReceipt, head: bigint): void {
  if (entry.state === 'confirming' && entry.blockHash === receipt.blockHash) return;
  entry.seen = true;
  entry.unknownSince = null;
  entry.head = head;
  leftPending(entry);
  // Set before delivering: a tracker confirmed at once leaves (trackerGone) inside the send.
  if (receipt.status === 'success') state.tracked.setBlock(entry, 'confirming', receipt.blockNumber, receipt.blockHash);
  send(state, entry, {
    type: 'TX_MINED',
    blockNumber: toBlockNumber(receipt.blockNumber),
    blockHash: receipt.blockHash,
    status: receipt.status,
    head: toBlockNumber(head),
  });
}

async function replaced(
  state: WatcherState,
  entry: Tracked,
  tx: ChainTransaction,
  receipt: ChainReceipt | undefined,
  head: bigint,
): Promise<void> {
  const reason = classifyReplacement(entry.tx!, tx);
  state.logger.info({ id: entry.id, hash: entry.hash, by: tx.hash, reason }, 'tracked transaction replaced');
  send(state, entry, { type: 'TX_REPLACED', reason, replacementHash: tx.hash });
  if (reason !== 'repriced' || state.tracked.get(entry.id) !== entry) return;
  // Repriced: the tracker follows the new hash, which is mined right here.
  state.tracked.setHash(entry, tx.hash);
  state.tracked.setTx(entry, facts(tx));
  leftPending(entry);
  entry.raw = null;
  const found =
    receipt ??
    parseNullable(
      await state.transport.request({ method: 'eth_getTransactionReceipt', params: [tx.hash] }),
      parseReceipt,
      'receipt',
    ) ??
    undefined;
  if (found) mined(state, entry, found, head);
}

/**
 * Replay one canonical block: trackers whose tx is in it are mined; trackers whose sender+nonce a
 * different tx used are replaced. At most two calls (receipts, and the full block when a tracked
 * sender sent an untracked tx), none when the block concerns no tracker.
 */
export async function applyBlock(state: WatcherState, block: ChainBlock, head: bigint): Promise<void> {
  const { tracked, transport, support } = state;
  if (tracked.size === 0 || block.transactionHashes.length === 0) return;
  const mine = block.transactionHashes.filter((h) => tracked.idsByHash(h).length > 0);
  const mayReplace = tracked.hasSenders() && block.transactionHashes.length > mine.length;
  if (mine.length === 0 && !mayReplace) return;
  const receipts = await getBlockReceipts(transport, { blockHash: block.hash, wanted: new Set(mine), support });
  if (receipts === null) throw new InvalidRpcResponseError(`block ${block.hash} vanished while replaying it`);
  const byHash = new Map(receipts.map((r) => [r.transactionHash, r]));

  if (mayReplace) {
    const suspects = support.blockReceipts ? mayUseTrackedNonce(state, block, byHash) : true;
    if (suspects) {
      const txs =
        block.transactions ??
        (await getBlock(transport, { blockHash: block.hash, includeTransactions: true }))?.transactions;
      if (!txs) throw new InvalidRpcResponseError(`block ${block.hash} vanished while replaying it`);
      for (const tx of txs) {
        if (byHashTracked(state, tx.hash)) continue;
        for (const id of tracked.idsBySender(tx.from, tx.nonce)) {
          const entry = tracked.get(id)!;
          if (entry.state === 'pending' && entry.hash !== tx.hash)
            await replaced(state, entry, tx, byHash.get(tx.hash), head);
        }
      }
    }
  }
  for (const hash of mine) {
    const receipt = byHash.get(hash);
    if (!receipt) throw new InvalidRpcResponseError(`no receipt for ${hash} in block ${block.hash}`);
    for (const id of tracked.idsByHash(hash)) mined(state, tracked.get(id)!, receipt, head);
  }
}

/**
 * Whether an untracked tx of this block may have used the nonce of a tracked pending tx (only the
 * full block, with nonces, tells which). A sender's txs sit in a block in nonce order, one after
 * the other: one of them followed here, with its nonce known, gives the nonces of the others
 * without a call. (In a cluster, the other txs of a sender are often other instances' trackers.)
 */
function mayUseTrackedNonce(
  state: WatcherState,
  block: ChainBlock,
  byHash: ReadonlyMap<string, ChainReceipt>,
): boolean {
  const { tracked } = state;
  const bySender = new Map<string, string[]>();
  for (const hash of block.transactionHashes) {
    const receipt = byHash.get(hash);
    if (!receipt) return true;
    if (!tracked.hasSender(receipt.from)) continue;
    const hashes = bySender.get(receipt.from);
    if (hashes) hashes.push(hash);
    else bySender.set(receipt.from, [hash]);
  }
  for (const [sender, hashes] of bySender) {
    if (hashes.every((hash) => byHashTracked(state, hash))) continue;
    let anchor: { at: number; nonce: bigint } | undefined;
    for (let at = 0; at < hashes.length && !anchor; at++) {
      for (const id of tracked.idsByHash(hashes[at]!)) {
        const tx = tracked.get(id)?.tx;
        if (tx && tx.from === sender) anchor = { at, nonce: tx.nonce };
      }
    }
    if (!anchor) {
      // Without a known nonce, any of the sender's pending txs may have been replaced.
      if (tracked.idsOfSender(sender).some((id) => tracked.get(id)?.state === 'pending')) return true;
      continue;
    }
    for (const [at, hash] of hashes.entries()) {
      if (byHashTracked(state, hash)) continue;
      const nonce = anchor.nonce + BigInt(at - anchor.at);
      if (tracked.idsBySender(sender, nonce).some((id) => tracked.get(id)?.state === 'pending')) return true;
    }
  }
  return false;
}

function byHashTracked(state: WatcherState, hash: string): boolean {
  return state.tracked.idsByHash(hash).length > 0;
}

/** Bring trackers up to date from one batch of lookups (on start, RECHECK, and the dropped check). */
export async function applyLookups(
  state: WatcherState,
  entries: readonly Tracked[],
  results: readonly TransactionLookup[],
): Promise<void> {
  const { tracked, chain, logger, now } = state;
  const head = chain.head!.number;
  const byHash = new Map(results.map((r) => [r.hash, r]));
  const unknown: Tracked[] = [];
  for (const entry of entries) {
    const result = byHash.get(entry.hash);
    if (tracked.get(entry.id) !== entry || !result) continue;
    entry.checkedAt = now();
    if (!result.ok) {
      entry.lookupFailures++;
      logger.warn(
        { id: entry.id, err: errorMessage(result.error), failures: entry.lookupFailures },
        'tracker lookup failed',
      );
      if (entry.lookupFailures >= state.maxLookupFailures) {
        // The supervision path: the tracker crashes, restarts from its snapshot, and is looked up again.
        entry.lookupFailures = 0;
        send(state, entry, { type: 'CRASH' });
      } else {
        state.lookups.add(entry.id);
      }
      continue;
    }
    entry.lookupFailures = 0;
    if (result.raw && !entry.raw) entry.raw = result.raw;
    if (result.transaction) {
      if (!entry.tx) tracked.setTx(entry, facts(result.transaction));
      entry.seen = true;
      entry.unknownSince = null;
    }
    const receipt = result.receipt;
    if (receipt) {
      // A block we have not replayed yet (or one that left): the replay of the chain decides.
      if (chain.isCanonical(receipt.blockNumber, receipt.blockHash) === false) continue;
      if (entry.state === 'confirming' && entry.blockHash === receipt.blockHash) {
        entry.head = head;
        send(state, entry, { type: 'NEW_HEAD', blockNumber: toBlockNumber(head) });
        continue;
      }
      if (entry.state === 'confirming') {
        send(state, entry, { type: 'BLOCK_REORGED', blockHash: entry.blockHash! });
        tracked.setBlock(entry, 'pending', null, null);
      }
      mined(state, entry, receipt, head);
      continue;
    }
    if (entry.state === 'confirming' && chain.isCanonical(entry.blockNumber!, entry.blockHash!) !== true) {
      // Its block is not on the chain any more (it left while the tracker was down).
      send(state, entry, { type: 'BLOCK_REORGED', blockHash: entry.blockHash! });
      tracked.setBlock(entry, 'pending', null, null);
    }
    if (result.transaction) {
      heldByNode(state, entry, head);
      send(state, entry, { type: 'TX_SEEN' });
      continue;
    }
    unknown.push(entry);
  }
  await resolveUnknown(state, unknown, head);
}

/** Txs the node does not know: replaced by a tx we did not see (nonce passed), or dropped. */
async function resolveUnknown(state: WatcherState, entries: Tracked[], head: bigint): Promise<void> {
  if (entries.length === 0) return;
  const senders = [...new Set(entries.flatMap((e) => (e.tx ? [e.tx.from] : [])))];
  const outcomes = await state.transport.batch(
    senders.map((address) => ({ method: 'eth_getTransactionCount', params: [address, 'latest'] })),
  );
  const counts = new Map(senders.map((s, i) => [s, quantity(unwrap(outcomes[i]!), 'nonce')]));
  const now = state.now();
  for (const entry of entries) {
    if (entry.state !== 'pending') continue;
    if (entry.tx && counts.get(entry.tx.from)! > entry.tx.nonce) {
      const { from, nonce } = entry.tx;
      const replacement = await findReplacement(state.transport, { from, nonce, fromBlock: 0n, toBlock: head }).catch(
        () => null,
      );
      if (replacement && replacement.hash !== entry.hash) {
        const receipt = parseNullable(
          await state.transport.request({ method: 'eth_getTransactionReceipt', params: [replacement.hash] }),
          parseReceipt,
          'receipt',
        );
        await replaced(state, entry, replacement, receipt ?? undefined, head);
        continue;
      }
    }
    entry.unknownSince ??= now;
    const waited = now - Math.max(entry.unknownSince, state.recoveredAt);
    if (waited < state.droppedAfterMs) continue;
    send(state, entry, {
      type: 'TX_DROPPED',
      detail: entry.seen
        ? `${entry.hash} left the node's mempool and was not mined for ${waited} ms`
        : `the node never knew ${entry.hash} (${waited} ms)`,
    });
    state.tracked.delete(entry.id);
  }
}
