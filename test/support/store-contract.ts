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
import { DEFAULT_SHARD_COUNT, shardOf } from '../../src/runtime/shard.js';
import { checkSnapshot } from '../../src/runtime/snapshot-compat.js';
import { topState } from '../../src/runtime/tracker-view.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { HistoryEntry, SnapshotStore, TrackerChange, TrackerCount, TrackerRecord } from '../../src/store/types.js';
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

const change = (from: string | null, to: string, event: string, at: number): TrackerChange => ({
  from,
  to,
  event,
  at,
  blockNumber: null,
  blockHash: null,
  restarts: 0,
  reorgs: 0,
  detail: null,
});

/** A record with a change, as the runtime writes it: the change log gets a row. */
const changed = (id: string, state: TrackerRecord['state'], at: number, c?: TrackerChange): TrackerRecord => ({
  ...record(id, state, at, 1),
  change: c,
});

async function allHistory(store: SnapshotStore, id: string, limit: number): Promise<HistoryEntry[]> {
  const items: HistoryEntry[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.history(id, { limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
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

  it('loadLive of some shards hands out exactly the live rows of those shards, at any shard count, in batches', async () => {
    const store = await factory.open('live-shards');
    const states = ['zzz', ...TRACKER_STATE_NAMES] as TrackerRecord['state'][];
    const ids = Array.from({ length: 600 }, (_, i) => `t_${i}`);
    ids.forEach((id, i) => store.write(record(id, states[i % states.length]!, i)));
    await store.flush();
    // Writes not durable yet are read too; some move a tracker to a final state or back.
    ids.slice(0, 40).forEach((id, i) => store.write(record(id, states[(i * 7) % states.length]!, 1000 + i)));
    const stateOf = new Map<string, string>();
    for (const id of ids) stateOf.set(id, (await store.get(id))!.state);
    const cases: Array<{ shards: number[]; shardCount?: number }> = [
      // At the default count: the shards of a few ids, and one that may have none.
      { shards: [shardOf('t_1', DEFAULT_SHARD_COUNT), shardOf('t_2', DEFAULT_SHARD_COUNT), 1023] },
      // A count that divides the default: several values of the column each.
      { shards: [0, 3], shardCount: 8 },
      // One that does not: every live row read, then told apart.
      { shards: [1], shardCount: 3 },
      // Every shard: read as without shards.
      { shards: Array.from({ length: 8 }, (_, i) => i), shardCount: 8 },
      { shards: [] },
    ];
    for (const { shards, shardCount } of cases) {
      const expected = ids
        .filter((id) => shards.includes(shardOf(id, shardCount ?? DEFAULT_SHARD_COUNT)))
        .filter((id) => !FINAL_STATE_NAMES.includes(stateOf.get(id) as TrackerRecord['state']))
        .sort();
      if (shards.length > 0) expect(expected.length).toBeGreaterThan(0);
      const loaded: string[] = [];
      for await (const batch of store.loadLive(7, { shards, ...(shardCount ? { shardCount } : {}) })) {
        expect(batch.length).toBeGreaterThan(0);
        expect(batch.length).toBeLessThanOrEqual(7);
        for (const r of batch) expect(r).toEqual(await store.get(r.id));
        loaded.push(...batch.map((r) => r.id));
      }
      expect(loaded.sort(), JSON.stringify({ shards, shardCount })).toEqual(expected);
    }
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

  // The change log (store schema 3).
  it('keeps every change of several writes of one tracker in one commit (not coalesced), in seq order, readable before and after the commit, paged', async () => {
    const store = await factory.open('history');
    store.write(changed('a', 'pending', 10, change(null, 'pending.unseen', 'START', 10)));
    store.write(changed('b', 'pending', 11, change(null, 'pending.unseen', 'START', 11)));
    store.write(changed('a', 'pending', 12, change('pending.unseen', 'pending.seen', 'TX_SEEN', 12)));
    store.write(changed('a', 'confirming', 13, change('pending.seen', 'confirming', 'TX_MINED', 13)));
    // A write that is not a change adds no row.
    store.write(changed('a', 'confirming', 14));
    store.write(changed('a', 'confirmed', 15, change('confirming', 'confirmed', 'NEW_HEAD', 15)));
    const expected = ['START', 'TX_SEEN', 'TX_MINED', 'NEW_HEAD'];
    expect((await allHistory(store, 'a', 100)).map((e) => e.event)).toEqual(expected);
    await store.flush();
    const after = await allHistory(store, 'a', 3);
    expect(after.map((e) => e.event)).toEqual(expected);
    expect(after.map((e) => e.to)).toEqual(['pending.unseen', 'pending.seen', 'confirming', 'confirmed']);
    expect(after.every((e) => e.trackerId === 'a')).toBe(true);
    const seqs = after.map((e) => e.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(4);
    expect((await allHistory(store, 'a', 1)).map((e) => e.seq)).toEqual(seqs);
    expect((await allHistory(store, 'b', 10)).map((e) => e.event)).toEqual(['START']);
    expect((await store.history('nobody', { limit: 10 })).items).toEqual([]);
    expect((await store.get('a'))!.change).toBeUndefined();
    // Pages written while a page was read go on after it.
    store.write(changed('a', 'confirmed', 16, change('confirmed', 'confirmed', 'STOP', 16)));
    const page = await store.history('a', { limit: 4, cursor: (await store.history('a', { limit: 3 })).nextCursor });
    expect(page.items.map((e) => e.event)).toEqual(['NEW_HEAD', 'STOP']);
    // Every column comes back as written.
    const detail = { failure: { reason: 'replaced', detail: 'replaced by 0x…' }, replacedBy: hashOf(8) };
    const full = { ...change('pending.seen', 'failed', 'TX_REPLACED', 20), blockNumber: 7, blockHash: hashOf(7) };
    store.write(changed('x', 'failed', 20, { ...full, restarts: 2, reorgs: 1, detail }));
    await store.close();
    const reader = await factory.open('history');
    const [entry] = (await reader.history('x', { limit: 1 })).items;
    expect(entry).toEqual({ seq: entry!.seq, trackerId: 'x', ...full, restarts: 2, reorgs: 1, detail });
    await reader.close();
  });

  it('prunes the history of trackers that ended before the cutoff only; seqs are never handed out again', async () => {
    const store = await factory.open('prune');
    const write = (id: string, state: TrackerRecord['state'], at: number, from: string | null) =>
      store.write(
        changed(
          id,
          state,
          at,
          change(from, state === 'pending' ? 'pending.unseen' : state, from ? 'TX_MINED' : 'START', at),
        ),
      );
    write('live', 'pending', 10, null);
    write('old-end', 'pending', 20, null);
    write('old-end', 'confirmed', 30, 'pending.unseen');
    write('live', 'confirming', 40, 'pending.unseen');
    write('new-end', 'pending', 50, null);
    write('new-end', 'failed', 900, 'pending.unseen');
    await store.flush();
    const events = async (id: string) => (await store.history(id, { limit: 100 })).items.map((e) => e.event);
    const newest = Math.max(...(await allHistory(store, 'new-end', 10)).map((e) => e.seq));
    expect(await store.pruneHistory(500, 1000)).toBe(2);
    expect(await events('old-end')).toEqual([]);
    expect(await events('live')).toEqual(['START', 'TX_MINED']);
    expect(await events('new-end')).toEqual(['START', 'TX_MINED']);
    for (const id of ['live', 'old-end', 'new-end']) expect(await store.get(id)).toBeDefined();
    expect(await store.pruneHistory(500, 1000)).toBe(0);
    expect(await store.pruneHistory(1000, 1000)).toBe(2);
    expect(await events('new-end')).toEqual([]);
    expect(await events('live')).toEqual(['START', 'TX_MINED']);
    await store.close();
    // The newest rows are gone; a store opened again numbers on past them.
    const again = await factory.open('prune');
    again.write(changed('later', 'pending', 2000, change(null, 'pending.unseen', 'START', 2000)));
    await again.flush();
    expect((await again.history('later', { limit: 1 })).items[0]!.seq).toBeGreaterThan(newest);
    await again.close();
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
