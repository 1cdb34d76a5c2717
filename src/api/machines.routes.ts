import { Router } from 'express';
import type { AnyStateMachine } from 'xstate';
import { rootSupervisorMachine } from '../../machines/root-supervisor.machine.js';
import { supervisorMachine } from '../../machines/supervisor.machine.js';
import { TRACKER_MACHINE_VERSION, trackerMachine } from '../../machines/tracker.machine.js';
import type { TrackerSystem } from '../runtime/system.js';
import type { RouteDoc } from './openapi.js';

/** One transition of a state node, as the page draws it. */
export interface TransitionView {
  /** The event type; `''` for an eventless (`always`) transition. */
  event: string;
  /** Paths of the target states (`pending.seen`); empty: stays where it is (actions only). */
  targets: string[];
  guard: string | null;
  actions: string[];
}

/** One state node: its path from the root (`''` for the root, `pending.seen`), children in order. */
export interface StateNodeView {
  key: string;
  path: string;
  type: string;
  /** The child entered first, by path; null for an atomic state. */
  initial: string | null;
  tags: string[];
  description: string | null;
  transitions: TransitionView[];
  states: StateNodeView[];
}

export interface MachineView {
  id: string;
  /** What the machine is in the running service. */
  role: 'tracker' | 'supervisor' | 'root-supervisor';
  root: StateNodeView;
}

/** The slice of XState's StateNode the view reads (public fields of `machine.root`). */
interface NodeLike {
  key: string;
  path: readonly string[];
  type: string;
  tags: readonly string[];
  description?: string | undefined;
  states: Record<string, NodeLike>;
  initial?: { target: ReadonlyArray<{ path: readonly string[] }> } | undefined;
  transitions: Map<string, ReadonlyArray<TransitionLike>>;
  always?: ReadonlyArray<TransitionLike> | undefined;
}
interface TransitionLike {
  target?: ReadonlyArray<{ path: readonly string[] }> | undefined;
  guard?: unknown;
  actions: readonly unknown[];
}

/** A guard's or action's name as written in `setup` (inline functions: their own name, if any). */
function nameOf(implementation: unknown): string {
  if (typeof implementation === 'string') return implementation;
  if (implementation && (typeof implementation === 'object' || typeof implementation === 'function')) {
    const { type, name } = implementation as { type?: unknown; name?: unknown };
    if (typeof type === 'string') return type;
    if (typeof name === 'string' && name) return name;
  }
  return 'inline';
}

function transitionView(event: string, transition: TransitionLike): TransitionView {
  return {
    event,
    targets: (transition.target ?? []).map((target) => target.path.join('.')),
    guard: transition.guard === undefined ? null : nameOf(transition.guard),
    actions: transition.actions.map(nameOf),
  };
}

function nodeView(node: NodeLike): StateNodeView {
  const transitions: TransitionView[] = [];
  for (const [event, list] of node.transitions) for (const t of list) transitions.push(transitionView(event, t));
  for (const t of node.always ?? []) transitions.push(transitionView('', t));
  const initialTarget = node.type === 'compound' ? node.initial?.target[0] : undefined;
  return {
    key: node.key,
    path: node.path.join('.'),
    type: node.type,
    initial: initialTarget ? initialTarget.path.join('.') : null,
    tags: [...node.tags],
    description: node.description ?? null,
    transitions,
    states: Object.values(node.states).map(nodeView),
  };
}

/**
 * A machine's structure read from the machine object itself (states, nesting, initial states,
 * transitions with their events, guards and targets, tags): a state added to a machine shows up
 * in `GET /machines` and on the dashboard with no other change.
 *
 * @example
 * describeMachine(trackerMachine, 'tracker').root.states.map((s) => s.key); // ['pending', 'confirming', …]
 */
export function describeMachine(machine: AnyStateMachine, role: MachineView['role']): MachineView {
  return { id: machine.id, role, root: nodeView(machine.root as unknown as NodeLike) };
}

/** What the page may offer a user: the events clients may send, the fault injection switch. */
export interface MachinesResponse {
  machines: MachineView[];
  trackerMachineVersion: number;
  /** Events `POST /trackers/:id/events` takes here (CRASH only with fault injection on). */
  clientEvents: string[];
  faultInjection: boolean;
}

/** `/openapi.json` entries of the routes below. */
export const machineRouteDocs: RouteDoc[] = [
  {
    method: 'get',
    path: '/machines',
    summary:
      'The statecharts, read from the machines at run time (tracker, shard supervisor, root supervisor), the events clients may send, and whether fault injection is on',
    responses: { 200: { description: 'The machines', schema: 'Machines' } },
  },
  {
    method: 'get',
    path: '/supervision',
    summary: 'The supervisors now: shards, live and restarting trackers, crashes, restarts and crash loops since start',
    responses: { 200: { description: 'Counters', schema: 'Supervision' } },
  },
];

/**
 * `GET /machines` (the statecharts, built once) and `GET /supervision` (the supervisors' live counts).
 *
 * @example
 * app.use(machineRoutes(system, { faultInjection: config.FAULT_INJECTION }));
 */
export function machineRoutes(system: TrackerSystem, options: { faultInjection: boolean }): Router {
  const router = Router();
  const body: MachinesResponse = {
    machines: [
      describeMachine(trackerMachine, 'tracker'),
      describeMachine(supervisorMachine, 'supervisor'),
      describeMachine(rootSupervisorMachine, 'root-supervisor'),
    ],
    trackerMachineVersion: TRACKER_MACHINE_VERSION,
    clientEvents: ['RECHECK', 'REBROADCAST', ...(options.faultInjection ? ['CRASH'] : [])],
    faultInjection: options.faultInjection,
  };
  router.get('/machines', (_req, res) => {
    res.json(body);
  });
  router.get('/supervision', (_req, res) => {
    const { shards, live, restarting, crashes, restarts, crashLoops } = system.stats();
    res.json({ shards, live, restarting, crashes, restarts, crashLoops });
  });
  return router;
}
