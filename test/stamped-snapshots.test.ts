import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Snapshot, createActor } from 'xstate';
import { persistedSnapshot, stampingLogic } from '../machines/xstate-adaptations.js';
import { STUCK_REASONS, TRACKER_EVENT_TYPES, type TrackerEvent, trackerMachine } from '../machines/tracker.machine.js';

// The runtime stamps trackers' snapshots from a resolved template instead of letting XState resolve
// the state configuration for every actor (machines/xstate-adaptations.ts). Stamped actors must be
// indistinguishable from XState's own: same persisted snapshot, same tags, same `can`, after
// every event.
const hash = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;

const event: fc.Arbitrary<TrackerEvent> = fc.oneof(
  fc.constant({ type: 'TX_SEEN' as const }),
  fc
    .record({
      blockNumber: fc.integer({ min: 1, max: 20 }),
      ahead: fc.integer({ min: 0, max: 5 }),
      reverted: fc.boolean(),
    })
    .map(({ blockNumber, ahead, reverted }) => ({
      type: 'TX_MINED' as const,
      blockNumber,
      blockHash: hash(blockNumber),
      status: reverted ? ('reverted' as const) : ('success' as const),
      head: blockNumber + ahead,
    })),
  fc.integer({ min: 1, max: 30 }).map((blockNumber) => ({ type: 'NEW_HEAD' as const, blockNumber })),
  fc
    .integer({ min: 1, max: 30 })
    .map((blockNumber) => ({ type: 'FINALITY' as const, blockNumber, head: blockNumber + 2 })),
  fc.integer({ min: 1, max: 20 }).map((n) => ({ type: 'BLOCK_REORGED' as const, blockHash: hash(n) })),
  fc
    .constantFrom('repriced', 'cancelled', 'replaced')
    .map((reason) => ({ type: 'TX_REPLACED' as const, reason, replacementHash: hash(999) })),
  fc.constant({ type: 'TX_DROPPED' as const }),
  fc
    .record({ reason: fc.constantFrom(...STUCK_REASONS), blockNumber: fc.integer({ min: 1, max: 30 }) })
    .map(({ reason, blockNumber }) => ({ type: 'TX_STUCK' as const, reason, detail: reason, blockNumber })),
  fc.constant({ type: 'TX_UNSTUCK' as const }),
  fc.constant({ type: 'RECHECK' as const }),
  fc.constant({ type: 'REBROADCAST' as const }),
  fc.constant({ type: 'STOP' as const }),
  fc.constant({ type: 'GIVE_UP' as const, reason: 'crash_loop' as const, detail: 'x' }),
);

const events = fc.array(
  fc.tuple(event, fc.integer({ min: 1, max: 1_000_000 })).map(([e, at]) => ({ ...e, at })),
  { maxLength: 12 },
);

type Actor = ReturnType<typeof createActor<typeof trackerMachine>>;

function sameActor(stamped: Actor, real: Actor): void {
  const a = stamped.getSnapshot();
  const b = real.getSnapshot();
  expect(trackerMachine.getPersistedSnapshot(a)).toEqual(trackerMachine.getPersistedSnapshot(b));
  // The runtime's shortcut persists what XState would (compared as stored: JSON).
  expect(JSON.parse(JSON.stringify(persistedSnapshot(a)))).toEqual(
    JSON.parse(JSON.stringify(trackerMachine.getPersistedSnapshot(b))),
  );
  expect([...a.tags].sort()).toEqual([...b.tags].sort());
  for (const type of TRACKER_EVENT_TYPES) {
    const probe = {
      type,
      blockNumber: 25,
      blockHash: hash(3),
      status: 'success',
      head: 25,
      reason: 'repriced',
      replacementHash: hash(1),
      detail: 'x',
    } as unknown as TrackerEvent;
    expect(a.can(probe), type).toBe(b.can(probe));
  }
}

function replay(stamped: Actor, real: Actor, sequence: TrackerEvent[]): void {
  sameActor(stamped, real);
  for (const e of sequence) {
    stamped.send(e);
    real.send(e);
    sameActor(stamped, real);
  }
}

const input = fc.record({
  id: fc.constantFrom('txn_1', 'a', 'order-7'),
  txHash: fc.integer({ min: 0, max: 1000 }).map(hash),
  chainId: fc.constantFrom(1, 8453, 31337),
  requiredConfirmations: fc.integer({ min: 1, max: 6 }),
  finality: fc.constantFrom(null, 'safe' as const, 'finalized' as const),
  createdAt: fc.integer({ min: 0, max: 1_000_000 }),
});

describe('stamped tracker snapshots', () => {
  it('the persisted form keeps the key order XState gives it (rows stay byte-identical)', () => {
    const actor = createActor(trackerMachine, {
      input: { id: 'a', txHash: hash(1), chainId: 31337, requiredConfirmations: 2, createdAt: 1 },
    }).start();
    actor.send({ type: 'GIVE_UP', reason: 'crash_loop', detail: 'x', at: 2 });
    expect(JSON.stringify(persistedSnapshot(actor.getSnapshot()))).toBe(
      JSON.stringify(trackerMachine.getPersistedSnapshot(actor.getSnapshot())),
    );
  });

  it('a new tracker is the same as XState makes it, before and after any events', () => {
    const stamping = stampingLogic(trackerMachine);
    fc.assert(
      fc.property(input, events, (i, sequence) => {
        replay(
          createActor(stamping, { input: i }).start(),
          createActor(trackerMachine, { input: i }).start(),
          sequence,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('a restored tracker is the same as XState restores it, in every state, before and after any events', () => {
    fc.assert(
      fc.property(input, events, events, (i, before, after) => {
        const source = createActor(trackerMachine, { input: i }).start();
        for (const e of before) source.send(e);
        const persisted = trackerMachine.getPersistedSnapshot(source.getSnapshot()) as Snapshot<unknown>;
        // As the runtime restores: stamping logic given the snapshot.
        replay(
          createActor(stampingLogic(trackerMachine), { snapshot: persisted, input: i }).start(),
          createActor(trackerMachine, { snapshot: persisted, input: i }).start(),
          after,
        );
      }),
      { numRuns: 300 },
    );
  });
});
