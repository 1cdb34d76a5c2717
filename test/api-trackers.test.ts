import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tracker } from '../src/api/schemas.js';
import { type TestApi, hashOf, startTestApi } from './helpers/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.stop());

const errorCode = (json: unknown) => (json as { error: { code: string } }).error.code;
const asTracker = (json: unknown) => Tracker.strict().parse(json);

describe('POST /trackers', () => {
  it('creates (201), returns the same tracker for the same txHash (200), refuses another txHash (409)', async () => {
    const created = await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'order-1', confirmations: 3 });
    expect(created.status).toBe(201);
    expect(asTracker(created.json)).toMatchObject({
      id: 'order-1',
      txHash: hashOf(1),
      state: 'pending',
      requiredConfirmations: 3,
    });
    const again = await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'order-1' });
    expect(again.status).toBe(200);
    expect(asTracker(again.json).id).toBe('order-1');
    const conflict = await api.call('POST', '/trackers', { txHash: hashOf(2), id: 'order-1' });
    expect(conflict.status).toBe(409);
    expect(errorCode(conflict.json)).toBe('id_conflict');
  });

  it('defaults the id to the lower-case txHash and accepts hex in any case', async () => {
    const upper = `0x${'AB'.repeat(32)}`;
    const created = await api.call('POST', '/trackers', { txHash: upper });
    expect(created.status).toBe(201);
    expect(asTracker(created.json)).toMatchObject({
      id: upper.toLowerCase(),
      txHash: upper.toLowerCase(),
      requiredConfirmations: 12,
    });
    const byUpperId = await api.call('GET', `/trackers/${upper}`);
    expect(byUpperId.status).toBe(200);
    expect(asTracker(byUpperId.json).id).toBe(upper.toLowerCase());
  });

  it.each([
    ['a bad hash', { txHash: '0x1234' }, 'invalid_tx_hash'],
    ['no hash', { id: 'x' }, 'invalid_tx_hash'],
    ['a bad id', { txHash: hashOf(3), id: 'has space' }, 'invalid_id'],
    ['0 confirmations', { txHash: hashOf(3), confirmations: 0 }, 'invalid_confirmations'],
    ['1001 confirmations', { txHash: hashOf(3), confirmations: 1001 }, 'invalid_confirmations'],
    ['fractional confirmations', { txHash: hashOf(3), confirmations: 1.5 }, 'invalid_confirmations'],
    ['"latest" confirmations', { txHash: hashOf(3), confirmations: 'latest' }, 'invalid_confirmations'],
    ['a chain that is neither an id nor a name', { txHash: hashOf(3), chain: true }, 'invalid_chain'],
    ['a chain name not configured', { txHash: hashOf(3), chain: 'zksync' }, 'unknown_chain'],
    ['a chain id not configured', { txHash: hashOf(3), chain: 324 }, 'unknown_chain'],
    ['an unknown field', { txHash: hashOf(3), foo: 1 }, 'invalid_body'],
    ['an array', [{ txHash: hashOf(3) }], 'invalid_body'],
    ['a string', '"hello"', 'invalid_body'],
    ['broken JSON', '{"txHash":', 'invalid_json'],
  ])('answers 400 for %s', async (_name, body, code) => {
    const res = await api.call('POST', '/trackers', body);
    expect(res.status).toBe(400);
    expect(errorCode(res.json)).toBe(code);
  });

  it('takes the chain by id or name, and "finalized" / "safe" for confirmations: the tracker shows chainId and finality', async () => {
    const created = await api.call('POST', '/trackers', {
      txHash: hashOf(4),
      chain: 'default',
      confirmations: 'finalized',
    });
    expect(created.status).toBe(201);
    expect(asTracker(created.json)).toMatchObject({
      id: hashOf(4),
      chainId: 31337,
      finality: 'finalized',
      requiredConfirmations: null,
    });
    const safe = await api.call('POST', '/trackers', { txHash: hashOf(5), chain: 31337, confirmations: 'safe' });
    expect(asTracker(safe.json)).toMatchObject({ chainId: 31337, finality: 'safe' });
    const counted = asTracker((await api.call('GET', '/trackers/order-1')).json);
    expect(counted.finality).toBeUndefined();
    expect(counted.chainId).toBe(31337);
    const listed = await api.call('GET', '/trackers?chain=31337&limit=1000');
    expect((listed.json as { items: unknown[] }).items.map((t) => asTracker(t).id)).toContain(hashOf(4));
    expect(errorCode((await api.call('GET', '/trackers?chain=zksync')).json)).toBe('unknown_chain');
    const chains = await api.call('GET', '/chains');
    expect(chains.json).toMatchObject({
      chains: [{ name: 'default', id: 31337, default: true, confirmations: 12, rpc: { status: 'ok' } }],
    });
  });

  it('answers 400 invalid_tx_hash for an empty body (it reads as {})', async () => {
    const res = await api.call('POST', '/trackers');
    expect(res.status).toBe(400);
    expect(errorCode(res.json)).toBe('invalid_tx_hash');
  });
});

