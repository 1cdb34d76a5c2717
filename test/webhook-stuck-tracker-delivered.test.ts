import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { mine, rpc } from './support/chain.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface Payload {
  type: string;
  data: {
    trackerId: string;
    from: string | null;
    to: string;
    event: string;
    detail: { stuck?: { reason: string; since: number; detail: string } } | null;
  };
}

// The whole service on a real anvil: a nonce gap held by the node becomes stuck after
// STUCK_AFTER_BLOCKS blocks, and the receiver hears of it, signed, before and after it moves on.
describe('webhooks: a real stuck transaction reaches the receiver as tracker.stuck', () => {
  let anvil: Anvil;
  let receiver: Receiver;
  let s: ServiceUnderTest;

  beforeAll(async () => {
    anvil = await startAnvil({ args: ['--chain-id', '31337'] });
    receiver = await startReceiver(() => 204);
    s = await startServiceUnderTest({
      CHAIN_LOCAL_RPC_URL: anvil.url,
      CHAIN_LOCAL_POLL_INTERVAL_MS: '50',
      STUCK_AFTER_BLOCKS: '2',
      REQUIRED_CONFIRMATIONS: '1',
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
    });
  });
  afterAll(async () => {
    await s?.stop();
    await receiver?.close();
    await anvil?.stop();
  });

  it('nonce gap: tracker.stuck with reason nonce_gap, signed; the earlier nonce sent, the change after it', async () => {
    const created = await s.call('POST', '/webhooks', { url: receiver.url });
    expect(created.status, created.text).toBe(201);
    const { secret } = created.json as { secret: string };

    const first = await signTransfer(31337, 0, { nonce: 0 });
    const second = await signTransfer(31337, 0, { nonce: 1 });
    await rpc(anvil.url, 'eth_sendRawTransaction', [second.raw]);
    const id = second.hash;
    expect((await s.call('POST', '/trackers', { txHash: id })).status).toBe(201);

    const forTracker = () =>
      receiver.received
        .filter((r) => r.status === 204)
        .map((r) => ({ request: r, payload: JSON.parse(r.body) as Payload }))
        .filter(({ payload }) => payload.data.trackerId === id);
    // One block at a time until the watcher judges it stuck and the delivery arrived.
    const stuck = await waitUntil(
      async () => {
        const found = forTracker().find(({ payload }) => payload.type === 'tracker.stuck');
        if (!found) await mine(anvil.url, 1);
        return found;
      },
      'a tracker.stuck delivery',
      30_000,
    );
    expect(stuck.payload.data).toMatchObject({ from: 'pending.seen', to: 'pending.stuck', event: 'TX_STUCK' });
    expect(stuck.payload.data.detail?.stuck).toMatchObject({
      reason: 'nonce_gap',
      detail: expect.stringMatching(/^nonce 1 waits for nonce 0 of 0x[0-9a-f]{40}, which no block has included$/),
    });
    const headers = {
      'webhook-id': stuck.request.id,
      'webhook-timestamp': stuck.request.timestamp,
      'webhook-signature': stuck.request.signature,
    };
    expect(new Webhook(secret).verify(stuck.request.body, headers)).toEqual(JSON.parse(stuck.request.body));
    expect(() =>
      new Webhook(`whsec_${Buffer.from('another key!').toString('base64')}`).verify(stuck.request.body, headers),
    ).toThrow();
    expect((await s.tracker(id)).stuck?.reason).toBe('nonce_gap');

    // The gap filled (automine mines both): the next delivery leaves stuck.
    await rpc(anvil.url, 'eth_sendRawTransaction', [first.raw]);
    const after = await waitUntil(
      () =>
        forTracker().find(({ payload }) => payload.data.from === 'pending.stuck' && payload.type !== 'tracker.stuck'),
      'the delivery of the change out of stuck',
      30_000,
    );
    expect(after.payload).toMatchObject({ type: 'tracker.state_changed', data: { event: 'TX_MINED' } });
    expect(after.payload.data.detail?.stuck).toBeUndefined();
    expect(
      new Webhook(secret).verify(after.request.body, {
        ...headers,
        'webhook-id': after.request.id,
        'webhook-timestamp': after.request.timestamp,
        'webhook-signature': after.request.signature,
      }),
    ).toBeTruthy();
    // In order: created, stuck, then out of it (a tracker's deliveries go one after the other).
    const types = forTracker().map(({ payload }) => payload.type);
    expect(types.slice(0, 3)).toEqual(['tracker.state_changed', 'tracker.stuck', 'tracker.state_changed']);
  });
});
