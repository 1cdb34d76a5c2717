import { afterAll, describe, expect, it } from 'vitest';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';
import { tempDir } from './helpers.js';

/** `tx_tracker_trackers{state}` as one scrape of /metrics shows it. */
async function trackersByState(api: TestApi): Promise<Record<string, number>> {
  const res = await api.call('GET', '/metrics');
  expect(res.status).toBe(200);
  const counts: Record<string, number> = {};
  for (const [, state, n] of res.text.matchAll(/^tx_tracker_trackers\{state="(\w+)"\} (\d+)$/gm))
    counts[state!] = Number(n);
  return counts;
}

describe('tx_tracker_trackers counts every tracker in the store (regression: it counted only changes since start)', () => {
  const dir = tempDir();
  let api: TestApi | undefined;
  afterAll(async () => {
    await api?.stop();
    dir.remove();
  });

  it('a service started again on a database of 1,500 trackers reports all of them by state, then follows changes', async () => {
    const first = await startTestApi({ dir: dir.path });
    for (const from of [0, 1_000]) {
      const trackers = Array.from({ length: from === 0 ? 1_000 : 500 }, (_, i) => ({
        txHash: hashOf(from + i),
        id: `t-${from + i}`,
      }));
      expect((await first.call('POST', '/trackers/batch', { trackers })).status).toBe(200);
    }
    for (let i = 0; i < 300; i++) {
      first.system.deliver(`t-${i}`, {
        type: 'TX_MINED',
        blockNumber: 100,
        blockHash: hashOf(100),
        status: 'success',
        head: 100,
      });
    }
    for (let i = 300; i < 350; i++) expect((await first.call('DELETE', `/trackers/t-${i}`)).status).toBe(200);
    const expected = { pending: 1_150, confirming: 300, confirmed: 0, failed: 0, stopped: 50 };
    expect(await trackersByState(first)).toEqual(expected);
    await first.stop();

    api = await startTestApi({ dir: dir.path });
    expect(api.system.stats().live).toBe(1_450);
    expect(await trackersByState(api)).toEqual(expected);

    // A scrape may reuse a count for a moment; the next one shows the change.
    expect((await api.call('DELETE', '/trackers/t-0')).status).toBe(200);
    await waitFor('the stopped tracker to be counted', async () => {
      const counts = await trackersByState(api!);
      return counts.stopped === 51 ? counts : undefined;
    });
    expect(await trackersByState(api)).toMatchObject({ pending: 1_150, confirming: 299, stopped: 51 });
  });
});

describe('tx_tracker_restarts_total counts this process restarts (regression: trackers brought back at start counted again)', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('a restarted service reports 0 restarts for trackers that crashed before, then counts a new crash once', async () => {
    const restartsTotal = async (api: TestApi) =>
      Number(/^tx_tracker_restarts_total (\d+)$/m.exec((await api.call('GET', '/metrics')).text)?.[1]);
    const system = { faultInjection: true };
    const first = await startTestApi({ dir: dir.path, system, server: { faultInjection: true } });
    await first.call('POST', '/trackers/batch', {
      trackers: [0, 1, 2].map((i) => ({ txHash: hashOf(i), id: `r-${i}` })),
    });
    for (const id of ['r-0', 'r-1'])
      expect((await first.call('POST', `/trackers/${id}/events`, { type: 'CRASH' })).status).toBe(202);
    expect(await restartsTotal(first)).toBe(2);
    await first.stop();

    const api = await startTestApi({ dir: dir.path, system, server: { faultInjection: true } });
    try {
      expect(((await api.call('GET', '/trackers/r-0')).json as { restarts: number }).restarts).toBe(1);
      expect(await restartsTotal(api)).toBe(0);
      expect((await api.call('POST', '/trackers/r-2/events', { type: 'CRASH' })).status).toBe(202);
      expect(await restartsTotal(api)).toBe(1);
    } finally {
      await api.stop();
    }
  });
});
