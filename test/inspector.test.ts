import { createServer } from 'node:net';
import { createInspectorServer } from '@statelyai/inspect/server';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createInspection } from '../src/api/inspector.js';
import { type TestApi, hashOf, startTestApi, waitFor } from './helpers/api.js';

interface Message {
  type: string;
  sessionId: string;
  name?: string;
  event?: { type: string };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function connect(url: string, deadlineMs = 10_000): Promise<WebSocket> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const ws = new WebSocket(url);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return ws;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

let relay: { stop(): void };
let client: WebSocket;
let inspection: ReturnType<typeof createInspection>;
let api: TestApi;
const messages: Message[] = [];

beforeAll(async () => {
  const port = await freePort();
  relay = createInspectorServer({ port, autoOpen: false });
  // A raw WebSocket client, like the Stately inspector page: it hears what the service sends the relay.
  client = await connect(`ws://127.0.0.1:${port}`);
  client.on('message', (data) => messages.push(JSON.parse(String(data)) as Message));
  inspection = createInspection({ filter: 'show-', relayUrl: `ws://127.0.0.1:${port}` });
  api = await startTestApi({ system: { inspect: inspection.observe }, server: { inspection } });
});

afterAll(async () => {
  await api.stop();
  inspection.stop();
  client.close();
  relay.stop();
});

it('streams @xstate.actor, @xstate.event and @xstate.snapshot for the supervisor and a tracker to the relay', async () => {
  await api.call('POST', '/trackers', { txHash: hashOf(1), id: 'show-1' });
  await api.call('POST', '/trackers/show-1/events', { type: 'RECHECK' });
  const names = new Map<string, string>();
  const seen = (type: string, name: (n: string | undefined) => boolean) =>
    messages.some((m) => {
      if (m.type === '@xstate.actor') names.set(m.sessionId, m.name ?? '');
      return m.type === type && name(names.get(m.sessionId));
    });
  const isTracker = (n: string | undefined) => n === 'show-1';
  const sawRecheck = () =>
    messages.some(
      (m) => m.type === '@xstate.event' && m.event?.type === 'RECHECK' && names.get(m.sessionId) === 'show-1',
    );
  const isSupervisor = (n: string | undefined) => n !== undefined && /^shard-\d+$/.test(n);
  await waitFor('actor, event and snapshot messages', () => {
    const all =
      seen('@xstate.actor', isTracker) &&
      seen('@xstate.event', isTracker) &&
      seen('@xstate.snapshot', isTracker) &&
      seen('@xstate.actor', isSupervisor) &&
      seen('@xstate.event', isSupervisor) &&
      seen('@xstate.snapshot', isSupervisor) &&
      sawRecheck();
    return all ? true : undefined;
  });
});

it('leaves out trackers outside the INSPECT prefix, and serves the offline view at /inspect', async () => {
  await api.call('POST', '/trackers', { txHash: hashOf(2), id: 'hide-1' });
  await api.call('POST', '/trackers', { txHash: hashOf(3), id: 'show-2' });
  await waitFor('show-2', () =>
    messages.some((m) => m.type === '@xstate.actor' && m.name === 'show-2') ? true : undefined,
  );
  expect(messages.some((m) => m.name === 'hide-1' || (m.event as { id?: string } | undefined)?.id === 'hide-1')).toBe(
    false,
  );

  const view = await waitFor('the offline view', async () => {
    const res = await api.call('GET', '/inspect');
    const body = res.json as { actors: Array<{ name: string; value: unknown }>; counts: { filtered: number } };
    return body.actors.some((a) => a.name === 'show-2') ? body : undefined;
  });
  expect(view.actors.map((a) => a.name)).not.toContain('hide-1');
  expect(view.counts.filtered).toBeGreaterThan(0);
  expect(view.actors.find((a) => a.name === 'show-1')!.value).toEqual({ pending: 'unseen' });
  const page = await api.call('GET', '/inspect/ui');
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
});

it('shows at most maxTrackers trackers, each whole, so 100,000 trackers cannot flood it', async () => {
  const capped = createInspection({ filter: '*', maxTrackers: 2 });
  const small = await startTestApi({ system: { inspect: capped.observe } });
  await small.call('POST', '/trackers/batch', {
    trackers: Array.from({ length: 5 }, (_, i) => ({ txHash: hashOf(100 + i), id: `cap-${i}` })),
  });
  const view = await waitFor('the shown trackers', () => {
    const v = capped.view();
    return v.actors.filter((a) => a.name.startsWith('cap-')).length === 2 ? v : undefined;
  });
  expect(view.counts.shownTrackers).toBe(2);
  expect(view.counts.filtered).toBeGreaterThan(0);
  await small.stop();
  capped.stop();
});
