import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcRequestError } from '../src/chain/errors.js';
import { type Harness, interceptedTransport, mine, rpc, startHarness } from './support/chain.js';

describe('a tracker whose own lookup keeps failing', () => {
  let h: Harness;
  /** Hashes whose lookup calls the node answers with an error (the others are fine). */
  const poisoned = new Set<string>();
  beforeAll(async () => {
    h = await startHarness({
      watcherUrl: (anvil) => anvil.url,
      watcher: {
        transport: interceptedTransport(() => h.anvil.url, {
          async batch(calls, next) {
            const outcomes = await next(calls);
            return outcomes.map((outcome, i) =>
              poisoned.has(String(calls[i]!.params[0]))
                ? {
                    ok: false as const,
                    error: new RpcRequestError(calls[i]!.method, { code: -32000, message: 'injected' }),
                  }
                : outcome,
            );
          },
        }),
      },
    });
    await rpc(h.anvil.url, 'evm_setAutomine', [false]);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('crashes and is restarted by its supervisor; once the lookup works it confirms', async () => {
    const a = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
    await h.send(a.raw);
    poisoned.add(a.hash);
    await h.system.start(a.hash, { txHash: a.hash, confirmations: 1 });
    const restarted = await new Promise<number>((resolve) => {
      const off = h.system.subscribe((t) => {
        if (t.id === a.hash && t.restarts >= 1) {
          off();
          resolve(t.restarts);
        }
      });
    });
    expect(restarted).toBeGreaterThanOrEqual(1);
    expect(h.system.stats().crashes).toBeGreaterThanOrEqual(1);
    poisoned.delete(a.hash);
    await rpc(h.anvil.url, 'evm_mine');
    await mine(h.anvil.url);
    const confirmed = await h.waitForState(a.hash, 'confirmed');
    expect(confirmed.failure).toBeNull();
  });
});
