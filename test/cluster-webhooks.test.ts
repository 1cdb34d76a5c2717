import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { mine, rpc } from './support/chain.js';
import {
  type ClusterHarness,
  type Instance,
  call,
  signTransfers,
  startClusterHarness,
  waitForBalance,
} from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';
import { type Received, type Receiver, startReceiver } from './support/webhook-receiver.js';

const TRACKERS = 24;

interface Payload {
  type: string;
  data: { seq: number; trackerId: string; to: string };
}

const payloadOf = (r: Received): Payload => JSON.parse(r.body) as Payload;

describeWithPostgres('webhooks on two instances sharing one PostgreSQL', () => {
  let cluster: ClusterHarness;
  let receiver: Receiver;
  /** While true the receiver answers 503: deliveries stay pending, retrying. */
  let refusing = false;

  beforeAll(async () => {
    receiver = await startReceiver(() => (refusing ? 503 : 204));
    cluster = await startClusterHarness({
      instances: 2,
      env: {
        WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
        // Enough attempts to outlast a takeover (lease TTL + a heartbeat) while the receiver refuses.
        WEBHOOK_RETRY_SCHEDULE: Array.from({ length: 40 }, (_, i) => (i === 0 ? '0' : '500ms')).join(','),
      },
    });
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
    await receiver?.close();
  });

  /** Trackers started through both instances, their transactions sent and confirmed. */
  async function confirmedTrackers(
    prefix: string,
    instances: Instance[],
    txs: Array<{ raw: string; hash: string }>,
  ): Promise<string[]> {
    const ids = txs.map((_, i) => `${prefix}-${i}`);
    for (const [i, { hash }] of txs.entries()) {
      const { status } = await call(instances[i % instances.length]!.api, 'POST', '/trackers', {
        id: ids[i],
        txHash: hash,
      });
      expect(status).toBe(201);
    }
    for (const { raw } of txs) await rpc(cluster.anvil.url, 'eth_sendRawTransaction', [raw]);
    await waitUntil(
      async () => {
        await mine(cluster.anvil.url, 1);
        const states = await cluster.query<{ n: string }>(
          "SELECT count(*) AS n FROM trackers WHERE id = ANY($1::text[]) AND state = 'confirmed'",
          [ids],
        );
        return Number(states[0]!.n) === ids.length || undefined;
      },
      'the trackers to be confirmed',
      30_000,
    );
    return ids;
  }

  /** The webhook-ids the outbox holds for these trackers, and whether each succeeded. */
  const outbox = (ids: string[]) =>
    cluster.query<{ seq: number; tracker_id: string; status: string }>(
      'SELECT seq::int AS seq, tracker_id, status FROM webhook_deliveries WHERE tracker_id = ANY($1::text[]) ORDER BY id',
      [ids],
    );

  /** Every delivery of these trackers succeeded and was accepted by the receiver. */
  const allDelivered = (ids: string[], timeoutMs: number) =>
    waitUntil(
      async () => {
        const rows = await outbox(ids);
        const accepted = receiver.accepted();
        return rows.length > 0 && rows.every((row) => row.status === 'succeeded' && accepted.has(`msg_${row.seq}`))
          ? rows
          : undefined;
      },
      'every delivery to be accepted',
      timeoutMs,
    );

  /** Per tracker, the requests (retries included) never go back in its change log. */
  function expectInOrderPerTracker(ids: string[]): void {
    for (const id of ids) {
      const seqs = receiver.received
        .map(payloadOf)
        .filter((p) => p.data.trackerId === id)
        .map((p) => p.data.seq);
      expect(seqs.length, id).toBeGreaterThan(0);
      expect(seqs, id).toEqual([...seqs].sort((a, b) => a - b));
    }
  }

  it('sends every change once, from the instance running its tracker, in order, signed; after a SIGKILL the survivor sends the dead one’s', async () => {
    const views = await waitForBalance(cluster);
    const [a, b] = cluster.instances as [Instance, Instance];
    const created = await call(a.api, 'POST', '/webhooks', {
      url: receiver.url,
      events: ['tracker.state_changed', 'tracker.stuck', 'tracker.updated'],
    });
    expect(created.status).toBe(201);
    const { id: endpointId, secret } = created.body as { id: string; secret: string };
    // The other instance answers for it at once (it reads the database).
    expect((await call(b.api, 'GET', `/webhooks/${endpointId}`)).status).toBe(200);

    // Normal path: every delivery exactly once, whichever instance runs the tracker.
    const txs = await signTransfers(cluster.anvil.url, TRACKERS * 2);
    const first = await confirmedTrackers('first', [a, b], txs.slice(0, TRACKERS));
    const ownerOf = (id: string) => views.find((view) => view.shards.includes(shardOf(id, 1024)))!.instanceId;
    expect(new Set(first.map(ownerOf))).toEqual(new Set(['i1', 'i2']));
    const rows = await allDelivered(first, 30_000);
    // Each tracker: created, mined (confirming), confirmed, and any head-only change between.
    expect(rows.length).toBeGreaterThanOrEqual(TRACKERS * 3);
    const sent = new Map<string, number>();
    for (const r of receiver.received) sent.set(r.id, (sent.get(r.id) ?? 0) + 1);
    expect(
      [...sent.values()].filter((n) => n !== 1),
      'webhook-ids sent more than once',
    ).toEqual([]);
    expect(sent.size).toBe(rows.length);
    expectInOrderPerTracker(first);
    const wh = new Webhook(secret);
    for (const r of receiver.received) {
      const verified = wh.verify(r.body, {
        'webhook-id': r.id,
        'webhook-timestamp': r.timestamp,
        'webhook-signature': r.signature,
      }) as Payload;
      expect(r.id).toBe(`msg_${verified.data.seq}`);
    }
    const listed = await call(b.api, 'GET', `/webhooks/${endpointId}/deliveries?limit=5`);
    expect(listed.status).toBe(200);
    expect((listed.body.items as Array<{ status: string }>).map((d) => d.status)).toEqual(Array(5).fill('succeeded'));

    // The receiver refuses: the next trackers' deliveries stay pending on both instances, retrying.
    refusing = true;
    const second = await confirmedTrackers('second', [a, b], txs.slice(TRACKERS));
    const victimsIds = second.filter((id) => ownerOf(id) === 'i2');
    expect(victimsIds.length).toBeGreaterThan(0);
    await waitUntil(
      () => victimsIds.every((id) => receiver.received.some((r) => payloadOf(r).data.trackerId === id)) || undefined,
      'the victim to have tried its trackers’ deliveries',
      30_000,
    );
    b.signal('SIGKILL');
    await b.process.exited;
    const killedAt = Date.now();
    refusing = false;

    // The survivor takes the dead instance's shards over and sends what it left pending.
    await allDelivered([...first, ...second], 60_000);
    expectInOrderPerTracker(second);
    const accepted = receiver.received.filter((r) => r.status === 204 && r.at >= killedAt);
    const acceptedTrackers = new Set(accepted.map((r) => payloadOf(r).data.trackerId));
    for (const id of victimsIds) expect(acceptedTrackers.has(id), id).toBe(true);
    for (const r of receiver.received) {
      expect(() =>
        wh.verify(r.body, { 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature }),
      ).not.toThrow();
    }
  }, 180_000);
});
