import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../src/api/server.js';
import type { Logger } from '../src/runtime/logger.js';
import { type Harness, startHarness, waitFor } from './support/chain.js';
import { hashOf } from './helpers/api.js';

const warnings: string[] = [];
const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (_obj, msg) => warnings.push(msg ?? ''),
  error: () => {},
};

let h: Harness;
let server: RunningServer;
beforeAll(async () => {
  // No mining: a sent tx stays pending, so REBROADCAST (pending only) is accepted by the machine.
  h = await startHarness({ anvilArgs: ['--no-mining'], watcher: { logger } });
  server = await startServer({ system: h.system, port: 0, logger });
});
afterAll(async () => {
  await server.close();
  await h.close();
});

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    json: (await res.json()) as { error?: { code: string; message: string }; state?: string },
  };
};

it('regression: REBROADCAST with no signed tx kept answers 409 nothing_to_rebroadcast, not 202 and a warning per call', async () => {
  // A hash the node never saw: the watcher has no signed form of it.
  const created = await post('/trackers', { txHash: hashOf(0xdead), id: 'no-raw' });
  expect(created.status).toBe(201);
  await waitFor('the watcher to follow it', () => h.watcher.health().tracked === 1);
  for (let i = 0; i < 3; i++) {
    const res = await post('/trackers/no-raw/events', { type: 'REBROADCAST' });
    expect(res.status).toBe(409);
    expect(res.json.error!.code).toBe('nothing_to_rebroadcast');
    expect(res.json.error!.message).toMatch(/signed/);
  }
  expect(warnings).toEqual([]);
  expect((await h.system.get('no-raw'))?.state).toBe('pending');
});

it('REBROADCAST of a pending tx whose signed form the watcher kept is accepted (202)', async () => {
  const tx = await h.sign(0, { to: h.wallets[1]!.address, value: 1n, nonce: 0 });
  await h.send(tx.raw);
  expect((await post('/trackers', { txHash: tx.hash, id: 'with-raw' })).status).toBe(201);
  await waitFor('the signed form', () => h.watcher.rawTransaction('with-raw') === tx.raw);
  const res = await post('/trackers/with-raw/events', { type: 'REBROADCAST' });
  expect([res.status, res.json.state]).toEqual([202, 'pending']);
});

it('REBROADCAST on a tracker that is not pending stays 409 event_not_accepted', async () => {
  await post('/trackers', { txHash: hashOf(0xbeef), id: 'stopped-one' });
  await fetch(`${server.url}/trackers/stopped-one`, { method: 'DELETE' });
  const res = await post('/trackers/stopped-one/events', { type: 'REBROADCAST' });
  expect([res.status, res.json.error!.code]).toEqual([409, 'event_not_accepted']);
});
