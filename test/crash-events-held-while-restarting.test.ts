import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTrackerSystem } from '../src/runtime/system.js';
import { MemoryStore } from '../src/store/memory.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';

type TrackerJson = { state: string; restarts: number; failure: { reason: string } | null };

describe('events accepted while a tracker restarts reach its next incarnations, in order (regression: a held CRASH that crashed the new incarnation sent the rest to the stopped one)', () => {
  let api: TestApi;
  // The default restart policy: 5 restarts in 60 s, the second in a window after 100 ms, doubling.
  beforeAll(async () => {
    api = await startTestApi({ system: { faultInjection: true } });
  });
  afterAll(() => api.stop());

  /** `count` CRASH events at once, as rapid clients send them; every one must be accepted (202). */
  async function crashRapidly(id: string, count: number): Promise<void> {
    const answers = await Promise.all(
      Array.from({ length: count }, () => api.call('POST', `/trackers/${id}/events`, { type: 'CRASH' })),
    );
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
  }

  const tracker = async (id: string): Promise<TrackerJson> =>
    (await api.call('GET', `/trackers/${id}`)).json as TrackerJson;

  for (const count of [2, 3, 5]) {
    it(`${count} rapid CRASHes: ${count} restarts, the tracker running with its state`, async () => {
      const id = `crash-${count}`;
      expect((await api.call('POST', '/trackers', { txHash: hashOf(count), id })).status).toBe(201);
      await crashRapidly(id, count);
      const after = await waitFor(`${count} restarts`, async () => {
        const t = await tracker(id);
        return t.restarts === count && api.system.lookup(id) ? t : undefined;
      });
      expect(after).toMatchObject({ state: 'pending', restarts: count, failure: null });
    });
  }

  it('7 rapid CRASHes (more than maxRestarts 5 in the window): failed with crash_loop', async () => {
    const id = 'crash-7';
    const before = api.system.stats().crashLoops;
    expect((await api.call('POST', '/trackers', { txHash: hashOf(7), id })).status).toBe(201);
    await crashRapidly(id, 7);
    // The failed row is visible once written; the supervisor counts the crash loop when it is durable.
    const after = await waitFor('the crash loop', async () => {
      const t = await tracker(id);
      return t.state === 'failed' && api.system.stats().crashLoops === before + 1 ? t : undefined;
    });
    expect(after).toMatchObject({ state: 'failed', restarts: 5, failure: { reason: 'crash_loop' } });
    expect(api.system.lookup(id)).toBeUndefined();
    expect(api.system.stats().restarting).toBe(0);
  });
});

describe('events for a restarting tracker, in the library', () => {
  it('an event held behind a CRASH goes to the incarnation after the one that CRASH ends', async () => {
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      faultInjection: true,
      restartPolicy: { backoffBaseMs: 50 },
    });
    await system.start('t', { txHash: hashOf(1) });
    await system.send('t', { type: 'CRASH' });
    const second = system.send('t', { type: 'CRASH' });
    // The second crash in the window: its restart waits; what comes meanwhile is held, in order.
    expect(system.stats().restarting).toBe(1);
    const held = await Promise.all([system.send('t', { type: 'CRASH' }), system.send('t', { type: 'TX_SEEN' })]);
    expect(held.map((r) => r.status)).toEqual(['held', 'held']);
    await second;
    await waitFor('the third restart', () =>
      system.lookup('t')?.getSnapshot().context.restarts === 3 ? true : undefined,
    );
    expect(system.lookup('t')!.getSnapshot().value).toEqual({ pending: 'seen' });
    expect(system.stats()).toMatchObject({ crashes: 3, restarts: 3, restarting: 0 });
    await system.shutdown();
  });

  it('refuses up front what it cannot hold: send answers not_accepted, deliver false', async () => {
    const system = await createTrackerSystem({
      store: new MemoryStore(),
      faultInjection: true,
      restartPolicy: { backoffBaseMs: 60_000, backoffMaxMs: 60_000 },
    });
    await system.start('slow', { txHash: hashOf(2) });
    await system.send('slow', { type: 'CRASH' });
    await system.send('slow', { type: 'CRASH' });
    expect(system.stats().restarting).toBe(1);
    const answers = await Promise.all(Array.from({ length: 101 }, () => system.send('slow', { type: 'RECHECK' })));
    expect(answers.slice(0, 100).every((r) => r.status === 'held')).toBe(true);
    expect(answers[100]).toMatchObject({ status: 'not_accepted', tracker: { state: 'pending', restarts: 1 } });
    expect(system.deliver('slow', { type: 'TX_SEEN' })).toBe(false);
    await system.shutdown();
  });
});
