import { afterAll, beforeAll, expect, it } from 'vitest';
import { Tracker } from '../src/api/schemas.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';

const SEED_ID = 'txn_01dp371w0fnjhf9z2tjebx4vr4';
let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ system: { faultInjection: true } });
});
afterAll(() => api.stop());

const lookUp = async () => {
  const res = await api.call('GET', `/trackers/${SEED_ID}`);
  expect(res.status).toBe(200);
  return Tracker.strict().parse(res.json);
};

it('walks the seed over HTTP: start, look up, CRASH, look up (restarted once, same state), DELETE, look up (stopped)', async () => {
  const started = await api.call('POST', '/trackers', { txHash: hashOf(0x5eed), id: SEED_ID, confirmations: 3 });
  expect(started.status).toBe(201);
  // Move it to confirming through the library, as the chain watcher would.
  api.system.deliver(SEED_ID, {
    type: 'TX_MINED',
    blockNumber: 100,
    blockHash: hashOf(100),
    status: 'success',
    head: 100,
  });
  const before = await waitFor('confirming', async () => {
    const tracker = await lookUp();
    return tracker.state === 'confirming' ? tracker : undefined;
  });
  expect(before).toMatchObject({ restarts: 0, confirmations: 1, blockNumber: 100 });

  const crash = await api.call('POST', `/trackers/${SEED_ID}/events`, { type: 'CRASH' });
  expect(crash.status).toBe(202);

  const after = await waitFor('the restart', async () => {
    const tracker = await lookUp();
    return tracker.restarts === 1 && api.system.lookup(SEED_ID) ? tracker : undefined;
  });
  expect(after).toMatchObject({ state: 'confirming', confirmations: 1, blockNumber: 100, restarts: 1 });

  const stopped = await api.call('DELETE', `/trackers/${SEED_ID}`);
  expect(stopped.status).toBe(200);
  expect(Tracker.parse(stopped.json).state).toBe('stopped');
  expect(await lookUp()).toMatchObject({ state: 'stopped', restarts: 1, blockNumber: 100 });
  expect(api.system.lookup(SEED_ID)).toBeUndefined();
});