describe('POST /trackers/batch', () => {
  it('answers a result per item, in order; one bad item never rejects the others', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(100), id: 'batch-existing' });
    const res = await api.call('POST', '/trackers/batch', {
      trackers: [
        { txHash: hashOf(101), id: 'batch-a' },
        { txHash: 'nope' },
        { txHash: hashOf(100), id: 'batch-existing' },
        { txHash: hashOf(999), id: 'batch-existing' },
        { txHash: hashOf(102), id: 'batch-a' },
        { txHash: hashOf(103), id: 'batch-b', confirmations: 5 },
        42,
      ],
    });
    expect(res.status).toBe(200);
    const results = (res.json as { results: Array<{ status: number; tracker?: unknown; error?: { code: string } }> })
      .results;
    expect(results.map((r) => r.status)).toEqual([201, 400, 200, 409, 409, 201, 400]);
    expect(results[1]!.error!.code).toBe('invalid_tx_hash');
    expect(results[3]!.error!.code).toBe('id_conflict');
    expect(results[6]!.error!.code).toBe('invalid_body');
    expect(asTracker(results[5]!.tracker).requiredConfirmations).toBe(5);
    expect((await api.call('GET', '/trackers/batch-b')).status).toBe(200);
  });

  it('takes 1,000 items and refuses 0 or 1,001 (invalid_batch)', async () => {
    const thousand = Array.from({ length: 1000 }, (_, i) => ({ txHash: hashOf(10_000 + i) }));
    const ok = await api.call('POST', '/trackers/batch', { trackers: thousand });
    expect(ok.status).toBe(200);
    expect((ok.json as { results: Array<{ status: number }> }).results.every((r) => r.status === 201)).toBe(true);
    for (const trackers of [[], [...thousand, { txHash: hashOf(1) }]]) {
      const res = await api.call('POST', '/trackers/batch', { trackers });
      expect(res.status).toBe(400);
      expect(errorCode(res.json)).toBe('invalid_batch');
    }
    const noList = await api.call('POST', '/trackers/batch', { items: [] });
    expect(errorCode(noList.json)).toBe('invalid_batch');
  });
});

