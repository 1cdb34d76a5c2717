import { type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';
import { openStream } from './helpers/sse.js';

/** A number from GET /metrics (0 when the series is not there). */
async function metric(api: TestApi, name: string): Promise<number> {
  const text = (await api.call('GET', '/metrics')).text;
  const match = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** A client that asks for /events and never reads a byte of the answer. */
function silentClient(url: string, headers: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET /events HTTP/1.1\r\nHost: x\r\n${headers}\r\n`);
      resolve(socket);
    });
    // No 'data' listener and paused: the socket stops reading once its small buffer is full.
    socket.pause();
    socket.on('error', reject);
  });
}

const startMany = async (api: TestApi, from: number, count: number) => {
  for (let i = 0; i < count; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({ txHash: hashOf(from + i + j) }));
    await api.system.startMany(batch);
  }
};

describe('GET /events under clients that do not read', () => {
  const SILENT = 40;
  const CHANGES = 20_000;
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({
      server: {
        sse: { replay: CHANGES, replayBytes: 64 * 1024 * 1024, maxClients: SILENT + 10, stallTimeoutMs: 2000 },
      },
    });
    // More changes kept for replay (about 7 MB) than a socket's kernel buffers take (about 4 MB here).
    await startMany(api, 1, CHANGES);
  });
  afterAll(() => api.stop());

  it('regression: non-reading clients replaying from id 1 are held to a small unsent buffer each, then dropped; /healthz stays fast; readers still get everything', async () => {
    // A probe on its own kept-alive connection, from before the storm until it is over.
    let stormOver = false;
    let slowestHealthz = 0;
    await api.call('GET', '/healthz');
    const probing = (async () => {
      while (!stormOver) {
        const t0 = performance.now();
        expect((await api.call('GET', '/healthz')).status).toBe(200);
        slowestHealthz = Math.max(slowestHealthz, performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const reader = await openStream(`${api.url}/events`, { 'Last-Event-ID': '1' });
    const sockets = await Promise.all(
      Array.from({ length: SILENT }, () => silentClient(api.url, 'Last-Event-ID: 1\r\n')),
    );

    // While the replays run, the unsent data stays bounded: each stream holds at most its socket's
    // high-water mark (16 KiB on Node 20, 64 KiB later) and a 16 KiB chunk. Then the silent ones are cut off.
    try {
      const deadline = Date.now() + 30_000;
      while ((await metric(api, 'tx_tracker_sse_dropped_total')) < SILENT) {
        expect(await metric(api, 'tx_tracker_sse_buffered_bytes')).toBeLessThanOrEqual((SILENT + 1) * 96 * 1024);
        if (Date.now() > deadline) throw new Error('the non-reading clients were not cut off');
      }
    } finally {
      stormOver = true;
      await probing;
    }
    expect(slowestHealthz).toBeLessThan(1000);
    for (const socket of sockets) socket.destroy();

    // The reading client got the whole replay, in order, then a live change.
    await waitFor('the whole replay', () => (reader.trackerFrames().length >= CHANGES - 1 ? true : undefined), 30_000);
    await api.call('POST', '/trackers', { txHash: hashOf(999_999), id: 'after-the-storm' });
    const live = await waitFor('the live change', () =>
      reader.trackerFrames().find((f) => (f.data as { id: string }).id === 'after-the-storm'),
    );
    const ids = reader.trackerFrames().map((f) => f.id!);
    expect(ids.slice(0, CHANGES - 1)).toEqual(Array.from({ length: CHANGES - 1 }, (_, i) => i + 2));
    expect(live.id).toBe(CHANGES + 1);
    expect(await metric(api, 'tx_tracker_sse_clients')).toBe(1);
    await reader.close();
  });
});

describe('GET /events limits', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ server: { sse: { replay: 1000, replayBytes: 16 * 1024, maxClients: 2 } } });
  });
  afterAll(() => api.stop());

  it('regression: refuses streams beyond maxClients with 503 too_many_streams and Retry-After, and takes one again once a stream closes', async () => {
    const first = await openStream(`${api.url}/events`);
    const second = await openStream(`${api.url}/events?id=some-tracker`);
    const refused = await api.call('GET', '/events');
    expect(refused.status).toBe(503);
    expect((refused.json as { error: { code: string } }).error.code).toBe('too_many_streams');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await metric(api, 'tx_tracker_sse_refused_total')).toBe(1);
    await first.close();
    await waitFor('the stream to be gone', async () =>
      (await metric(api, 'tx_tracker_sse_clients')) === 1 ? true : undefined,
    );
    const third = await openStream(`${api.url}/events`);
    expect(third.res.status).toBe(200);
    await second.close();
    await third.close();
  });

  it('regression: keeps at most replayBytes of changes; a client asking for an older id gets a gap event first, then what is kept', async () => {
    await waitFor('no streams', async () => ((await metric(api, 'tx_tracker_sse_clients')) === 0 ? true : undefined));
    await startMany(api, 100_000, 200);
    expect(await metric(api, 'tx_tracker_sse_replay_bytes')).toBeLessThanOrEqual(16 * 1024);
    const late = await openStream(`${api.url}/events`, { 'Last-Event-ID': '1' });
    // The last change kept is the 200th tracker's creation.
    await waitFor('the kept changes', () => (late.trackerFrames().at(-1)?.id === 200 ? true : undefined));
    const [gap, ...replayed] = late.frames;
    expect(gap!.event).toBe('gap');
    expect(gap!.data).toMatchObject({
      lastEventId: 1,
      oldestId: replayed[0]!.id,
      message: expect.stringContaining('GET /trackers'),
    });
    expect(replayed.length).toBeLessThan(200);
    expect(replayed.map((f) => f.id)).toEqual(
      Array.from({ length: replayed.length }, (_, i) => 200 - replayed.length + 1 + i),
    );
    await late.close();
  });

  it('a Last-Event-ID newer than any change (from an earlier run) gets a gap event, then live changes', async () => {
    const stream = await openStream(`${api.url}/events`, { 'Last-Event-ID': '5000000' });
    await waitFor('the gap', () => stream.frames[0]);
    expect(stream.frames[0]!.event).toBe('gap');
    await api.call('POST', '/trackers', { txHash: hashOf(7), id: 'after-restart' });
    await waitFor('the live change', () =>
      stream.trackerFrames().find((f) => (f.data as { id: string }).id === 'after-restart'),
    );
    await stream.close();
  });
});
