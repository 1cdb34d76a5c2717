import type { AnyActorScope, AnyMachineSnapshot, AnyStateMachine, Snapshot } from 'xstate';

/**
 * Snapshots made by stamping. XState resolves a machine's state configuration (state nodes, tags,
 * entry order) for every actor it creates or restores, ~28 µs each for the tracker; the result
 * depends only on the state value. So the configuration is resolved once per machine and value,
 * and each actor gets a copy of it with its own context: the same snapshot XState would make
 * (`test/stamped-snapshots.test.ts` checks it), for machines whose initial state takes no entry
 * actions and no eventless transition, whose context factory reads only `input`, and which have
 * no children or history in their snapshots — as the tracker machine.
 */
const templates = new WeakMap<AnyStateMachine, Map<string, AnyMachineSnapshot>>();

function templateFor(machine: AnyStateMachine, key: string, make: () => AnyMachineSnapshot): AnyMachineSnapshot {
  let byValue = templates.get(machine);
  if (!byValue) templates.set(machine, (byValue = new Map()));
  let template = byValue.get(key);
  if (!template) byValue.set(key, (template = make()));
  return template;
}

const INITIAL = '\0initial';

/**
 * Logic that behaves like `machine`, with new and restored snapshots stamped from one resolved
 * template per state value: a new one gets a context from the machine's own context factory, a
 * restored one (`createActor(logic, { snapshot })`) its persisted context. A snapshot saved from a
 * failed actor has status `error`: it is revived as `active`.
 *
 * @example
 * createActor(stampingLogic(trackerMachine), { input });
 * createActor(stampingLogic(trackerMachine), { snapshot: saved });
 */
export function stampingLogic<TLogic extends AnyStateMachine>(machine: TLogic): TLogic {
  const contextOf = machine.config.context as (args: { input: unknown }) => unknown;
  const logic = Object.create(machine) as TLogic;
  logic.getInitialSnapshot = (scope: AnyActorScope, input: unknown) => {
    const template = templateFor(machine, INITIAL, () => machine.getInitialSnapshot(scope, input) as AnyMachineSnapshot);
    return { ...template, context: contextOf({ input }) };
  };
  logic.restoreSnapshot = (persisted: Snapshot<unknown>, scope: AnyActorScope) => {
    const { value, context } = persisted as unknown as { value: unknown; context: unknown };
    const template = templateFor(machine, JSON.stringify(value), () =>
      machine.restoreSnapshot({ ...persisted, status: 'active', error: undefined } as Snapshot<unknown>, scope) as AnyMachineSnapshot,
    );
    return { ...template, context };
  };
  return logic;
}

/**
 * What `machine.getPersistedSnapshot(snapshot)` returns, without its generic walk over children,
 * history and context (looking for actor refs to serialise): for machines that have none of them,
 * as the tracker machine (`test/stamped-snapshots.test.ts` checks both agree).
 *
 * @example
 * store.write({ ...row, snapshot: persistedSnapshot(actor.getSnapshot()) });
 */
export function persistedSnapshot(snapshot: AnyMachineSnapshot): Snapshot<unknown> {
  const { status, value, context } = snapshot;
  return { status, value, historyValue: {}, context, children: {} } as unknown as Snapshot<unknown>;
}
