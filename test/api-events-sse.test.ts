import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tracker } from '../src/api/schemas.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';
import { openStream } from './helpers/sse.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ server: { sse: { replay: 50 } } });
});
afterAll(() => api.stop());

describe('GET /events', () => {
  it('sends one event per change, creation included, with global increasing ids', async () => {
    const stream = await openStream(`${api.url}/events`);
    expect(stream.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'sse-1', confirmations: 2 });
    api.system.deliver('sse-1', { type: 'TX_MINED', blockNumber: 5, blockHash: hashOf(5), status: 'success', head: 5 });
    api.system.deliver('sse-1', { type: 'NEW_HEAD', blockNumber: 6 });
    const frames = await waitFor('three changes', () => {
      const mine = stream.trackerFrames().filter((f) => (f.data as { id: string }).id === 'sse-1');
      return mine.length >= 3 ? mine : undefined;
    });
    expect(frames.map((f) => Tracker.strict().parse(f.data).state)).toEqual(['pending', 'confirming', 'confirmed']);
    const ids = stream.trackerFrames().map((f) => f.id!);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    await stream.close();
  });

  it('follows one tracker with ?id=', async () => {
    const stream = await openStream(`${api.url}/events?id=sse-only`);
    await api.call('POST', '/trackers', { txHash: hashOf(2), id: 'sse-other' });
    await api.call('POST', '/trackers', { txHash: hashOf(3), id: 'sse-only' });
    await waitFor('the followed tracker', () => (stream.trackerFrames().length > 0 ? true : undefined));
    await api.call('DELETE', '/trackers/sse-only');
    await waitFor('its stop', () => (stream.trackerFrames().length > 1 ? true : undefined));
    expect(stream.trackerFrames().map((f) => (f.data as { id: string }).id)).toEqual(['sse-only', 'sse-only']);
    await stream.close();
  });

  it('replays what a reconnecting client missed (Last-Event-ID), and says when the buffer no longer has it', async () => {
    const first = await openStream(`${api.url}/events`);
    await api.call('POST', '/trackers', { txHash: hashOf(4), id: 'sse-replay-1' });
    const seen = await waitFor('a change', () => first.trackerFrames().at(-1));
    await first.close();
    await api.call('POST', '/trackers', { txHash: hashOf(5), id: 'sse-replay-2' });
    await api.call('POST', '/trackers', { txHash: hashOf(6), id: 'sse-replay-3' });

    const again = await openStream(`${api.url}/events`, { 'Last-Event-ID': String(seen.id) });
    const replayed = await waitFor('the replay', () =>
      again.trackerFrames().length >= 2 ? again.trackerFrames() : undefined,
    );
    expect(replayed.map((f) => (f.data as { id: string }).id)).toEqual(['sse-replay-2', 'sse-replay-3']);
    expect(replayed[0]!.id).toBe(seen.id! + 1);
    await again.close();

    // More changes than the buffer holds (50): a client from before them is told of the gap.
    const trackers = Array.from({ length: 120 }, (_, i) => ({ txHash: hashOf(1000 + i) }));
    await api.call('POST', '/trackers/batch', { trackers });
    const late = await openStream(`${api.url}/events`, { 'Last-Event-ID': String(seen.id) });
    await waitFor('the gap and the buffered changes', () => (late.trackerFrames().length >= 50 ? true : undefined));
    expect(late.frames[0]!.event).toBe('gap');
    await late.close();
  });

  it('answers 400 for a malformed Last-Event-ID and for a bad ?id=', async () => {
    const bad = await api.call('GET', '/events', undefined, { 'Last-Event-ID': 'yesterday' });
    expect(bad.status).toBe(400);
    expect((bad.json as { error: { code: string } }).error.code).toBe('invalid_last_event_id');
    const badId = await api.call('GET', '/events?id=no%20spaces');
    expect((badId.json as { error: { code: string } }).error.code).toBe('invalid_id');
  });
});

describe('GET /events and new heads', () => {
  it('sends the whole feed one head event, and a follower its confirming tracker with the derived count', async () => {
    await api.call('POST', '/trackers', { txHash: hashOf(7), id: 'sse-head', confirmations: 50 });
    api.system.deliver('sse-head', {
      type: 'TX_MINED',
      blockNumber: 200,
      blockHash: hashOf(200),
      status: 'success',
      head: 200,
    });
    await waitFor('confirming', async () =>
      (await api.system.get('sse-head'))?.state === 'confirming' ? true : undefined,
    );
    const feed = await openStream(`${api.url}/events`);
    const follower = await openStream(`${api.url}/events?id=sse-head`);
    api.system.newHead(204);
    const head = await waitFor('a head event', () => feed.frames.find((f) => f.event === 'head'));
    expect(head.data).toEqual({ blockNumber: 204, chain: 31337, name: 'default' });
    const followed = await waitFor('the follower update', () => follower.trackerFrames()[0]);
    expect(Tracker.strict().parse(followed.data)).toMatchObject({
      id: 'sse-head',
      state: 'confirming',
      confirmations: 5,
    });
    expect(follower.frames.some((f) => f.event === 'head')).toBe(false);
    expect(feed.trackerFrames().some((f) => (f.data as { id: string }).id === 'sse-head')).toBe(false);
    const got = await api.call('GET', '/trackers/sse-head');
    expect((got.json as { confirmations: number }).confirmations).toBe(5);
    await feed.close();
    await follower.close();
  });
});
