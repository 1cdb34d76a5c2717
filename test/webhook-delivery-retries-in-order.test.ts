import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Anvil, startAnvil } from '../src/chain/anvil.js';
import { eventTypeOf } from '../src/webhooks/matching.js';
import { mine, rpc } from './support/chain.js';
import { type ServiceUnderTest, signTransfer, startServiceUnderTest } from './support/service.js';
import { waitUntil } from './support/wait.js';
import { type Receiver, startReceiver } from './support/webhook-receiver.js';

interface HistoryItem {
  seq: number;
  from: string | null;
  to: string;
  event: string;
}

// A real receiver that fails the first 3 requests, then accepts; the real service on a real anvil.
describe('webhooks: a receiver failing the first deliveries gets every event, in order per tracker, signed', () => {
  let anvil: Anvil;
  let receiver: Receiver;
  let s: ServiceUnderTest;
  let secret: string;
  let endpointId: string;
  const ids: string[] = [];

  beforeAll(async () => {
    anvil = await startAnvil({ args: ['--chain-id', '31337'] });
    receiver = await startReceiver((n) => (n < 3 ? 500 : 204));
    s = await startServiceUnderTest({
      CHAIN_LOCAL_RPC_URL: anvil.url,
      CHAIN_LOCAL_POLL_INTERVAL_MS: '50',
      REQUIRED_CONFIRMATIONS: '2',
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      WEBHOOK_RETRY_SCHEDULE: '0,100,200,400,800,1600',
    });
  });
  afterAll(async () => {
    await s?.stop();
    await receiver?.close();
    await anvil?.stop();
  });

  it('creates an endpoint: 201 with a whsec_ secret shown once', async () => {
    const created = await s.call('POST', '/webhooks', { url: receiver.url });
    expect(created.status, created.text).toBe(201);
    const body = created.json as { id: string; secret: string; events: string[]; enabled: boolean };
    expect(body.secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    expect(body.events).toEqual(['tracker.state_changed', 'tracker.stuck']);
    expect(body.enabled).toBe(true);
    secret = body.secret;
    endpointId = body.id;
    const read = (await s.call('GET', `/webhooks/${endpointId}`)).json as Record<string, unknown>;
    expect(read.secret).toBeUndefined();
    expect(read.url).toBe(receiver.url);
  });

  it('delivers every state change of three trackers, in order per tracker, after failed first attempts', async () => {
    for (let i = 0; i < 3; i++) {
      const { raw, hash } = await signTransfer(31337, i, { nonce: 0 });
      const started = await s.call('POST', '/trackers', { txHash: hash });
      expect(started.status, started.text).toBe(201);
      ids.push(hash);
      await rpc(anvil.url, 'eth_sendRawTransaction', [raw]);
    }
    // Blocks until every tracker is confirmed (automine mined each transfer in its own block).
    for (const id of ids) {
      await waitUntil(
        async () => {
          await mine(anvil.url, 1);
          return (await s.tracker(id)).state === 'confirmed';
        },
        `${id} confirmed`,
        30_000,
      );
    }
    // What the change log says each endpoint must get: every state change (head-only ones excluded).
    const expected = new Map<string, number[]>();
    for (const id of ids) {
      const history = (await s.call('GET', `/trackers/${id}/history?limit=1000`)).json as { items: HistoryItem[] };
      const wanted = history.items.filter(
        (h) => eventTypeOf({ fromState: h.from, toState: h.to, event: h.event }) !== 'tracker.updated',
      );
      expect(wanted.map((h) => h.to.split('.')[0])).toEqual(['pending', 'confirming', 'confirmed']);
      expected.set(
        id,
        wanted.map((h) => h.seq),
      );
    }
    const all = [...expected.values()].flat();
    await waitUntil(
      () => all.every((seq) => receiver.accepted().has(`msg_${seq}`)),
      'every state change accepted by the receiver',
      30_000,
    );

    // The first three requests failed and were sent again with the same webhook-id and body.
    expect(receiver.received.slice(0, 3).map((r) => r.status)).toEqual([500, 500, 500]);
    for (const failed of receiver.received.slice(0, 3)) {
      const again = receiver.received.filter((r) => r.id === failed.id && r.status === 204);
      expect(again.length, `${failed.id} sent again and accepted`).toBeGreaterThan(0);
      expect(again[0]!.body).toBe(failed.body);
    }
    // Every request verifies with the standardwebhooks package, and names only changes of the log.
    const wh = new Webhook(secret);
    for (const r of receiver.received) {
      const payload = wh.verify(r.body, {
        'webhook-id': r.id,
        'webhook-timestamp': r.timestamp,
        'webhook-signature': r.signature,
      }) as { data: { seq: number } };
      expect(all).toContain(payload.data.seq);
      expect(r.id).toBe(`msg_${payload.data.seq}`);
    }
    // Per tracker, requests (retries included) never go back in the log: the next waits for the previous.
    for (const id of ids) {
      const seqs = receiver.received
        .map((r) => JSON.parse(r.body) as { data: { seq: number; trackerId: string } })
        .filter((p) => p.data.trackerId === id)
        .map((p) => p.data.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect([...new Set(seqs)]).toEqual(expected.get(id));
    }
  });

  it('lists deliveries with each attempt: status code, latency, error; by status, paged', async () => {
    const page = (await s.call('GET', `/webhooks/${endpointId}/deliveries?status=succeeded&limit=2`)).json as {
      items: Array<{
        status: string;
        webhookId: string;
        attempts: Array<{ statusCode: number | null; latencyMs: number; error: string | null }>;
      }>;
      nextCursor: string | null;
    };
    expect(page.items).toHaveLength(2);
    expect(page.nextCursor).not.toBeNull();
    const everything: Array<{ attempts: Array<{ statusCode: number | null; error: string | null }> }> = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const next = (
        await s.call('GET', `/webhooks/${endpointId}/deliveries?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ).json as { items: typeof everything; nextCursor: string | null };
      everything.push(...next.items);
      cursor = next.nextCursor;
    }
    expect(everything).toHaveLength(9);
    const attempts = everything.flatMap((d) => d.attempts);
    expect(attempts.filter((a) => a.statusCode === 500)).toHaveLength(3);
    expect(attempts.find((a) => a.statusCode === 500)!.error).toMatch(/^HTTP 500/);
    const metrics = (await s.call('GET', '/metrics')).text;
    expect(metrics).toMatch(/tx_tracker_webhook_attempts_total\{outcome="retrying"\} 3/);
    expect(metrics).toMatch(/tx_tracker_webhook_attempts_total\{outcome="succeeded"\} 9/);
    expect(metrics).toMatch(/tx_tracker_webhook_outbox_depth 0/);
    expect(metrics).toMatch(/tx_tracker_webhook_attempt_seconds_count 12/);
  });
});
