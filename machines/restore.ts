import type { AnyStateMachine, Snapshot } from 'xstate';

/**
 * Logic that behaves like `machine` but starts from `persisted` instead of its initial state.
 * `spawn` has no snapshot option in XState v5, so the restoring logic overrides
 * `getInitialSnapshot`. A snapshot saved from a failed actor has status `error`: it is revived as
 * `active`.
 *
 * @example
 * spawn(restoringLogic(trackerMachine, saved), { id: saved.context.id });
 */
export function restoringLogic<TLogic extends AnyStateMachine>(machine: TLogic, persisted: Snapshot<unknown>): TLogic {
  const logic = Object.create(machine) as TLogic;
  logic.getInitialSnapshot = (scope) =>
    machine.restoreSnapshot({ ...persisted, status: 'active', error: undefined } as Snapshot<unknown>, scope);
  return logic;
}
