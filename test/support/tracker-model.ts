import type { AnyStateNode } from 'xstate';
import { TestModel } from 'xstate/graph';
import { type Finality, type TrackerEvent, type TrackerInput, trackerMachine } from '../../machines/tracker.machine.js';

export const MODEL_HASH = `0x${'ab'.repeat(32)}`;
export const REPLACEMENT_HASH = `0x${'cd'.repeat(32)}`;
export const BLOCK_A = `0x${'a1'.repeat(32)}`;
export const BLOCK_B = `0x${'b2'.repeat(32)}`;
export const OTHER_BLOCK = `0x${'ee'.repeat(32)}`;

/** A tracker confirmed by 3 confirmations, or (with `finality`) by the chain's block of that tag. */
export const modelInput = (id: string, finality: Finality | null = null): TrackerInput => ({
  id,
  txHash: MODEL_HASH,
  chainId: 31337,
  requiredConfirmations: finality === null ? 3 : 0,
  finality,
  createdAt: 0,
});

/**
 * Concrete chain facts for the traversal: a tx mined in block 10 (A) or, after a reorg, in block 11
 * (B); heads that move confirmations to 2 and 3; reorgs of its own block and of another one; a
 * finalized (or safe) block below block 10, and one at block 11 (a counted tracker ignores both);
 * a pending tx found stuck at block 20 (not included) and at block 21 (a nonce gap).
 */
export const TRACKER_MODEL_EVENTS: TrackerEvent[] = [
  { type: 'TX_SEEN' },
  { type: 'TX_MINED', blockNumber: 10, blockHash: BLOCK_A, status: 'success', head: 10 },
  { type: 'TX_MINED', blockNumber: 11, blockHash: BLOCK_B, status: 'success', head: 13 },
  { type: 'TX_MINED', blockNumber: 10, blockHash: BLOCK_A, status: 'reverted', head: 10 },
  { type: 'NEW_HEAD', blockNumber: 9 },
  { type: 'NEW_HEAD', blockNumber: 11 },
  { type: 'NEW_HEAD', blockNumber: 12 },
  { type: 'FINALITY', blockNumber: 9, head: 12 },
  { type: 'FINALITY', blockNumber: 11, head: 14 },
  { type: 'BLOCK_REORGED', blockHash: BLOCK_A },
  { type: 'BLOCK_REORGED', blockHash: OTHER_BLOCK },
  { type: 'TX_REPLACED', reason: 'repriced', replacementHash: REPLACEMENT_HASH },
  { type: 'TX_REPLACED', reason: 'cancelled', replacementHash: REPLACEMENT_HASH },
  { type: 'TX_REPLACED', reason: 'replaced', replacementHash: REPLACEMENT_HASH },
  { type: 'TX_DROPPED' },
  { type: 'TX_STUCK', reason: 'not_included', detail: 'not included since block 8', blockNumber: 20 },
  { type: 'TX_STUCK', reason: 'nonce_gap', detail: 'nonce 5 waits for nonce 4', blockNumber: 21 },
  { type: 'TX_UNSTUCK' },
  { type: 'RECHECK' },
  { type: 'REBROADCAST' },
  { type: 'CRASH' },
  { type: 'STOP' },
  { type: 'GIVE_UP', reason: 'crash_loop', detail: 'model' },
];

// The traversal runs the machine's actions; a crash is the runtime's business, not the model's.
const modelMachine = trackerMachine.provide({ actions: { crash: () => {} } });

/**
 * The tracker machine as a test model, for a counted tracker or (with `finality`) one confirmed by
 * finality. States are told apart by value and every context field a user sees, so each step's
 * snapshot in a generated path is exactly what the machine reaches there.
 */
export function trackerTestModel(finality: Finality | null = null) {
  return new TestModel(modelMachine, {
    input: modelInput('model', finality),
    // A finished tracker takes no more events (the runtime deregisters it).
    events: (snapshot) => (snapshot.hasTag('terminal') ? [] : TRACKER_MODEL_EVENTS),
    // Reorg, re-mine, reorg… would go on forever: two reorgs are enough.
    stopWhen: (snapshot) => snapshot.context.reorgs >= 2,
    // CRASH, RECHECK and REBROADCAST leave the state as it was; marking the state they lead to keeps those
    // self-loops in the generated paths (once per state) so that they are walked and covered.
    serializeState: (snapshot, event) =>
      JSON.stringify([
        snapshot.value,
        snapshot.context.confirmations,
        snapshot.context.blockNumber,
        snapshot.context.blockHash,
        snapshot.context.reorgs,
        snapshot.context.replacedBy,
        snapshot.context.failure,
        snapshot.context.stuck,
        event?.type === 'CRASH' || event?.type === 'RECHECK' || event?.type === 'REBROADCAST' ? event.type : '',
      ]),
  });
}

/** Every transition of a machine definition, named `source#event#index` (index among same-event candidates). */
export function allTransitions(root: AnyStateNode): Set<string> {
  const keys = new Set<string>();
  const visit = (node: AnyStateNode): void => {
    for (const [eventType, candidates] of node.transitions) {
      candidates.forEach((_, i) => keys.add(`${node.id}#${eventType}#${i}`));
    }
    (node.always ?? []).forEach((_, i) => keys.add(`${node.id}#always#${i}`));
    Object.values(node.states).forEach(visit);
  };
  visit(root);
  return keys;
}

/** The `allTransitions` name of a transition definition (as inspection's microsteps report them). */
export function transitionKey(transition: { source: AnyStateNode; eventType: string }): string {
  const always = (transition.source.always ?? []).findIndex((c) => c === transition);
  if (always >= 0) return `${transition.source.id}#always#${always}`;
  const candidates = transition.source.transitions.get(transition.eventType) ?? [];
  return `${transition.source.id}#${transition.eventType}#${candidates.findIndex((c) => c === transition)}`;
}

export function allStateNodeIds(root: AnyStateNode): Set<string> {
  const ids = new Set<string>();
  const visit = (node: AnyStateNode): void => {
    ids.add(node.id);
    Object.values(node.states).forEach(visit);
  };
  visit(root);
  return ids;
}
