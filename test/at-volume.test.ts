import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINAL_STATE_NAMES } from '../machines/tracker.machine.js';
import { type Harness, mine, rpc, startHarness, waitFor } from './support/chain.js';

const TRANSFERS = 4_500;
const REVERTS = 400;
const STOPPED = 100;
const CONFIRMATIONS = 2;

// 5,000 real transactions on anvil: correctness at volume. Every tracker reaches the right final
// state, and afterwards nothing of a finished tracker is left anywhere: not in the registry, not in
// any shard's children, not in a persistence subscription, not in the chain watcher's tracked set.
describe('5,000 trackers on anvil', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('all reach the right final state and leave nothing behind', { timeout: 240_000 }, async () => {
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
    const senders = h.wallets.length;
    const signed: Array<{ raw: string; hash: string; kind: 'transfer' | 'revert' | 'stop' }> = [];
    const nonces = new Array<number>(senders).fill(0);
    const total = TRANSFERS + REVERTS + STOPPED;
    for (let i = 0; i < total; i++) {
      const sender = i % senders;
      const kind = i < TRANSFERS ? 'transfer' : i < TRANSFERS + REVERTS ? 'revert' : 'stop';
      const tx =
        kind === 'revert'
          ? { data: '0x60006000fd', gasLimit: 60_000n, nonce: nonces[sender]! }
          : { to: h.wallets[(sender + 1) % senders]!.address, value: BigInt(i + 1), nonce: nonces[sender]! };
      nonces[sender]!++;
      signed.push({ ...(await h.sign(sender, tx)), kind });
    }

    for (let i = 0; i < signed.length; i += 1000) {
      const results = await h.system.startMany(
        signed.slice(i, i + 1000).map((s) => ({ txHash: s.hash, confirmations: CONFIRMATIONS })),
      );
      expect(results.every((r) => r.status === 'started')).toBe(true);
    }
    expect(h.system.stats().live).toBe(total);
    for (const s of signed) await h.send(s.raw);
    for (const s of signed.filter((x) => x.kind === 'stop'))
      expect((await h.system.stop(s.hash))?.state).toBe('stopped');

    // Mine until every tracked transfer and revert is in a block, then the confirmations.
    await waitFor(
      'every tx to be mined',
      async () => {
        await mine(h.anvil.url);
        const pending = Number((await rpc<{ pending: string }>(h.anvil.url, 'txpool_status')).pending);
        return pending === 0;
      },
      120_000,
    );
    await mine(h.anvil.url, CONFIRMATIONS);
    await waitFor('every tracker to be final', () => h.system.stats().live === 0, 120_000);

    const byKind = { transfer: 0, revert: 0, stop: 0 };
    for (const s of signed) {
      const t = (await h.system.get(s.hash))!;
      expect(FINAL_STATE_NAMES).toContain(t.state);
      if (s.kind === 'transfer') expect(t).toMatchObject({ state: 'confirmed', confirmations: CONFIRMATIONS });
      if (s.kind === 'revert') expect(t).toMatchObject({ state: 'failed', failure: { reason: 'reverted' } });
      if (s.kind === 'stop') expect(t.state).toBe('stopped');
      byKind[s.kind]++;
    }
    expect(byKind).toEqual({ transfer: TRANSFERS, revert: REVERTS, stop: STOPPED });

    // Nothing of a finished tracker is left: registry, shard children, subscriptions, watcher.
    expect(h.system.stats()).toMatchObject({ live: 0, restarting: 0, shardChildren: 0, subscriptions: 0, crashes: 0 });
    expect(h.watcher.health()).toMatchObject({ tracked: 0, pendingLookups: 0 });
  });
});
