import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createActor } from 'xstate';
import {
  FINAL_STATE_NAMES,
  TRACKER_MACHINE_VERSION,
  TRACKER_STATE_NAMES,
  type TrackerEvent,
  trackerMachine,
} from '../../machines/tracker.machine.js';
import { checkSnapshot } from '../../src/runtime/snapshot-compat.js';
import { topState } from '../../src/runtime/tracker-view.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { SnapshotStore, TrackerCount, TrackerRecord } from '../../src/store/types.js';
import { hashOf, seededRandom } from '../helpers.js';

/** A store under the contract, with the counters both stores keep. */
export interface ContractStore extends SnapshotStore {
  /** Writes not durable yet. */
  readonly pendingCount: number;
  /** Transactions committed so far. */
  readonly commitCount: number;
}

/** How the contract reaches one kind of store. */
export interface StoreFactory {
  /** A store on the data called `name`: empty the first time, the same data when opened again. */
  open(name: string): Promise<ContractStore>;
  /** The snapshot column of row `id` of `name`, as another connection reads it. */
  storedSnapshot(name: string, id: string): Promise<string>;
  /** Remove what the factory made. */
  close(): Promise<void>;
}

/** Chains records are on in these tests; undefined: a row from before trackers had a chain. */
const CHAINS = [1, 8453, undefined];

/** A record with a small snapshot of its own, in `state`, on `chainId`. */
export const record = (id: string, state: TrackerRecord['state'], n: number, chainId?: number): TrackerRecord => ({
  id,
  txHash: hashOf(n),
  ...(chainId === undefined ? {} : { chainId }),
  state,
  version: 1,
  snapshot: { status: 'active', value: state, context: { id, n } },
  restarts: 0,
  createdAt: n,
  updatedAt: n,
});

async function allPages(
  store: SnapshotStore,
  state: TrackerRecord['state'] | undefined,
  limit: number,
  chain: { chainId?: number; unsetChainId?: number } = {},
): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list({ state, limit, cursor, ...chain });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    ids.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

/** A real tracker's record after each of `events`, as the runtime writes it. */
export function trackerRecords(id: string, events: TrackerEvent[]): TrackerRecord[] {
  const actor = createActor(trackerMachine, {
    input: { id, txHash: hashOf(1), chainId: 31337, requiredConfirmations: 3, createdAt: 1_764_000_000_000 },
  }).start();
  const records: TrackerRecord[] = [];
  for (const event of [null, ...events]) {
    if (event) actor.send(event);
    const snapshot = actor.getSnapshot();
    records.push({
      id,
      txHash: snapshot.context.txHash,
      chainId: snapshot.context.chainId,
      state: topState(snapshot.value),
      version: TRACKER_MACHINE_VERSION,
      snapshot: trackerMachine.getPersistedSnapshot(snapshot),
      restarts: snapshot.context.restarts,
      createdAt: snapshot.context.createdAt,
      updatedAt: snapshot.context.updatedAt,
    });
  }
  actor.stop();
  return records;
}

/** Tally of what `get` shows for each id. */
async function shown(store: SnapshotStore, ids: Iterable<string>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const id of ids) {
    const state = (await store.get(id))!.state;
    counts[state] = (counts[state] ?? 0) + 1;
  }
  return counts;
}

/**
 * Register the `SnapshotStore` contract's tests, inside the caller's `describe`, for the stores
 * `factory` makes: both stores pass the same tests.
 *
 * @example
 * describe('SqliteStore keeps the SnapshotStore contract', () => storeContract(async () => sqliteFactory()));
 */
