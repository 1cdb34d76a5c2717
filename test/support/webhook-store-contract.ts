import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SnapshotStore, TrackerRecord } from '../../src/store/types.js';
import type { AttemptOutcome, DueDelivery, WebhookEndpoint, WebhookStore } from '../../src/webhooks/types.js';
import { hashOf } from '../helpers.js';

/** A store with webhook tables, empty. */
export type WebhookTestStore = SnapshotStore & { readonly webhooks: WebhookStore };

/** How the contract reaches one kind of store. */
export interface WebhookStoreFactory {
  /** A new, empty store. */
  open(): Promise<WebhookTestStore>;
  /** Remove what the factory made. */
  close(): Promise<void>;
}

export const endpointOf = (id: string, overrides: Partial<WebhookEndpoint> = {}): WebhookEndpoint => ({
  id,
  url: 'http://127.0.0.1:1/hook',
  events: ['tracker.state_changed', 'tracker.stuck'],
  trackers: null,
  secrets: [{ secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', expiresAt: null }],
  enabled: true,
  disabledReason: null,
  failingSince: null,
  concurrency: null,
  timeoutMs: null,
  createdAt: 1_000,
  updatedAt: 1_000,
  ...overrides,
});

/** A tracker's change as the runtime writes it: its row and its change-log entry. */
export const changed = (
  id: string,
  from: string | null,
  to: string,
  at: number,
  extra: Partial<NonNullable<TrackerRecord['change']>> = {},
): TrackerRecord => ({
  id,
  txHash: hashOf(at),
  state: to.split('.')[0] as TrackerRecord['state'],
  version: 3,
  snapshot: { at },
  restarts: 0,
  createdAt: 1,
  updatedAt: at,
  change: {
    from,
    to,
    event: 'TEST',
    at,
    blockNumber: null,
    blockHash: null,
    restarts: 0,
    reorgs: 0,
    detail: null,
    ...extra,
  },
});

const succeeded = (d: DueDelivery, at: number): AttemptOutcome => ({
  deliveryId: d.id,
  attempt: { attempt: d.attempts + 1, at, statusCode: 204, latencyMs: 3, error: null },
  status: 'succeeded',
  tries: d.tries + 1,
  nextAttemptAt: at,
});

const retrying = (d: DueDelivery, at: number, next: number): AttemptOutcome => ({
  deliveryId: d.id,
  attempt: { attempt: d.attempts + 1, at, statusCode: 500, latencyMs: 7, error: 'HTTP 500' },
  status: 'pending',
  tries: d.tries + 1,
  nextAttemptAt: next,
});

const NOW = 1_764_000_000_000;

/**
 * Register the `WebhookStore` contract's tests, inside the caller's `describe`: what the dispatcher
 * and the API rely on, the same on every store (memory, SQLite, PostgreSQL).
 *
 * @example
 * describe('SQLite keeps the WebhookStore contract', () => webhookStoreContract(async () => sqliteFactory()));
 */
export function webhookStoreContract(makeFactory: () => Promise<WebhookStoreFactory>): void {
  let factory: WebhookStoreFactory;
  const open: WebhookTestStore[] = [];
  const fresh = async (): Promise<WebhookTestStore> => {
    const store = await factory.open();
    open.push(store);
    return store;
  };
  beforeAll(async () => {
    factory = await makeFactory();
  });
  afterAll(async () => {
    for (const store of open) await store.close().catch(() => undefined);
    await factory?.close();
  });

  it('keeps endpoints as given: created, read, listed in creation order, updated, deleted with their deliveries', async () => {
    const store = await fresh();
    const hooks = store.webhooks;
    const b = endpointOf('ep_b', { createdAt: 2_000, trackers: ['order-*', 'x'], concurrency: 2, timeoutMs: 500 });
    await hooks.createEndpoint(b);
    await hooks.createEndpoint(endpointOf('ep_a'));
    expect(await hooks.getEndpoint('ep_b')).toEqual(b);
    expect(await hooks.getEndpoint('ep_nope')).toBeUndefined();
    expect((await hooks.listEndpoints()).map((e) => e.id)).toEqual(['ep_a', 'ep_b']);
    const rotated: WebhookEndpoint = {
      ...b,
      url: 'http://127.0.0.1:2/other',
      events: ['tracker.updated'],
      trackers: null,
      secrets: [
        { secret: 'whsec_new', expiresAt: null },
        { secret: b.secrets[0]!.secret, expiresAt: NOW },
      ],
      enabled: false,
      disabledReason: 'disabled by PATCH',
      concurrency: null,
      updatedAt: 3_000,
    };
    await hooks.updateEndpoint(rotated);
    expect(await hooks.getEndpoint('ep_b')).toEqual(rotated);

    store.write(changed('t1', null, 'pending.unseen', NOW));
    await store.flush();
    expect((await hooks.listDeliveries('ep_a', { limit: 10 })).items).toHaveLength(1);
    expect(await hooks.deleteEndpoint('ep_a')).toBe(true);
    expect(await hooks.deleteEndpoint('ep_a')).toBe(false);
    expect(await hooks.getEndpoint('ep_a')).toBeUndefined();
    expect((await hooks.listDeliveries('ep_a', { limit: 10 })).items).toEqual([]);
    expect((await hooks.outboxStats()).pending).toBe(0);
  });

  it('writes a delivery of each change for each enabled endpoint that wants it, in the commit of the change, carrying the change', async () => {
    const store = await fresh();
    const hooks = store.webhooks;
    await hooks.createEndpoint(endpointOf('ep_all', { events: ['tracker.state_changed', 'tracker.updated'] }));
    await hooks.createEndpoint(endpointOf('ep_orders', { trackers: ['order-*'] }));
    await hooks.createEndpoint(endpointOf('ep_off', { enabled: false }));
    let told = 0;
    const stop = hooks.onCommit(() => told++);
    const hash = hashOf(77);
    store.write(
      changed('order-1', 'pending.seen', 'confirming', NOW, {
        event: 'TX_MINED',
        blockNumber: 12,
        blockHash: hash,
        restarts: 1,
        reorgs: 2,
        detail: { confirmations: 1 },
      }),
    );
    // Head-only (same top-level state): only for the endpoint that asked for tracker.updated.
    store.write(changed('order-1', 'confirming', 'confirming', NOW + 1, { event: 'NEW_HEAD' }));
    store.write(changed('other', null, 'pending.unseen', NOW + 2, { event: 'START' }));
    await store.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(told).toBeGreaterThan(0);
    stop();

    const all = await hooks.dueDeliveries('ep_all', NOW + 10, 10, new Set());
    // One per tracker: the second of order-1 waits for the first.
    expect(all.map((d) => [d.trackerId, d.type])).toEqual([
      ['order-1', 'tracker.state_changed'],
      ['other', 'tracker.state_changed'],
    ]);
    const [first] = all;
    expect(first).toMatchObject({
      endpointId: 'ep_all',
      status: 'pending',
      tries: 0,
      attempts: 0,
      nextAttemptAt: NOW,
      createdAt: NOW,
    });
    expect(first!.change).toEqual({
      seq: first!.seq,
      trackerId: 'order-1',
      at: NOW,
      fromState: 'pending.seen',
      toState: 'confirming',
      event: 'TX_MINED',
      blockNumber: 12,
      blockHash: hash,
      restarts: 1,
      reorgs: 2,
      detail: JSON.stringify({ confirmations: 1 }),
    });
    const orders = (await hooks.listDeliveries('ep_orders', { limit: 10 })).items;
    expect(orders.map((d) => [d.trackerId, d.type])).toEqual([['order-1', 'tracker.state_changed']]);
    expect((await hooks.listDeliveries('ep_off', { limit: 10 })).items).toEqual([]);
    const listed = (await hooks.listDeliveries('ep_all', { limit: 10 })).items;
    expect(listed.map((d) => d.type)).toEqual(['tracker.state_changed', 'tracker.updated', 'tracker.state_changed']);
    expect(listed[2]!.seq).toBeLessThan(listed[1]!.seq);
    expect(await hooks.outboxStats()).toEqual({ pending: 4, oldestPendingAt: NOW });
  });

  it("hands out each tracker's oldest pending delivery only, oldest first, not busy, due by now; records attempts; the next goes once one succeeds", async () => {
    const store = await fresh();
    const hooks = store.webhooks;
    await hooks.createEndpoint(endpointOf('ep'));
    store.write(changed('a', null, 'pending.unseen', NOW));
    store.write(changed('b', null, 'pending.unseen', NOW + 1));
    store.write(changed('a', 'pending.unseen', 'confirming', NOW + 2));
    store.write(changed('c', null, 'pending.unseen', NOW + 3));
    await store.flush();
    const due = await hooks.dueDeliveries('ep', NOW + 10, 10, new Set());
    expect(due.map((d) => d.trackerId)).toEqual(['a', 'b', 'c']);
    const [a1, b1, c1] = due as [DueDelivery, DueDelivery, DueDelivery];
    expect((await hooks.dueDeliveries('ep', NOW + 10, 2, new Set())).map((d) => d.id)).toEqual([a1.id, b1.id]);
    expect((await hooks.dueDeliveries('ep', NOW + 10, 10, new Set([b1.id]))).map((d) => d.id)).toEqual([a1.id, c1.id]);
    expect(await hooks.dueDeliveries('ep', NOW - 1, 10, new Set())).toEqual([]);

    // a's first succeeds, b's fails and waits for its retry time, with the endpoint failing.
    await hooks.recordAttempts([
      succeeded(a1, NOW + 20),
      {
        ...retrying(b1, NOW + 21, NOW + 5_000),
        endpoint: { id: 'ep', failingSince: NOW + 21, disabledReason: null },
      },
    ]);
    const next = await hooks.dueDeliveries('ep', NOW + 30, 10, new Set());
    expect(next.map((d) => [d.trackerId, d.change.toState])).toEqual([
      ['a', 'confirming'],
      ['c', 'pending.unseen'],
    ]);
    expect(await hooks.nextAttemptAt('ep')).toBe(NOW + 2);
    expect((await hooks.getEndpoint('ep'))!.failingSince).toBe(NOW + 21);
    const again = await hooks.dueDeliveries('ep', NOW + 5_000, 10, new Set());
    const b2 = again.find((d) => d.id === b1.id)!;
    expect(b2).toMatchObject({ tries: 1, attempts: 1, nextAttemptAt: NOW + 5_000, status: 'pending' });

    const got = await hooks.getDelivery('ep', b1.id);
    expect(got).toMatchObject({ id: b1.id, trackerId: 'b', status: 'pending', attempts: 1 });
    expect(await hooks.getDelivery('ep_other', b1.id)).toBeUndefined();
    const page = (await hooks.listDeliveries('ep', { limit: 10 })).items;
    const logOf = (id: number) => page.find((d) => d.id === id)!.attemptLog;
    expect(logOf(a1.id)).toEqual([{ attempt: 1, at: NOW + 20, statusCode: 204, latencyMs: 3, error: null }]);
    expect(logOf(b1.id)).toEqual([{ attempt: 1, at: NOW + 21, statusCode: 500, latencyMs: 7, error: 'HTTP 500' }]);
    expect(page.find((d) => d.id === a1.id)!.status).toBe('succeeded');
  });

  it('fails a delivery for good, retries it by hand with a new schedule, and disables the endpoint an outcome says to (it stays so)', async () => {
    const store = await fresh();
    const hooks = store.webhooks;
    await hooks.createEndpoint(endpointOf('ep'));
    store.write(changed('a', null, 'pending.unseen', NOW));
    store.write(changed('a', 'pending.unseen', 'confirming', NOW + 1));
    await store.flush();
    const [a1] = await hooks.dueDeliveries('ep', NOW + 10, 10, new Set());
    await hooks.recordAttempts([{ ...retrying(a1!, NOW + 20, NOW + 20), status: 'failed' }]);
    // A failed delivery no longer holds its tracker's next one back.
    const [a2] = await hooks.dueDeliveries('ep', NOW + 30, 10, new Set());
    expect(a2!.change.toState).toBe('confirming');
    expect((await hooks.listDeliveries('ep', { status: 'failed', limit: 10 })).items.map((d) => d.id)).toEqual([
      a1!.id,
    ]);

    await hooks.retryDelivery(a1!.id, NOW + 40);
    expect(await hooks.getDelivery('ep', a1!.id)).toMatchObject({
      status: 'pending',
      tries: 0,
      attempts: 1,
      nextAttemptAt: NOW + 40,
      updatedAt: NOW + 40,
    });
    const [retried] = await hooks.dueDeliveries('ep', NOW + 40, 1, new Set());
    expect(retried!.id).toBe(a1!.id);

    await hooks.recordAttempts([
      {
        ...retrying(retried!, NOW + 50, NOW + 50),
        attempt: { attempt: 2, at: NOW + 50, statusCode: 410, latencyMs: 1, error: 'HTTP 410' },
        status: 'failed',
        endpoint: { id: 'ep', failingSince: NOW + 20, disabledReason: 'the endpoint answered 410 Gone' },
      },
    ]);
    expect(await hooks.getEndpoint('ep')).toMatchObject({
      enabled: false,
      disabledReason: 'the endpoint answered 410 Gone',
      failingSince: NOW + 20,
      updatedAt: NOW + 50,
    });
    // A later success (an attempt in flight when it was disabled) clears failing, not disabled.
    await hooks.recordAttempts([
      { ...succeeded(a2!, NOW + 60), endpoint: { id: 'ep', failingSince: null, disabledReason: null } },
    ]);
    expect(await hooks.getEndpoint('ep')).toMatchObject({ enabled: false, failingSince: null });
    // Disabled: the next change makes no delivery.
    store.write(changed('a', 'confirming', 'confirmed', NOW + 70));
    await store.flush();
    expect((await hooks.listDeliveries('ep', { limit: 10 })).items).toHaveLength(2);
  });

  it('lists deliveries newest first, by status, a page at a time', async () => {
    const store = await fresh();
    const hooks = store.webhooks;
    await hooks.createEndpoint(endpointOf('ep'));
    for (let i = 0; i < 7; i++) store.write(changed(`t${i}`, null, 'pending.unseen', NOW + i));
    await store.flush();
    const due = await hooks.dueDeliveries('ep', NOW + 10, 10, new Set());
    await hooks.recordAttempts(due.slice(0, 3).map((d) => succeeded(d, NOW + 20)));
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await hooks.listDeliveries('ep', { limit: 3, ...(cursor ? { cursor } : {}) });
      pages.push(page.items.map((d) => d.trackerId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(pages).toEqual([['t6', 't5', 't4'], ['t3', 't2', 't1'], ['t0']]);
    const done = await hooks.listDeliveries('ep', { status: 'succeeded', limit: 2 });
    expect(done.items.map((d) => d.trackerId)).toEqual(['t2', 't1']);
    const rest = await hooks.listDeliveries('ep', { status: 'succeeded', limit: 2, cursor: done.nextCursor! });
    expect(rest).toEqual({ items: [expect.objectContaining({ trackerId: 't0' })], nextCursor: null });
    expect(await hooks.outboxStats()).toEqual({ pending: 4, oldestPendingAt: NOW + 3 });
  });
}
