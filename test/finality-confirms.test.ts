import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, blockNumber, mine, rpc, startHarness, waitFor } from './support/chain.js';
import { recordingLogger } from './support/service.js';

// anvil reports its safe block `slots` blocks behind the head and its finalized block twice that:
// with --slots-in-an-epoch 2, a tx mined in block N is safe at head N + 2 and finalized at N + 4.
describe('confirmation by finality ("safe" / "finalized") on anvil', () => {
  const logger = recordingLogger();
  let h: Harness;
  let nonce = 0;
  beforeAll(async () => {
    h = await startHarness({ anvilArgs: ['--slots-in-an-epoch', '2'], watcher: { logger } });
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Mine one block and wait until the watcher has replayed it. */
  async function step(): Promise<number> {
    await mine(h.anvil.url);
    const head = await blockNumber(h.anvil.url);
    await h.watcher.waitForHead(head);
    return head;
  }

  it('"finalized" waits for the finalized block to reach its block, whatever the count; "safe" for the safe one', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: nonce++ });
    await h.system.start('final-1', { txHash: a.hash, confirmations: 'finalized' });
    await h.system.start('safe-1', { txHash: a.hash, confirmations: 'safe' });
    await h.system.start('count-1', { txHash: a.hash, confirmations: 2 });
    await h.send(a.raw);
    const mined = await h.waitForState('final-1', 'confirming');
    const n = mined.blockNumber!;
    expect(mined).toMatchObject({ finality: 'finalized', requiredConfirmations: null });
    expect(await blockNumber(h.anvil.url)).toBe(n);

    expect(await step()).toBe(n + 1);
    await h.waitForState('count-1', 'confirmed');
    expect(await step()).toBe(n + 2);
    const safe = await h.waitForState('safe-1', 'confirmed');
    expect(safe).toMatchObject({ finality: 'safe', confirmations: 3, blockNumber: n });
    expect(await step()).toBe(n + 3);
    // Four confirmations, more than the count tracker needed: a finality tracker is not counted.
    expect(h.system.peek('final-1')).toMatchObject({ state: 'confirming', confirmations: 4 });
    expect(await step()).toBe(n + 4);
    const finalized = await h.waitForState('final-1', 'confirmed');
    expect(finalized).toMatchObject({ confirmations: 5, blockNumber: n, blockHash: mined.blockHash, reorgs: 0 });
    expect(h.watcher.health().finalized).toBe(n);
    expect(h.states('final-1')).toEqual(['pending', 'confirming', 'confirmed']);
  });

  it('a reorg before finality sends the tracker back, and it confirms when its new block is finalized', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 2n, nonce: nonce++ });
    await h.system.start('final-2', { txHash: a.hash, confirmations: 'finalized' });
    await h.send(a.raw);
    const first = await h.waitForState('final-2', 'confirming');
    const n = first.blockNumber!;
    await step();
    await step();
    // Blocks n … n + 2 replaced; the tx goes into the second new block (n + 1).
    await rpc(h.anvil.url, 'anvil_reorg', [3, [[a.raw, 1]]]);
    const back = await waitFor('the tracker to follow the reorg', () => {
      const t = h.system.peek('final-2');
      return t?.state === 'confirming' && t.reorgs === 1 ? t : undefined;
    });
    expect(back.blockNumber).toBe(n + 1);
    expect(back.blockHash).not.toBe(first.blockHash);
    while ((await blockNumber(h.anvil.url)) < n + 5) await step();
    const confirmed = await h.waitForState('final-2', 'confirmed');
    const receipt = await h.provider.getTransactionReceipt(a.hash);
    expect(confirmed).toMatchObject({ reorgs: 1, blockNumber: n + 1, blockHash: receipt!.blockHash });
    expect(h.states('final-2')).toEqual(['pending', 'confirming', 'pending', 'confirming', 'confirmed']);
  });

  it('a reorg the node reports below its own finalized block is logged as an error and counted; confirmed stays confirmed', async () => {
    const before = h.watcher.health().reorgsBelowFinalized;
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 3n, nonce: nonce++ });
    await h.system.start('final-3', { txHash: a.hash, confirmations: 'finalized' });
    await h.send(a.raw);
    const n = (await h.waitForState('final-3', 'confirming')).blockNumber!;
    while ((await blockNumber(h.anvil.url)) < n + 4) await step();
    await h.waitForState('final-3', 'confirmed');
    expect(h.watcher.health().finalized).toBe(n);
    // Replaces block n too, which the node had called finalized.
    await rpc(h.anvil.url, 'anvil_reorg', [5, []]);
    await expect.poll(() => h.watcher.health().reorgsBelowFinalized, { timeout: 10_000 }).toBe(before + 1);
    expect(logger.lines.some((l) => l.level === 'error' && /at or below the finalized block/.test(l.msg ?? ''))).toBe(
      true,
    );
    expect((await h.system.get('final-3'))?.state).toBe('confirmed');
  });
});