export function storeContract(makeFactory: () => Promise<StoreFactory>): void {
  let factory: StoreFactory;
  beforeAll(async () => {
    factory = await makeFactory();
  });
  afterAll(() => factory?.close());
  it('reads its own writes before they are committed, and pages like MemoryStore with writes pending', async () => {
    const store = await factory.open('contract');
    const memory = new MemoryStore();
    const random = seededRandom(7);
    const states = TRACKER_STATE_NAMES;
    const write = (r: TrackerRecord): void => {
      store.write(r);
      memory.write(r);
    };
    const chain = () => CHAINS[Math.floor(random() * CHAINS.length)];
    for (let i = 0; i < 400; i++)
      write(record(`id_${Math.floor(random() * 300)}`, states[i % states.length]!, i, chain()));
    await store.flush();
    // Now some writes stay pending (same turn, no flush): moves between states and chains, and new ids.
    for (let i = 0; i < 120; i++)
      write(record(`id_${Math.floor(random() * 400)}`, states[Math.floor(random() * 5)]!, 1000 + i, chain()));
    expect(store.pendingCount).toBeGreaterThan(0);
    expect(await store.get('id_1')).toEqual(await memory.get('id_1'));
    // One chain's trackers, rows without a chain counted as the default chain's (1) or not.
    const filters = [{}, { chainId: 1, unsetChainId: 1 }, { chainId: 8453, unsetChainId: 1 }, { chainId: 1 }];
    for (const state of [undefined, ...states]) {
      for (const limit of [1, 7, 50]) {
        for (const filter of filters) {
          const label = `${state} by ${limit} ${JSON.stringify(filter)}`;
          expect(await allPages(store, state, limit, filter), label).toEqual(
            await allPages(memory, state, limit, filter),
          );
        }
      }
    }
    const byKey = (counts: TrackerCount[]) => counts.map((c) => `${c.chainId}/${c.state}=${c.count}`).sort();
    expect(byKey(await store.countByChain())).toEqual(byKey(await memory.countByChain()));
    expect((await store.countByChain()).reduce((n, c) => n + c.count, 0)).toBe(memory.size);
    await store.close();
  });

  it('counts trackers by state as get shows them: stored, pending, in the commit in flight, a burst; like MemoryStore', async () => {
    const store = await factory.open('count');
    const memory = new MemoryStore();
    const random = seededRandom(11);
    const states = [...TRACKER_STATE_NAMES, 'not_a_state'] as TrackerRecord['state'][];
    const ids = new Set<string>();
    const write = (n: number, at: number): void => {
      for (let i = 0; i < n; i++) {
        const r = record(`id_${Math.floor(random() * 2000)}`, states[Math.floor(random() * states.length)]!, at + i);
        ids.add(r.id);
        store.write(r);
        memory.write(r);
      }
    };
    const expectCounts = async (what: string) => {
      // Asked first: the writes made so far are what both counts cover.
      const [fromStore, fromMemory] = [store.countByState(), memory.countByState()];
      const expected = await shown(store, ids);
      expect(await shown(memory, ids), what).toEqual(expected);
      expect(await fromStore, what).toEqual(expected);
      expect(await fromMemory, what).toEqual(expected);
    };

    await expectCounts('empty');
    write(400, 0);
    await store.flush();
    await expectCounts('all stored');
    write(120, 1_000);
    expect(store.pendingCount).toBeGreaterThan(0);
    await expectCounts('writes pending');
    // The turn ends: the group commit is on its way; more writes gather behind it.
    write(120, 1_500);
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.pendingCount).toBeGreaterThan(0);
    write(120, 2_000);
    await expectCounts('a commit in flight and writes pending');
    // More writes not durable than a count looks up one by one: it waits for their commit.
    write(3_000, 3_000);
    expect(store.pendingCount).toBeGreaterThan(1_000);
    await expectCounts('a burst');
    await store.close();
  });

  it('flush makes writes durable: a second store on the same data sees them; close flushes the rest', async () => {
    const a = await factory.open('durable');
    a.write(record('one', 'pending', 1));
    await a.flush();
    const b = await factory.open('durable');
    expect(await b.get('one')).toMatchObject({ id: 'one', state: 'pending', snapshot: { context: { n: 1 } } });
    a.write(record('two', 'confirming', 2));
    await a.close();
    expect(await b.get('two')).toMatchObject({ state: 'confirming' });
    await b.close();
  });

  it('loadLive hands out every live row and every row in a state this machine does not know, never a final one', async () => {
    const store = await factory.open('live');
    const states = ['', 'aaa', 'zzz', ...TRACKER_STATE_NAMES] as TrackerRecord['state'][];
    states.forEach((state, i) => {
      for (let j = 0; j < 3; j++) store.write(record(`${i}_${j}`, state, i));
    });
    const loaded: string[] = [];
    for await (const batch of store.loadLive(2)) loaded.push(...batch.map((r) => r.state));
    const live = states.filter((s) => !FINAL_STATE_NAMES.includes(s));
    expect(loaded.sort()).toEqual(live.flatMap((s) => [s, s, s]).sort());
    await store.close();
  });

  it('groups the writes of one turn, and every flush waiting on them, into one commit', async () => {
    const store = await factory.open('group');
    for (let i = 0; i < 5000; i++) store.write(record(`g_${i}`, 'pending', i));
    const flushes = Array.from({ length: 100 }, () => store.flush());
    expect(store.pendingCount).toBe(5000);
    await Promise.all(flushes);
    expect(store.pendingCount).toBe(0);
    expect(store.commitCount).toBe(1);
    await store.close();
    const reader = await factory.open('group');
    expect((await reader.countByChain()).reduce((n, c) => n + c.count, 0)).toBe(5000);
    await reader.close();
  });

  // The rows' encoding (src/store/row.ts), shared by both stores.
  const at = 1_764_000_000_000;
  const lifetime: TrackerEvent[] = [
    { type: 'TX_SEEN', at: at + 1 },
    { type: 'TX_MINED', blockNumber: 100, blockHash: hashOf(100), status: 'success', head: 100, at: at + 2 },
    { type: 'NEW_HEAD', blockNumber: 102, at: at + 3 },
  ];

  it('stores a real tracker snapshot packed (store schema 2 rows), and gives back the same JSON that checkSnapshot accepts', async () => {
    for (const written of trackerRecords('real', lifetime)) {
      const store = await factory.open('packed');
      store.write(written);
      await store.close();
      const text = await factory.storedSnapshot('packed', 'real');
      expect(text.startsWith('{"packed":2,')).toBe(true);
      expect(text.length).toBeLessThan(JSON.stringify(written.snapshot).length * 0.6);

      const reader = await factory.open('packed');
      const read = (await reader.get('real'))!;
      expect(JSON.stringify(read)).toBe(JSON.stringify(written));
      expect(checkSnapshot(read)).toMatchObject({ ok: true });
      const live = [];
      for await (const batch of reader.loadLive(10)) live.push(...batch);
      if (written.state !== 'confirmed') expect(JSON.stringify(live)).toBe(JSON.stringify([written]));
      await reader.close();
    }
  });

  it('stores what cannot be packed as given: a snapshot with its own packed key, a context that disagrees with the row', async () => {
    const [real] = trackerRecords('odd', []);
    const snapshot = real!.snapshot as { context: Record<string, unknown> };
    const cases: TrackerRecord[] = [
      { ...real!, id: 'own_packed_1', snapshot: { packed: 1, value: 'pending', context: { n: 1 } } },
      { ...real!, id: 'own_packed_0', snapshot: { packed: 0, snapshot: 'x' } },
      { ...real!, id: 'other_id', snapshot: { ...snapshot, context: { ...snapshot.context, id: 'someone_else' } } },
      { ...real!, id: 'odd', createdAt: real!.createdAt + 0.5 },
      { ...real!, id: 'text', snapshot: 'not json at all' },
      { ...real!, id: 'array', snapshot: [1, 2, 3] },
    ];
    const store = await factory.open('as-given');
    for (const r of cases) store.write(r);
    await store.close();
    const reader = await factory.open('as-given');
    for (const r of cases) expect(await reader.get(r.id), r.id).toEqual(r);
    expect((await factory.storedSnapshot('as-given', 'own_packed_1')).startsWith('{"packed":0,')).toBe(true);
    await reader.close();
  });

  it('gives back every record exactly as JSON would, packed or not (store schema 2 rows; property: odd ids, times, keys, values)', async () => {
    const store = await factory.open('property');
    const [real] = trackerRecords('prop', lifetime.slice(0, 2));
    const base = real!.snapshot as Record<string, unknown> & { context: Record<string, unknown> };
    // Weighted towards what packs, so every run tries all three stored forms.
    const often = <T, U>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<U>) =>
      fc.oneof({ weight: 4, arbitrary: usual }, { weight: 1, arbitrary: odd });
    const time = often(
      fc.integer({ min: -1e15, max: 1e15 }),
      fc.oneof(fc.maxSafeInteger(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    );
    const text = often(
      fc.stringMatching(/^[\w.-]{0,20}$/),
      fc.oneof(fc.string(), fc.constantFrom('a"b', 'a\\b', 'tab\there', 'é✓', '😀')),
    );
    const trackerLike = fc
      .record({
        id: text,
        txHash: text,
        createdAt: time,
        updatedAt: time,
        contextTimesDiffer: often(fc.constant(false), fc.constant(true)),
        middle: fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
        value: fc.oneof(fc.constant(base.value), fc.jsonValue()),
        status: often(fc.constant('active'), fc.constant('done')),
        ownPacked: often(fc.constant(undefined), fc.constantFrom(0, 1, 2)),
        // The row's chain: the context's (packs it too), none (a row from before chains), or another.
        chainId: fc.oneof(fc.constant(31337), fc.constant(undefined), fc.integer({ min: -5, max: 1e15 })),
        // XState's own object (with `output` and `error` undefined) or one read back from JSON.
        fromJson: fc.boolean(),
      })
      .map((g): TrackerRecord => {
        const { id: _i, txHash: _t, createdAt: _c, updatedAt: _u, ...rest } = base.context;
        const context = {
          id: g.id,
          txHash: g.txHash,
          ...rest,
          ...g.middle,
          createdAt: g.contextTimesDiffer ? 7 : g.createdAt,
          updatedAt: g.updatedAt,
        };
        const shape = g.fromJson ? (JSON.parse(JSON.stringify(base)) as typeof base) : base;
        const snapshot: Record<string, unknown> = { ...shape, status: g.status, value: g.value, context };
        if (g.ownPacked !== undefined) snapshot.packed = g.ownPacked;
        // In the runtime's key order (chainId after txHash), which is the order a store reads back.
        const { id: _id, txHash: _hash, chainId: _chain, ...row } = real!;
        const chain = g.chainId === undefined ? {} : { chainId: g.chainId };
        return {
          id: g.id,
          txHash: g.txHash,
          ...chain,
          ...row,
          snapshot,
          createdAt: g.createdAt,
          updatedAt: g.updatedAt,
        };
      });
    const anything = fc.record({ id: text, snapshot: fc.jsonValue() }).map((g): TrackerRecord => ({ ...real!, ...g }));
    const forms = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof(trackerLike, anything), async (written) => {
        store.write(written);
        await store.flush();
        expect(store.pendingCount).toBe(0);
        expect(JSON.stringify(await store.get(written.id))).toBe(JSON.stringify(written));
        const form = (await factory.storedSnapshot('property', written.id)).slice(0, 11);
        const key = form.startsWith('{"packed":') ? form : 'as given';
        forms.set(key, (forms.get(key) ?? 0) + 1);
      }),
      { numRuns: 500 },
    );
    // All three forms were tried, not only the easy one.
    expect([...forms.keys()].sort()).toEqual(['as given', '{"packed":0', '{"packed":1', '{"packed":2']);
    await store.close();
  });
}
