import type { BlockRef, SyncPlan } from './canonical.js';
import { toBlockNumber } from './format.js';
import { applyBlock } from './replay.js';
import type { WatcherState } from './watcher-state.js';

/** Apply one sync step: orphaned blocks leave, the branch is replayed and committed. */
export async function replayPlan(state: WatcherState, plan: SyncPlan): Promise<void> {
  const { chain, tracked, logger, metrics } = state;
  if (plan.orphaned.length > 0) {
    orphan(state, plan.orphaned);
    if (!plan.tooDeep) chain.truncate(plan.orphaned.at(-1)!.number - 1n);
  }
  if (plan.tooDeep) {
    logger.warn(
      { err: plan.tooDeep },
      'lost track of the chain; restarting from the head and looking every tracker up',
    );
    chain.reset();
    for (const entry of tracked.values()) state.lookups.add(entry.id);
  }
  const target = plan.branch.at(-1);
  for (const block of plan.branch) {
    // Confirmations count only blocks whose links to ours are verified: the end of this branch.
    await applyBlock(state, block, target!.number);
    chain.commit(block);
    metrics.blocksProcessed++;
  }
  if (target) {
    state.lastHeadAt = state.now();
    state.baseFee = target.baseFeePerGas;
    newHead(state, target.number);
  }
}

function orphan(state: WatcherState, orphaned: BlockRef[]): void {
  const { tracked, sink, logger, metrics, confirmedOn } = state;
  metrics.reorgs++;
  metrics.deepestReorg = Math.max(metrics.deepestReorg, orphaned.length);
  const from = orphaned.at(-1)!.number;
  logger.warn({ chainId: state.chainId, depth: orphaned.length, from: Number(from) }, 'chain reorganised');
  const finalized = state.final.finalized;
  if (finalized !== null && from <= finalized) {
    // Impossible by protocol: the node's own finalized block left. Logged and counted, as a deep reorg.
    metrics.reorgsBelowFinalized++;
    logger.error(
      { chainId: state.chainId, from: Number(from), finalized: Number(finalized), depth: orphaned.length },
      `the node reorganised block ${from}, at or below the finalized block ${finalized} it had reported`,
    );
  }
  for (const ref of orphaned) {
    for (const id of tracked.idsByBlock(ref.hash)) {
      const entry = tracked.get(id)!;
      sink.deliver(id, { type: 'BLOCK_REORGED', blockHash: ref.hash });
      tracked.setBlock(entry, 'pending', null, null);
    }
    const confirmed = confirmedOn.get(ref.hash);
    if (confirmed) {
      confirmedOn.delete(ref.hash);
      metrics.reorgsAfterConfirmation++;
      logger.warn(
        { block: ref.hash, number: Number(ref.number), trackers: confirmed.ids },
        'a block with confirmed trackers left the chain: the reorg was deeper than their requiredConfirmations',
      );
    }
  }
}

/**
 * Confirmations come from the head alone: no call per tracker, and no event per tracker either —
 * the sink wakes only the trackers this head brings to their required confirmations.
 */
function newHead(state: WatcherState, head: bigint): void {
  const { sink, confirmedOn, chain } = state;
  sink.newHead(toBlockNumber(head), state.chainId!);
  const oldest = head - BigInt(chain.depth);
  for (const [hash, on] of confirmedOn) if (on.number < oldest) confirmedOn.delete(hash);
}
