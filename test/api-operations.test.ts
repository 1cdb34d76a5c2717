import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';

const errorCode = (json: unknown) => (json as { error: { code: string } }).error.code;

describe('health, readiness, metrics, openapi, limits', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({
      system: { faultInjection: true },
      server: {
        metricsSources: {
          chains: () => [
            { name: 'default', chainId: 31337, requests: 7, errors: 2, head: 40, blockLag: 3, reorgsBelowFinalized: 0 },
          ],
        },
      },
    });
  });
  afterAll(() => api.stop());

  it('GET /healthz and /readyz answer 200', async () => {
    expect((await api.call('GET', '/healthz')).json).toEqual({ status: 'ok' });
    expect((await api.call('GET', '/readyz')).json).toEqual({ status: 'ready', checks: { store: true, chain: true } });
  });

  it('GET /metrics has trackers by state, restarts, crash loops, store write latency, pending writes and threads, RPC and block lag', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'm-1' });
    await api.call('POST', '/trackers/m-1/events', { type: 'CRASH' });
    await waitFor('the restart', () => (api.system.stats().restarts === 1 ? true : undefined));
    // The restarted tracker's own write is not tied to any request: made durable here.
    await api.system.store.flush();
    const res = await api.call('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const line of [
      'tx_tracker_trackers{state="pending"} 1',
      'tx_tracker_trackers_live 1',
      'tx_tracker_crashes_total 1',
      'tx_tracker_restarts_total 1',
      'tx_tracker_crash_loops_total 0',
      'tx_tracker_rpc_requests_total{chain="default",chain_id="31337"} 7',
      'tx_tracker_rpc_errors_total{chain="default",chain_id="31337"} 2',
      'tx_tracker_reorgs_below_finalized_total{chain="default",chain_id="31337"} 0',
      'tx_tracker_block_lag{chain="default",chain_id="31337"} 3',
      'tx_tracker_chain_head{chain="default",chain_id="31337"} 40',
      // Nothing waits for a commit after the flush; both store threads run.
      'tx_tracker_store_pending_writes 0',
      'tx_tracker_store_thread_up{thread="writer"} 1',
      'tx_tracker_store_thread_up{thread="checkpointer"} 1',
    ]) {
      expect(res.text).toContain(line);
    }
    expect(res.text).toMatch(/tx_tracker_store_write_seconds_count\{outcome="ok"\} [1-9]/);
    expect(res.text).toMatch(/tx_tracker_http_requests_total\{method="POST",route="\/trackers",status="201"\} 1/);
  });

  it('GET /openapi.json is generated from the request schemas', async () => {
    const res = await api.call('GET', '/openapi.json');
    const doc = res.json as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, { pattern?: string }> }> };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/trackers',
        '/trackers/batch',
        '/trackers/{id}',
        '/trackers/{id}/events',
        '/chains',
        '/events',
        '/healthz',
        '/readyz',
        '/metrics',
      ]),
    );
    expect(Object.keys(doc.paths['/trackers/{id}']!)).toEqual(expect.arrayContaining(['get', 'delete']));
    expect(doc.components.schemas.CreateTrackerBody!.properties!.txHash!.pattern).toBe('^0x[0-9a-fA-F]{64}$');
    expect(doc.components.schemas.Tracker).toBeDefined();
  });

  it('answers 413 payload_too_large over 1 MB, 404 JSON for unknown routes and methods, never HTML', async () => {
    const big = await api.call('POST', '/trackers', { txHash: hashOf(2), pad: 'x'.repeat(1024 * 1024) });
    expect([big.status, errorCode(big.json)]).toEqual([413, 'payload_too_large']);
    for (const [method, path] of [
      ['GET', '/nope'],
      ['PUT', '/trackers'],
      ['PATCH', '/trackers/m-1'],
      ['GET', '/trackers/m-1/events'],
    ]) {
      const res = await api.call(method!, path!);
      expect([res.status, errorCode(res.json)]).toEqual([404, 'not_found']);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    }
  });

  it('echoes a sane X-Request-Id and makes one otherwise', async () => {
    expect(
      (await api.call('GET', '/healthz', undefined, { 'x-request-id': 'req-42' })).headers.get('x-request-id'),
    ).toBe('req-42');
    expect(
      (await api.call('GET', '/healthz', undefined, { 'x-request-id': 'bad id!' })).headers.get('x-request-id'),
    ).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('API_TOKEN', () => {
  let api: TestApi;
  const token = 'secret-token-0123456789';
  beforeAll(async () => {
    api = await startTestApi({ server: { apiToken: token } });
  });
  afterAll(() => api.stop());

  it('requires the bearer token everywhere but /healthz and /readyz', async () => {
    expect((await api.call('GET', '/healthz')).status).toBe(200);
    expect((await api.call('GET', '/readyz')).status).toBe(200);
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer wrong' },
      { authorization: token },
      { authorization: `Basic ${token}` },
    ]) {
      const res = await api.call('GET', '/trackers', undefined, headers);
      expect([res.status, errorCode(res.json)]).toEqual([401, 'unauthorized']);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    const unknownRoute = await api.call('GET', '/nope');
    expect(unknownRoute.status).toBe(401);
    const ok = await api.call('GET', '/trackers', undefined, { authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
  });
});

describe('readiness and shutdown', () => {
  it('answers 503 not_ready when a check fails', async () => {
    const api = await startTestApi({ server: { readiness: async () => ({ store: true, chain: false }) } });
    const res = await api.call('GET', '/readyz');
    expect(res.status).toBe(503);
    expect(res.json).toEqual({
      error: { code: 'not_ready', message: 'not reachable: chain' },
      checks: { store: true, chain: false },
    });
    await api.stop();
  });

  it('close() lets an in-flight request finish and stops accepting new ones', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const store = new MemoryStore();
    const slowFlush = store.flush.bind(store);
    let flushes = 0;
    store.flush = async () => {
      if (++flushes === 1) await gate;
      return slowFlush();
    };
    const api = await startTestApi({ system: { store } });
    const inFlight = api.call('POST', '/trackers', { txHash: hashOf(3), id: 'in-flight' });
    await waitFor('the request to reach the store', () => (flushes > 0 ? true : undefined));
    const closing = api.server.close();
    await expect(api.call('GET', '/healthz')).rejects.toThrow();
    release();
    const res = await inFlight;
    expect(res.status).toBe(201);
    await closing;
    await api.system.shutdown();
  });
});
