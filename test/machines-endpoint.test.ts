import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { trackerMachine } from '../machines/tracker.machine.js';
import { type MachinesResponse, type StateNodeView, describeMachine } from '../src/api/machines.routes.js';
import { type TestApi, startTestApi } from './helpers/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ server: { faultInjection: true } });
});
afterAll(() => api.stop());

const find = (node: StateNodeView, path: string): StateNodeView | undefined =>
  node.path === path ? node : node.states.map((s) => find(s, path)).find(Boolean);

it('GET /machines describes the tracker machine as it is defined: states, nesting, initial states, transitions, tags', async () => {
  const res = await api.call('GET', '/machines');
  expect(res.status).toBe(200);
  const body = res.json as MachinesResponse;
  expect(body.machines.map((m) => m.role)).toEqual(['tracker', 'supervisor', 'root-supervisor']);
  const tracker = body.machines[0]!.root;
  expect(tracker.initial).toBe('pending');
  expect(tracker.states.map((s) => s.key)).toEqual(Object.keys(trackerMachine.root.states));
  const pending = find(tracker, 'pending')!;
  expect(pending.initial).toBe('pending.unseen');
  expect(pending.states.map((s) => s.path)).toEqual(['pending.unseen', 'pending.seen', 'pending.stuck']);
  expect(pending.transitions.filter((t) => t.event === 'TX_MINED')).toEqual([
    {
      event: 'TX_MINED',
      targets: ['failed'],
      guard: 'isReverted',
      actions: ['recordMined', 'recordReverted', 'touch'],
    },
    { event: 'TX_MINED', targets: ['confirming'], guard: null, actions: ['recordMined', 'touch'] },
  ]);
  expect(pending.transitions.find((t) => t.event === 'RECHECK')!.targets).toEqual([]);
  const confirming = find(tracker, 'confirming')!;
  expect(confirming.transitions.find((t) => t.event === '')).toMatchObject({
    targets: ['confirmed'],
    guard: 'hasEnoughConfirmations',
  });
  expect(confirming.transitions.find((t) => t.event === 'BLOCK_REORGED')!.targets).toEqual(['pending.seen']);
  expect(find(tracker, 'confirmed')!.tags).toEqual(['terminal']);
  expect(body.clientEvents).toEqual(['RECHECK', 'REBROADCAST', 'CRASH']);
  expect(body.faultInjection).toBe(true);
  const supervisor = body.machines[1]!.root;
  expect(supervisor.states.map((s) => s.key)).toEqual(['running', 'stopped']);
  expect(find(supervisor, 'running')!.transitions.find((t) => t.event === 'SHUTDOWN')!.targets).toEqual(['stopped']);
});

it('a state added to a machine is described with no other change (read from the machine object at run time)', () => {
  const grown = createMachine({
    id: 'grown',
    initial: 'a',
    states: { a: { on: { GO: 'b' } }, b: { initial: 'b1', states: { b1: { tags: ['new'] } } } },
  });
  const view = describeMachine(grown, 'tracker');
  expect(find(view.root, 'b.b1')).toMatchObject({ key: 'b1', type: 'atomic', tags: ['new'], initial: null });
  expect(find(view.root, 'a')!.transitions).toEqual([{ event: 'GO', targets: ['b'], guard: null, actions: [] }]);
});

it('GET /machines and /supervision are in the OpenAPI document; /supervision counts the supervisors', async () => {
  const doc = (await api.call('GET', '/openapi.json')).json as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/machines', '/supervision']));
  await api.call('POST', '/trackers', { txHash: `0x${'ab'.repeat(32)}` });
  const stats = (await api.call('GET', '/supervision')).json as Record<string, number>;
  expect(stats).toMatchObject({ live: 1, restarting: 0, crashes: 0, restarts: 0, crashLoops: 0 });
  expect(stats.shards).toBeGreaterThanOrEqual(1);
});

it('GET /machines without fault injection offers no CRASH', async () => {
  const plain = await startTestApi();
  try {
    const body = (await plain.call('GET', '/machines')).json as MachinesResponse;
    expect(body.clientEvents).toEqual(['RECHECK', 'REBROADCAST']);
    expect(body.faultInjection).toBe(false);
  } finally {
    await plain.stop();
  }
});