describe('GET /trackers/:id and GET /trackers', () => {
  it('answers 404 not_found for an unknown id and 400 invalid_id for a bad one', async () => {
    const missing = await api.call('GET', '/trackers/never-started');
    expect(missing.status).toBe(404);
    expect(errorCode(missing.json)).toBe('not_found');
    const bad = await api.call('GET', '/trackers/bad%20id');
    expect(bad.status).toBe(400);
    expect(errorCode(bad.json)).toBe('invalid_id');
  });

  it('pages through every tracker once, in id order, with a stable cursor', async () => {
    const trackers = Array.from({ length: 250 }, (_, i) => ({
      txHash: hashOf(20_000 + i),
      id: `page-${String(i).padStart(3, '0')}`,
    }));
    await api.call('POST', '/trackers/batch', { trackers });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : '';
      const res = await api.call('GET', `/trackers?limit=100${query}`);
      expect(res.status).toBe(200);
      const page = res.json as { items: unknown[]; nextCursor: string | null };
      seen.push(...page.items.map((item) => asTracker(item).id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => id.startsWith('page-'))).toEqual(trackers.map((t) => t.id));
  });

  it('filters by state', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(300), id: 'state-mined', confirmations: 5 });
    api.system.deliver('state-mined', {
      type: 'TX_MINED',
      blockNumber: 10,
      blockHash: hashOf(10),
      status: 'success',
      head: 10,
    });
    await api.call('POST', '/trackers', { txHash: hashOf(301), id: 'state-stopped' });
    await api.call('DELETE', '/trackers/state-stopped');
    const confirming = await api.call('GET', '/trackers?state=confirming');
    expect((confirming.json as { items: Array<{ id: string }> }).items.map((t) => t.id)).toEqual(['state-mined']);
    const stopped = await api.call('GET', '/trackers?state=stopped&limit=1000');
    expect((stopped.json as { items: Array<{ id: string }> }).items.map((t) => t.id)).toContain('state-stopped');
  });

  it.each([
    ['state=bogus', 'invalid_state'],
    ['limit=0', 'invalid_limit'],
    ['limit=1001', 'invalid_limit'],
    ['limit=abc', 'invalid_limit'],
    ['cursor=%21%21', 'invalid_cursor'],
    ['foo=1', 'invalid_query'],
  ])('answers 400 for ?%s', async (query, code) => {
    const res = await api.call('GET', `/trackers?${query}`);
    expect(res.status).toBe(400);
    expect(errorCode(res.json)).toBe(code);
  });
});

describe('POST /trackers/:id/events and DELETE /trackers/:id', () => {
  it('accepts RECHECK while live (202) and refuses it once final (409 event_not_accepted)', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(400), id: 'ev-1' });
    const accepted = await api.call('POST', '/trackers/ev-1/events', { type: 'RECHECK' });
    expect(accepted.status).toBe(202);
    expect(asTracker(accepted.json).state).toBe('pending');
    const stopped = await api.call('DELETE', '/trackers/ev-1');
    expect(stopped.status).toBe(200);
    expect(asTracker(stopped.json).state).toBe('stopped');
    const refused = await api.call('POST', '/trackers/ev-1/events', { type: 'RECHECK' });
    expect(refused.status).toBe(409);
    expect(errorCode(refused.json)).toBe('event_not_accepted');
    expect(asTracker((await api.call('GET', '/trackers/ev-1')).json).state).toBe('stopped');
  });

  it.each([
    [{ type: 'FLY' }, 'unknown_event'],
    [{ type: 'TX_MINED', blockNumber: 1 }, 'event_not_allowed'],
    [{ type: 'CRASH' }, 'fault_injection_disabled'],
    [{ type: 'RECHECK', extra: true }, 'invalid_event'],
    [{ kind: 'RECHECK' }, 'invalid_event'],
    [[], 'invalid_event'],
  ])('answers 400 for %j', async (body, code) => {
    await api.call('POST', '/trackers', { txHash: hashOf(401), id: 'ev-2' });
    const res = await api.call('POST', '/trackers/ev-2/events', body);
    expect(res.status).toBe(400);
    expect(errorCode(res.json)).toBe(code);
  });

  it('answers 404 for events to and deletion of an unknown tracker', async () => {
    const event = await api.call('POST', '/trackers/ghost/events', { type: 'RECHECK' });
    expect([event.status, errorCode(event.json)]).toEqual([404, 'not_found']);
    const del = await api.call('DELETE', '/trackers/ghost');
    expect([del.status, errorCode(del.json)]).toEqual([404, 'not_found']);
  });
});
