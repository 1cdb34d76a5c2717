import { afterAll, beforeAll, expect, it } from 'vitest';
import { shardOf } from '../src/runtime/shard.js';
import { type ClusterHarness, type Instance, call, startClusterHarness, waitForBalance } from './support/cluster.js';
import { describeWithPostgres } from './support/postgres.js';

const hashOf = (i: number): string => `0x${(0xa11ce000 + i).toString(16).padStart(64, '0')}`;

describeWithPostgres('the API on a 3-instance cluster, requests spread round-robin', () => {
  let cluster: ClusterHarness;
  let turn = 0;
  /** The next instance in turn. */
  const next = (): Instance => cluster.instances[turn++ % cluster.instances.length]!;
  /** An instance that does not hold the tracker's shard. */
  const notOwner = async (id: string): Promise<Instance> => {
    for (const instance of cluster.instances) {
      const view = await instance.view();
      if (!view!.shards.includes(shardOf(id, 1024))) return instance;
    }
    throw new Error('every instance holds it');
  };

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 3 });
    await waitForBalance(cluster);
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('POST /trackers on any instance is durable when answered and live on its owner; every instance reads it', async () => {
    for (let i = 0; i < 12; i++) {
      const id = `api-${i}`;
      const created = await call(next().api, 'POST', '/trackers', { id, txHash: hashOf(i), confirmations: 2 });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ id, txHash: hashOf(i), state: 'pending', requiredConfirmations: 2 });
      for (const instance of cluster.instances) {
        const read = await call(instance.api, 'GET', `/trackers/${id}`);
        expect(read.status).toBe(200);
        expect(read.body.id).toBe(id);
      }
      const again = await call(next().api, 'POST', '/trackers', { id, txHash: hashOf(i) });
      expect(again.status).toBe(200);
    }
    const views = await Promise.all(cluster.instances.map((instance) => instance.view()));
    expect(views.reduce((n, v) => n + v!.live, 0)).toBe(12);
  });

  it('errors mean the same on every instance: 409 id_conflict, 404 not_found, 400 unknown_event, 409 event_not_accepted', async () => {
    const id = 'api-conflict';
    expect((await call(next().api, 'POST', '/trackers', { id, txHash: hashOf(100) })).status).toBe(201);
    const other = await notOwner(id);
    const conflict = await call(other.api, 'POST', '/trackers', { id, txHash: hashOf(101) });
    expect(conflict).toMatchObject({ status: 409, body: { error: { code: 'id_conflict' } } });
    for (const instance of cluster.instances) {
      expect(await call(instance.api, 'GET', '/trackers/api-nope')).toMatchObject({
        status: 404,
        body: { error: { code: 'not_found' } },
      });
      expect(await call(instance.api, 'POST', '/trackers/api-nope/events', { type: 'RECHECK' })).toMatchObject({
        status: 404,
        body: { error: { code: 'not_found' } },
      });
      expect(await call(instance.api, 'POST', `/trackers/${id}/events`, { type: 'NOPE' })).toMatchObject({
        status: 400,
        body: { error: { code: 'unknown_event' } },
      });
    }
  });

  it('events and DELETE for a tracker owned elsewhere reach its owner, and answer as one instance would', async () => {
    const id = 'api-remote';
    expect((await call(next().api, 'POST', '/trackers', { id, txHash: hashOf(200) })).status).toBe(201);
    const other = await notOwner(id);
    const recheck = await call(other.api, 'POST', `/trackers/${id}/events`, { type: 'RECHECK' });
    expect(recheck.status).toBe(202);
    expect(recheck.body.id).toBe(id);
    // CRASH (fault injection) on the owner, sent elsewhere: the owner restarts it from its snapshot.
    const crash = await call(other.api, 'POST', `/trackers/${id}/events`, { type: 'CRASH' });
    expect([202, 409]).toContain(crash.status);
    const stopped = await call(other.api, 'DELETE', `/trackers/${id}`);
    expect(stopped).toMatchObject({ status: 200, body: { id, state: 'stopped' } });
    for (const instance of cluster.instances) {
      expect((await call(instance.api, 'GET', `/trackers/${id}`)).body.state).toBe('stopped');
    }
    const late = await call(next().api, 'POST', `/trackers/${id}/events`, { type: 'RECHECK' });
    expect(late).toMatchObject({ status: 409, body: { error: { code: 'event_not_accepted' } } });
    expect(await call(next().api, 'DELETE', '/trackers/api-none')).toMatchObject({ status: 404 });
  });

  it('a batch on one instance starts trackers of every owner, a result per item, in order', async () => {
    const trackers = Array.from({ length: 30 }, (_, i) => ({ id: `api-batch-${i}`, txHash: hashOf(300 + i) }));
    const bad = { id: 'api-batch-bad', txHash: '0x12' };
    const { status, body } = await call(next().api, 'POST', '/trackers/batch', { trackers: [...trackers, bad] });
    expect(status).toBe(200);
    const results = body.results as Array<{ status: number; tracker?: { id: string }; error?: { code: string } }>;
    expect(results.slice(0, 30).map((r) => [r.status, r.tracker?.id])).toEqual(trackers.map((t) => [201, t.id]));
    expect(results[30]).toMatchObject({ status: 400, error: { code: 'invalid_tx_hash' } });
    const page = await call(next().api, 'GET', '/trackers?limit=100');
    const listed = (page.body.items as Array<{ id: string }>).map((t) => t.id);
    for (const t of trackers) expect(listed).toContain(t.id);
  });
});
