import { Wallet, keccak256 } from 'ethers';
import { createTestModel } from 'xstate/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TrackerEvent, trackerMachine } from '../machines/tracker.machine.js';
import { topState } from '../src/runtime/tracker-view.js';
import { type Harness, rpc, startHarness, waitFor } from './support/chain.js';

/**
 * Model-based: the tracker machine's simple paths, each realised on anvil by a fresh tx and the
 * chain actions that produce the event; after each step the live tracker must be in the state the
 * model says. Reduced event set: the chain events (TX_SEEN, TX_MINED success, NEW_HEAD,
 * BLOCK_REORGED, TX_REPLACED cancelled, TX_DROPPED) plus STOP (system.stop). Left out: a reverted
 * TX_MINED (another tx kind; see transfer-confirms), repriced/replaced (see replacement), and the
 * supervision events (RECHECK, CRASH, GIVE_UP), which the chain does not produce, and TX_STUCK /
 * TX_UNSTUCK (see stuck-transactions).
 */
const MODEL_EVENTS: TrackerEvent[] = [
  { type: 'TX_SEEN' },
  { type: 'TX_MINED', blockNumber: 1, blockHash: '0x01', status: 'success', head: 1 },
  { type: 'NEW_HEAD', blockNumber: 2 },
  { type: 'BLOCK_REORGED', blockHash: '0x01' },
  { type: 'TX_REPLACED', reason: 'cancelled', replacementHash: '0x02' },
  { type: 'TX_DROPPED' },
];
const model = createTestModel(trackerMachine, {
  input: { id: 'model', txHash: `0x${'0'.repeat(64)}`, chainId: 31337, requiredConfirmations: 2, createdAt: 0 },
  events: MODEL_EVENTS,
  // Events without a payload are also taken from the machine itself: keep STOP (the API's), not
  // the supervision-only ones.
  // the supervision-only ones. A tx the node never showed has no known sender and nonce, so a
  // replacement can only be told for a seen one.
  // Stuck and unstuck have their own anvil test (stuck-transactions).
  filterEvents: (snapshot, event) =>
    !['GIVE_UP', 'CRASH', 'RECHECK', 'TX_STUCK', 'TX_UNSTUCK'].includes(event.type) &&
    (event.type !== 'TX_REPLACED' || snapshot.matches({ pending: 'seen' })),
  // States by value only: a reorg loop (confirming → pending → confirming) is one cycle, not infinite.
  serializeState: (snapshot) => JSON.stringify(snapshot.value),
});
const paths = model.getSimplePaths();

describe('tracker machine paths realised on anvil', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ watcher: { droppedAfterMs: 300, dropCheckIntervalMs: 50 } });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('generates a useful set of paths', () => {
    expect(paths.length).toBeGreaterThanOrEqual(5);
  });

  let n = 0;
  for (const path of paths) {
    const name = `${path.steps.map((step) => step.event.type).join(' → ')} ⇒ ${JSON.stringify(path.state.value)}`;
    it(name, async () => {
      // A fresh funded sender per path: nonce 0, nothing else in flight.
      const wallet = Wallet.createRandom();
      await rpc(h.anvil.url, 'anvil_setBalance', [wallet.address, '0x56bc75e2d63100000']);
      const fee = { chainId: 31337n, type: 2, gasLimit: 21_000n, nonce: 0 };
      const rawA = await wallet.signTransaction({
        ...fee,
        to: h.wallets[3]!.address,
        value: 1n,
        maxFeePerGas: 10_000_000_000n,
        maxPriorityFeePerGas: 1_000_000_000n,
      });
      const hash = keccak256(rawA);
      const id = `path_${n++}`;
      await h.system.start(id, { txHash: hash, confirmations: 2 });

      for (const step of path.steps) {
        const before = h.system.lookup(id)?.getSnapshot().value;
        switch (step.event.type as string) {
          case 'xstate.init':
            break;
          case 'TX_SEEN':
            await h.send(rawA);
            break;
          case 'TX_MINED':
            if (JSON.stringify(before) === JSON.stringify({ pending: 'unseen' })) await h.send(rawA);
            await rpc(h.anvil.url, 'evm_mine');
            break;
          case 'NEW_HEAD':
            await rpc(h.anvil.url, 'evm_mine');
            break;
          case 'BLOCK_REORGED':
            // The tx's block is the head (1 of 2 confirmations): replace it, then put the tx back
            // into the mempool (anvil drops the txs of removed blocks): pending.seen.
            await rpc(h.anvil.url, 'anvil_reorg', [1, []]);
            await waitFor(
              'the reorg to reach the tracker',
              () => topState(h.system.lookup(id)?.getSnapshot().value) === 'pending',
            );
            await h.send(rawA);
            break;
          case 'TX_REPLACED': {
            const cancel = await wallet.signTransaction({
              ...fee,
              to: wallet.address,
              value: 0n,
              maxFeePerGas: 20_000_000_000n,
              maxPriorityFeePerGas: 2_000_000_000n,
            });
            await h.send(cancel);
            await rpc(h.anvil.url, 'evm_mine');
            break;
          }
          case 'STOP':
            await h.system.stop(id);
            break;
          case 'TX_DROPPED':
            if (JSON.stringify(before) === JSON.stringify({ pending: 'seen' }))
              await rpc(h.anvil.url, 'anvil_dropTransaction', [hash]);
            break;
          default:
            throw new Error(`no realisation for ${step.event.type}`);
        }
        const expected = JSON.stringify(step.state.value);
        await waitFor(
          `${id} to be ${expected} after ${step.event.type}`,
          async () => {
            const live = h.system.lookup(id)?.getSnapshot().value;
            const value = live ?? (await h.system.get(id))?.state;
            return JSON.stringify(value) === expected;
          },
          10_000,
        );
      }
      const final = await h.system.get(id);
      expect(final?.failure?.reason ?? null).toBe(path.state.context.failure?.reason ?? null);
    });
  }
});
